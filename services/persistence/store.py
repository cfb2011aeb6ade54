"""The run store: workflow_states, review decisions, the audit trail and queue messages."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Update, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from models.domain import ReviewDecision
from models.tables import (
    audit_events,
    processed_messages,
    review_decisions,
    workflow_states,
)
from services.errors import ConflictError
from services.persistence.jobs import RunJobs
from services.persistence.payouts import PayoutLedger

# A run in one of these has, or is owed, a driver (docs/architecture.md, "The run lifecycle").
ACTIVE_STATUSES = ("running", "pending", "needs_attention")

# Columns of workflow_states that mirror the graph state of the same name.
RUN_COLUMNS = (
    "status",
    "current_step",
    "crm_data",
    "billing_data",
    "payment_data",
    "resolution_proposal",
    "human_review_data",
    "final_resolution",
    "llm_cost",
    "total_cost",
    "cost_breakdown",
    "completed_at",
    "customer_id",
    "attempts",
    "next_attempt_at",
    "last_error",
)


# The intake's statements: fixed text, so nothing is built or compiled per event.
_CASE_INTAKE_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_EVENT_OR_ACTIVE_RUN = text(
    """
    SELECT EXISTS (SELECT 1 FROM processed_messages WHERE event_id = :event_id) AS seen,
           (SELECT run_id::text FROM processed_messages WHERE event_id = :event_id) AS seen_run,
           (SELECT run_id::text FROM workflow_states
             WHERE case_id = :case_id AND status = ANY(:active) LIMIT 1) AS active_run
    """
)
_RECORD_MESSAGE = text(
    "INSERT INTO processed_messages (event_id, message_id, case_id, run_id, outcome) "
    "VALUES (:event_id, :message_id, :case_id, CAST(:run_id AS uuid), :outcome)"
)
# The run, its first audit line and the message, in one statement.
_START_RUN = text(
    """
    WITH run AS (
        INSERT INTO workflow_states (run_id, case_id, customer_id, event_id, status, kind)
        VALUES (CAST(:run_id AS uuid), :case_id, :customer_id, :event_id, 'running', :kind)
    ), started AS (
        INSERT INTO audit_events (run_id, case_id, step, actor, event, detail)
        VALUES (CAST(:run_id AS uuid), :case_id, 'start', 'intake', 'run_started',
                CAST(:detail AS jsonb))
    )
    INSERT INTO processed_messages (event_id, message_id, case_id, run_id, outcome)
    VALUES (:event_id, :message_id, :case_id, CAST(:run_id AS uuid), 'accepted')
    """
)


# What the driver and the run controls read of a run.
HEAD_COLUMNS = (
    "run_id",
    "case_id",
    "customer_id",
    "event_id",
    "kind",
    "status",
    "current_step",
    "attempts",
    "next_attempt_at",
)


class RunBusyError(Exception):
    """Another live process holds the lock."""


@dataclass(frozen=True)
class Intake:
    """What the intake made of one event: the run it started or found, and how."""

    outcome: str  # accepted | duplicate
    run_id: str | None


# Wakes a run inside the intake's transaction: given the psycopg connection and the run id.
Wake = Callable[[Any, str], Awaitable[object]]


@dataclass(frozen=True)
class CaseRuns:
    """Other runs of one case: one in progress, and one that completed."""

    active: str | None
    completed: str | None


@dataclass(frozen=True)
class StoredDecision:
    id: int
    run_id: str
    round: int
    decision: ReviewDecision


def _row(mapping: Any) -> dict[str, Any]:
    return dict(mapping._mapping) if mapping is not None else {}


# Read by every drive of a run: built once, so SQLAlchemy does not rebuild and re-key it.
_RUN_HEAD = select(*(workflow_states.c[name] for name in HEAD_COLUMNS)).where(
    workflow_states.c.run_id == bindparam("run")
)


@functools.cache
def _steps_statement(columns: tuple[str, ...], steps: int) -> Update:
    """The run's row mirror of `columns`, with the audit lines of `steps` finished steps:
    one statement (a data-modifying CTE), built once per shape and reused with bound
    values (`v_<column>`, `step_<i>`, `detail_<i>`), so SQLAlchemy neither rebuilds nor
    re-keys it on every step."""
    statement = (
        update(workflow_states)
        .where(workflow_states.c.run_id == bindparam("run"))
        .values({**{name: bindparam(f"v_{name}") for name in columns}, "updated_at": func.now()})
    )
    if not steps:
        return statement
    audits = (
        audit_events.insert()
        .values(
            [
                {
                    # Typed: only a multi-row VALUES' first row takes its columns' types.
                    "run_id": bindparam("run", type_=audit_events.c.run_id.type),
                    "step": bindparam(f"step_{i}", type_=audit_events.c.step.type),
                    "actor": "system",
                    "event": "step_completed",
                    "detail": bindparam(f"detail_{i}", type_=audit_events.c.detail.type),
                }
                for i in range(steps)
            ]
        )
        .returning(audit_events.c.id)
        .cte("steps_audit")
    )
    return statement.add_cte(audits)


@dataclass(frozen=True)
class RunQuery:
    """The filters of the run search (`WorkflowStore.search_runs`, `count_runs`); each
    left None matches every run."""

    statuses: list[str] | None = None
    dispute_types: list[str] | None = None
    risk_flags: list[str] | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = None


class WorkflowStore:
    """Runs, decisions, audit and messages in PostgreSQL. With `jobs`, a recorded decision
    wakes its run at once (the reconciler wakes it otherwise)."""

    def __init__(self, engine: AsyncEngine, *, jobs: RunJobs | None = None) -> None:
        self.engine = engine
        self.jobs = jobs
        self.payouts = PayoutLedger(engine)
        # Single statements run in autocommit: no BEGIN/COMMIT/ROLLBACK round trips around
        # them (a statement is atomic on its own). Several statements use engine.begin().
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")

    # Runs

    async def create_run(
        self,
        *,
        run_id: str,
        case_id: str,
        customer_id: str | None,
        actor: str,
        kind: str = "dispute",
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                workflow_states.insert().values(
                    run_id=run_id,
                    case_id=case_id,
                    customer_id=customer_id,
                    status="running",
                    kind=kind,
                )
            )
            await conn.execute(
                audit_events.insert().values(
                    run_id=run_id, case_id=case_id, step="start", actor=actor, event="run_started"
                )
            )

    async def accept_event(
        self,
        *,
        message_id: str,
        event_id: str,
        case_id: str,
        customer_id: str | None,
        wake: Wake,
        kind: str = "dispute",
    ) -> Intake:
        """Record a queue event and create its run, in one transaction: both or neither.

        A redelivered event finds its message; an event for a case with an active run is
        recorded as a duplicate of that run. A new run gets its driver (`wake`) inside the
        same transaction, so no committed run is ever without one.
        """
        async with self.engine.begin() as conn:
            # Serialise the intake of one case (released at commit): two events for the same
            # case never both start a run.
            await conn.execute(_CASE_INTAKE_LOCK, {"key": f"case:{case_id}"})
            found = (
                await conn.execute(
                    _EVENT_OR_ACTIVE_RUN,
                    {"event_id": event_id, "case_id": case_id, "active": list(ACTIVE_STATUSES)},
                )
            ).one()
            if found.seen:
                return Intake("duplicate", found.seen_run)
            if found.active_run is not None:
                outcome, run_id = "duplicate", str(found.active_run)
                await conn.execute(
                    _RECORD_MESSAGE,
                    {
                        "event_id": event_id,
                        "message_id": message_id,
                        "case_id": case_id,
                        "run_id": run_id,
                        "outcome": outcome,
                    },
                )
                return Intake(outcome, run_id)
            run_id = str(uuid.uuid4())
            await conn.execute(
                _START_RUN,
                {
                    "run_id": run_id,
                    "case_id": case_id,
                    "customer_id": customer_id,
                    "event_id": event_id,
                    "message_id": message_id,
                    "kind": kind,
                    "detail": json.dumps(
                        {"event_id": event_id, "message_id": message_id, "kind": kind}
                    ),
                },
            )
            raw = await conn.get_raw_connection()
            await wake(raw.driver_connection, run_id)
        return Intake("accepted", run_id)

    async def record_dispute_update(
        self,
        *,
        message_id: str,
        event_id: str,
        dispute_id: str,
        event_type: str,
        status: str | None,
        amount: int | None,
        currency: str | None,
    ) -> None:
        """Record Stripe's update or closing of a chargeback on its run, once per event.

        A closed dispute's outcome (won: the funds come back; lost: they stay withdrawn) is
        kept on the run's `dispute_outcome` column and in the audit.
        """
        outcome = {
            "event_type": event_type,
            "status": status,
            "won": status == "won" if event_type == "charge.dispute.closed" else None,
            "funds": (
                ("reinstated" if status == "won" else "withdrawn")
                if event_type == "charge.dispute.closed"
                else None
            ),
            "amount_minor": amount,
            "currency": currency,
        }
        async with self.engine.begin() as conn:
            seen = (
                await conn.execute(
                    select(processed_messages.c.id).where(processed_messages.c.event_id == event_id)
                )
            ).first()
            if seen is not None:
                return
            run_id = (
                await conn.execute(
                    select(workflow_states.c.run_id)
                    .where(workflow_states.c.case_id == dispute_id)
                    .order_by(workflow_states.c.created_at.desc())
                    .limit(1)
                )
            ).scalar()
            await conn.execute(
                _RECORD_MESSAGE,
                {
                    "event_id": event_id,
                    "message_id": message_id,
                    "case_id": dispute_id,
                    "run_id": str(run_id) if run_id else None,
                    "outcome": "update" if run_id else "no_run",
                },
            )
            if run_id is None:
                return
            await conn.execute(
                update(workflow_states)
                .where(workflow_states.c.run_id == run_id)
                .values(dispute_outcome=outcome, updated_at=func.now())
            )
            await conn.execute(
                audit_events.insert().values(
                    run_id=run_id,
                    case_id=dispute_id,
                    step="stripe",
                    actor="stripe",
                    event=event_type.replace("charge.dispute.", "dispute_"),
                    detail=outcome,
                )
            )

    async def chargeback_history(self, reason: str, *, exclude: str) -> dict[str, int]:
        """Past chargebacks of this reason as Stripe closed them: won, lost, still open."""
        runs = workflow_states.c
        won = runs.dispute_outcome["won"].astext
        query = select(
            func.count().filter(won == "true").label("won"),
            func.count().filter(won == "false").label("lost"),
            func.count().filter(won.is_(None)).label("open"),
        ).where(
            runs.kind == "chargeback",
            runs.payment_data["dispute"]["reason"].astext == reason,
            runs.run_id != exclude,
        )
        async with self._auto.connect() as conn:
            row = (await conn.execute(query)).one()
        return {"won": int(row.won), "lost": int(row.lost), "open": int(row.open)}

    async def record_step(
        self, run_id: str, *, step: str, detail: dict[str, Any], **columns: Any
    ) -> None:
        """Mirror a finished step into the run's row, with its audit line, in one statement."""
        await self.record_steps(run_id, [(step, detail)], **columns)

    async def record_steps(
        self, run_id: str, steps: Sequence[tuple[str, dict[str, Any]]], **columns: Any
    ) -> None:
        """Update the run's row with `columns` and audit `steps` (name, detail) as
        completed, in order, in one statement: a step as it finishes, or a leg that is
        durable only as a whole (workflows/runner.py)."""
        self._check_columns(columns)
        params = {f"v_{name}": value for name, value in columns.items()} | {"run": run_id}
        for i, (step, detail) in enumerate(steps):
            params |= {
                f"step_{i}": step,
                f"detail_{i}": json.loads(json.dumps(detail, default=str)),
            }
        async with self._auto.connect() as conn:
            await conn.execute(_steps_statement(tuple(sorted(columns)), len(steps)), params)

    async def record_retryable_failure(
        self, run_id: str, *, step: str, error: dict[str, Any]
    ) -> None:
        """Note a retryable failure at `step` (the checkpoint stays before it), audited."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(workflow_states)
                .where(workflow_states.c.run_id == run_id)
                .values(current_step=step, last_error=error, updated_at=func.now())
            )
            await conn.execute(
                audit_events.insert().values(
                    run_id=run_id,
                    step=step,
                    actor="system",
                    event="step_failed_retryable",
                    detail=error,
                )
            )

    async def schedule_attempt(
        self, run_id: str, *, attempts: int, at: datetime | None, status: str = "running"
    ) -> None:
        """Record the attempts made and when the next is due (None: no further attempt)."""
        async with self._auto.connect() as conn:
            await conn.execute(
                update(workflow_states)
                .where(workflow_states.c.run_id == run_id)
                .values(attempts=attempts, next_attempt_at=at, status=status, updated_at=func.now())
            )

    async def runs_owed_a_driver(self, *, limit: int = 500) -> list[tuple[str, datetime | None]]:
        """Runs that need driving and have no job: running ones, pending ones with an
        unapplied decision, each with its next-attempt time."""
        query = text(
            """
            SELECT w.run_id::text AS run_id, w.next_attempt_at
            FROM workflow_states w
            WHERE (w.status = 'running'
                   OR (w.status = 'pending' AND EXISTS (
                        SELECT 1 FROM review_decisions d
                        WHERE d.run_id = w.run_id AND d.applied_at IS NULL)))
              AND NOT EXISTS (
                  SELECT 1 FROM procrastinate_jobs j
                  WHERE j.lock = 'run:' || w.run_id::text AND j.status IN ('todo', 'doing'))
            ORDER BY w.updated_at
            LIMIT :limit
            """
        )
        async with self._auto.connect() as conn:
            rows = (await conn.execute(query, {"limit": limit})).all()
        return [(row.run_id, row.next_attempt_at) for row in rows]

    async def final_runs_with_checkpoints(self, cutoff: datetime, *, limit: int = 200) -> list[str]:
        """Final runs completed before `cutoff` whose LangGraph checkpoints are still kept."""
        query = text(
            """
            SELECT w.run_id::text FROM workflow_states w
            WHERE w.status IN ('completed', 'rejected', 'failed', 'cancelled')
              AND w.completed_at < :cutoff
              AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = w.run_id::text)
            ORDER BY w.completed_at
            LIMIT :limit
            """
        )
        async with self._auto.connect() as conn:
            return [
                str(r)
                for r in (await conn.execute(query, {"cutoff": cutoff, "limit": limit})).scalars()
            ]

    @staticmethod
    def _check_columns(values: dict[str, Any]) -> None:
        unknown = set(values) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"not run columns: {sorted(unknown)}")

    async def update_run(self, run_id: str, **values: Any) -> None:
        self._check_columns(values)
        async with self._auto.connect() as conn:
            await conn.execute(
                update(workflow_states)
                .where(workflow_states.c.run_id == run_id)
                .values(**values, updated_at=func.now())
            )

    async def run_head(self, run_id: str) -> dict[str, Any] | None:
        """The run's lifecycle columns only (not its large JSON mirrors of the state)."""
        async with self._auto.connect() as conn:
            row = (await conn.execute(_RUN_HEAD, {"run": run_id})).first()
        return _row(row) if row is not None else None

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        async with self._auto.connect() as conn:
            row = (
                await conn.execute(
                    select(workflow_states).where(workflow_states.c.run_id == run_id)
                )
            ).first()
        return _row(row) if row is not None else None

    async def runs_for_case(self, case_id: str) -> list[dict[str, Any]]:
        async with self._auto.connect() as conn:
            rows = await conn.execute(
                select(workflow_states)
                .where(workflow_states.c.case_id == case_id)
                .order_by(workflow_states.c.created_at)
            )
            return [_row(r) for r in rows]

    async def other_runs_of_case(self, case_id: str, *, exclude: str) -> CaseRuns:
        """Another run of the case still in progress, and one that completed, if any."""
        runs = workflow_states.c

        def first(*conditions: Any) -> Any:
            return (
                select(runs.run_id)
                .where(runs.case_id == case_id, runs.run_id != exclude, *conditions)
                .order_by(runs.created_at.desc())
                .limit(1)
                .scalar_subquery()
            )

        query = select(
            first(runs.status.in_(ACTIVE_STATUSES)).label("active"),
            first(runs.status == "completed").label("completed"),
        )
        async with self._auto.connect() as conn:
            row = (await conn.execute(query)).one()
        return CaseRuns(
            active=str(row.active) if row.active else None,
            completed=str(row.completed) if row.completed else None,
        )

    async def list_runs(
        self, *, status: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        query = select(workflow_states).order_by(workflow_states.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(workflow_states.c.status == status)
        async with self._auto.connect() as conn:
            return [_row(r) for r in await conn.execute(query)]

    async def case_costs(self, case_id: str) -> list[dict[str, Any]]:
        query = (
            select(
                workflow_states.c.run_id,
                workflow_states.c.status,
                workflow_states.c.llm_cost,
                workflow_states.c.total_cost,
                workflow_states.c.cost_breakdown,
                workflow_states.c.created_at,
            )
            .where(workflow_states.c.case_id == case_id)
            .order_by(workflow_states.c.created_at)
        )
        async with self._auto.connect() as conn:
            return [_row(r) for r in await conn.execute(query)]

    @asynccontextmanager
    async def run_lock(self, run_id: str) -> AsyncIterator[None]:
        """Hold a session advisory lock on the run for as long as this process works on it.

        The lock lives on its own connection: if the process dies, PostgreSQL drops the
        connection and the lock with it, so another worker can take the run over at once.
        """
        async with self._auto.connect() as conn:
            key = text("SELECT pg_try_advisory_lock(hashtextextended(:run_id, 0))")
            locked = (await conn.execute(key, {"run_id": run_id})).scalar()
            await conn.commit()
            if not locked:
                raise RunBusyError(run_id)
            try:
                yield
            finally:
                await conn.execute(
                    text("SELECT pg_advisory_unlock(hashtextextended(:run_id, 0))"),
                    {"run_id": run_id},
                )
                await conn.commit()

    # Audit trail (append-only)

    async def audit(
        self,
        *,
        run_id: str | None,
        case_id: str | None,
        step: str,
        actor: str,
        event: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        async with self._auto.connect() as conn:
            await conn.execute(
                audit_events.insert().values(
                    run_id=run_id,
                    case_id=case_id,
                    step=step,
                    actor=actor,
                    event=event,
                    detail=json.loads(json.dumps(detail or {}, default=str)),
                )
            )

    async def audit_trail(self, run_id: str) -> list[dict[str, Any]]:
        async with self._auto.connect() as conn:
            rows = await conn.execute(
                select(audit_events)
                .where(audit_events.c.run_id == run_id)
                .order_by(audit_events.c.id)
            )
            return [_row(r) for r in rows]

    # Queue messages

    async def record_rejected_message(self, *, message_id: str, error: str, body: str) -> None:
        """Record an unparseable message: one row per message, counting its receives."""
        statement = (
            insert(processed_messages)
            .values(message_id=message_id, outcome="rejected", error=error, body=body[:10_000])
            .on_conflict_do_update(
                index_elements=["message_id"],
                index_where=processed_messages.c.event_id.is_(None),
                set_={"receives": processed_messages.c.receives + 1},
            )
        )
        async with self._auto.connect() as conn:
            await conn.execute(statement)

    async def messages(self, *, outcome: str | None = None) -> list[dict[str, Any]]:
        query = select(processed_messages).order_by(processed_messages.c.id)
        if outcome is not None:
            query = query.where(processed_messages.c.outcome == outcome)
        async with self._auto.connect() as conn:
            return [_row(r) for r in await conn.execute(query)]

    # Review decisions

    async def record_decision(
        self, *, run_id: str, decision: ReviewDecision, proposal_before: dict[str, Any] | None
    ) -> int:
        """Store a decision for its round; a second decision for the same round is a 409."""
        modified = (
            decision.modified_resolution.model_dump(mode="json")
            if decision.modified_resolution is not None
            else None
        )
        try:
            async with self.engine.begin() as conn:
                decision_id = (
                    await conn.execute(
                        review_decisions.insert()
                        .values(
                            run_id=run_id,
                            round=decision.round,
                            decision=decision.decision,
                            reviewer=decision.reviewer,
                            reviewer_id=decision.reviewer_id,
                            version=decision.version,
                            channel=decision.channel,
                            comments=decision.comments,
                            modified_resolution=modified,
                            proposal_before=proposal_before,
                            decided_at=decision.decided_at,
                        )
                        .returning(review_decisions.c.id)
                    )
                ).scalar_one()
                await conn.execute(
                    audit_events.insert().values(
                        run_id=run_id,
                        step="wait_human_review",
                        actor=decision.reviewer,
                        event=f"decision_{decision.decision}",
                        detail={
                            "round": decision.round,
                            "version": decision.version,
                            "reviewer_id": decision.reviewer_id,
                            "channel": decision.channel,
                            "comments": decision.comments,
                            "before": proposal_before,
                            "after": modified,
                        },
                    )
                )
        except IntegrityError as exc:
            raise ConflictError(f"run {run_id} already has a decision for this review") from exc
        if self.jobs is not None:
            await self.jobs.wake(run_id)
        return int(decision_id)

    async def decisions_for_run(self, run_id: str) -> list[dict[str, Any]]:
        async with self._auto.connect() as conn:
            rows = await conn.execute(
                select(review_decisions)
                .where(review_decisions.c.run_id == run_id)
                .order_by(review_decisions.c.round)
            )
            return [_row(r) for r in rows]

    async def unapplied_decisions(self, *, run_id: str | None = None) -> list[StoredDecision]:
        query = (
            select(review_decisions)
            .where(review_decisions.c.applied_at.is_(None))
            .order_by(review_decisions.c.decided_at)
        )
        if run_id is not None:
            query = query.where(review_decisions.c.run_id == run_id)
        async with self._auto.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            StoredDecision(
                id=r.id,
                run_id=r.run_id,
                round=r.round,
                decision=ReviewDecision(
                    decision=r.decision,
                    reviewer=r.reviewer,
                    comments=r.comments,
                    modified_resolution=r.modified_resolution,
                    channel=r.channel,
                    decided_at=r.decided_at,
                    round=r.round,
                    reviewer_id=r.reviewer_id,
                    version=r.version,
                ),
            )
            for r in rows
        ]

    async def mark_decision_applied(self, decision_id: int) -> None:
        async with self._auto.connect() as conn:
            await conn.execute(
                update(review_decisions)
                .where(review_decisions.c.id == decision_id)
                .values(applied_at=func.now())
            )

    # Run search (GET /workflow/runs)

    async def search_runs(
        self,
        query: RunQuery,
        *,
        oldest_first: bool = False,
        after: tuple[datetime, int] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """One page of runs matching every given filter, newest first (or oldest first).

        The summary columns only: the type, amount and flags are read from the JSONB
        mirrors. `after` is the (created_at, id) of the last row of the previous page.
        A risk flag matches itself and the flags it prefixes (`radar_risk` matches
        `radar_risk_elevated`); `q` matches a case, customer or run id, exactly or by prefix.
        """
        where, params = self._run_filters(query)
        if after is not None:
            # The created_at bound lets idx_workflow_states_created_at do the paging.
            op, bound = (">", ">=") if oldest_first else ("<", "<=")
            where.append(
                f"w.created_at {bound} :after_at "
                f"AND (w.created_at, w.id) {op} (:after_at, :after_id)"
            )
            params |= {"after_at": after[0], "after_id": after[1]}
        order = "ASC" if oldest_first else "DESC"
        statement = text(
            f"""
            SELECT w.id, w.run_id::text AS run_id, w.case_id, w.customer_id, w.status,
                   w.current_step, w.attempts, w.next_attempt_at,
                   w.crm_data->'case'->>'dispute_type' AS dispute_type,
                   w.crm_data->'case'->>'amount' AS claimed_amount,
                   w.resolution_proposal->>'action' AS action,
                   w.resolution_proposal->>'amount' AS amount,
                   w.resolution_proposal->>'currency' AS currency,
                   w.resolution_proposal->>'drafter' AS drafter,
                   COALESCE(w.human_review_data->'plan'->'risk_flags', '[]'::jsonb)
                       AS risk_flags,
                   (w.human_review_data->'plan'->>'auto_approve')::boolean AS auto_approved,
                   (w.human_review_data->>'awaiting_round')::int AS awaiting_round,
                   w.created_at, w.updated_at, w.completed_at
            FROM workflow_states w
            WHERE {" AND ".join(where) or "TRUE"}
            ORDER BY w.created_at {order}, w.id {order}
            LIMIT :limit OFFSET :offset
            """
        )
        params |= {"limit": limit, "offset": offset}
        async with self._auto.connect() as conn:
            return [_row(r) for r in await conn.execute(statement, params)]

    async def count_runs(self, query: RunQuery) -> int:
        """How many runs match `query` (paging aside)."""
        where, params = self._run_filters(query)
        statement = text(
            f"SELECT count(*) FROM workflow_states w WHERE {' AND '.join(where) or 'TRUE'}"
        )
        async with self._auto.connect() as conn:
            return int((await conn.execute(statement, params)).scalar_one())

    @staticmethod
    def _run_filters(query: RunQuery) -> tuple[list[str], dict[str, Any]]:
        """SQL conditions (fixed text, values bound) for the run search's filters."""
        statuses, dispute_types, risk_flags = query.statuses, query.dispute_types, query.risk_flags
        amount_min, amount_max, q = query.amount_min, query.amount_max, query.q
        created_from, created_to = query.created_from, query.created_to

        def like_prefix(value: str) -> str:
            escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return escaped + "%"

        where: list[str] = []
        params: dict[str, Any] = {}
        if statuses:
            where.append("w.status = ANY(CAST(:statuses AS text[]))")
            params["statuses"] = list(statuses)
        if dispute_types:
            where.append("w.crm_data->'case'->>'dispute_type' = ANY(CAST(:types AS text[]))")
            params["types"] = list(dispute_types)
        if risk_flags:
            where.append(
                "EXISTS (SELECT 1 FROM jsonb_array_elements_text("
                "CASE jsonb_typeof(w.human_review_data->'plan'->'risk_flags') WHEN 'array' "
                "THEN w.human_review_data->'plan'->'risk_flags' ELSE '[]'::jsonb END) f(flag) "
                "WHERE f.flag = ANY(CAST(:flags AS text[])) "
                "OR f.flag LIKE ANY(CAST(:flag_prefixes AS text[])))"
            )
            params["flags"] = list(risk_flags)
            params["flag_prefixes"] = [like_prefix(f"{flag}_") for flag in risk_flags]
        if amount_min is not None:
            where.append("(w.resolution_proposal->>'amount')::numeric >= :amount_min")
            params["amount_min"] = amount_min
        if amount_max is not None:
            where.append("(w.resolution_proposal->>'amount')::numeric <= :amount_max")
            params["amount_max"] = amount_max
        if created_from is not None:
            where.append("w.created_at >= :created_from")
            params["created_from"] = created_from
        if created_to is not None:
            where.append("w.created_at < :created_to")
            params["created_to"] = created_to
        if q:
            search = ["w.case_id = :q", "w.case_id LIKE :q_prefix", "w.customer_id LIKE :q_prefix"]
            try:
                params["q_run"] = str(uuid.UUID(q))
                search.append("w.run_id = CAST(:q_run AS uuid)")  # the run_id index
            except ValueError:
                search.append("w.run_id::text LIKE :q_run_prefix")
                params["q_run_prefix"] = like_prefix(q.lower())
            where.append(f"({' OR '.join(search)})")
            params |= {"q": q, "q_prefix": like_prefix(q)}
        return where, params
