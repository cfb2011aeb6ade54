"""The runner: the only code that invokes the graph (start, resume, continue, settle).

`thread_id = run_id`. After every step the run's row in workflow_states is brought up to
date from the state the stream carries, together with the step's audit line, in one
statement, so the API and the dashboard read PostgreSQL, not the graph; a first leg's
steps (below) are written together where it stops, as its checkpoint is.

Durability is chosen per leg (docs/architecture.md, "The run lifecycle"). A new run's
first leg, up to the review or up to the money, is read-only or idempotent (fetches,
validation, a draft cached by its inputs, an e-mail the notification log sends once), so
it runs with "exit": one checkpoint where it stops, and a crash re-runs it from the start.
It stops before a money step (`MONEY_STEPS`, a static interrupt), and everything from
there on runs with "sync": a step's checkpoint is written before the next step starts, so
a crash after moving money, updating the case or storing the outcome resumes at the step
after it, never before.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot

from models.costs import summarise_recorded
from models.domain import ReviewDecision
from services.logs import bind_run_id
from services.persistence.store import WorkflowStore
from services.tracing import traced_run
from workflows.context import WorkflowContext
from workflows.dispute_workflow import DisputeGraph, RetryableStepError

log = logging.getLogger(__name__)

StepCallback = Callable[[str, dict[str, Any]], None]
StepRecord = tuple[str, dict[str, Any]]  # a finished step and its audit detail
FINAL_STATUSES = ("completed", "rejected", "failed", "cancelled")
# The steps that move money or answer a chargeback: never inside an "exit" leg.
MONEY_STEPS = ("move_money", "answer_dispute")


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    current_step: str | None
    awaiting_round: int | None = None
    retryable: bool = False
    error: dict[str, Any] | None = None
    park: bool = False  # a person must look before another attempt (needs_attention)
    values: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def durable(self) -> bool:
        """True once the run rests at a checkpoint that needs no further driving now."""
        return not self.retryable and self.status in FINAL_STATUSES + ("pending",)


@dataclass(frozen=True)
class _Leg:
    """Where one streaming of the graph left the run."""

    values: dict[str, Any] | None  # the state after its last step, None if no step ran
    awaiting: int | None  # the review round it paused at
    before_money: bool  # stopped before a money step (a first leg's static interrupt)


class WorkflowRunner:
    def __init__(
        self, *, graph: DisputeGraph, context: WorkflowContext, store: WorkflowStore
    ) -> None:
        self.graph = graph
        self.context = context
        self.store = store

    @staticmethod
    def _config(run_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": run_id}}

    async def start(
        self,
        *,
        case_id: str,
        customer_id: str | None = None,
        event_id: str | None = None,
        run_id: str | None = None,
        actor: str = "worker",
        on_step: StepCallback | None = None,
        kind: str = "dispute",
    ) -> RunOutcome:
        """Create a run for the case and drive it to its first durable checkpoint."""
        run_id = run_id or str(uuid.uuid4())
        await self.store.create_run(
            run_id=run_id, case_id=case_id, customer_id=customer_id, actor=actor, kind=kind
        )
        return await self.begin(
            run_id=run_id,
            case_id=case_id,
            customer_id=customer_id,
            event_id=event_id,
            on_step=on_step,
            kind=kind,
        )

    async def begin(
        self,
        *,
        run_id: str,
        case_id: str,
        customer_id: str | None,
        event_id: str | None = None,
        on_step: StepCallback | None = None,
        kind: str = "dispute",
    ) -> RunOutcome:
        """Drive a run whose row exists but whose graph has not started."""
        initial = {
            "run_id": run_id,
            "kind": kind,
            "case_id": case_id,
            "customer_id": customer_id,
            "event_id": event_id,
            "status": "running",
            "current_step": "start",
        }
        return await self._drive(run_id, initial, on_step, first_leg=True)

    async def resume(
        self, *, run_id: str, decision: ReviewDecision, on_step: StepCallback | None = None
    ) -> RunOutcome:
        """Resume a paused run with a reviewer's decision."""
        return await self._drive(run_id, Command(resume=decision.model_dump(mode="json")), on_step)

    async def continue_run(self, run_id: str, on_step: StepCallback | None = None) -> RunOutcome:
        """Drive a run on from its last checkpoint (after a crash or a retryable failure)."""
        return await self._drive(run_id, None, on_step)

    async def snapshot(self, run_id: str) -> StateSnapshot:
        """The run's last checkpoint."""
        return await self.graph.aget_state(self._config(run_id))

    async def has_pending_steps(self, run_id: str) -> bool:
        snapshot = await self.snapshot(run_id)
        return bool(snapshot.next) and not snapshot.interrupts

    async def _drive(
        self,
        run_id: str,
        graph_input: Any,
        on_step: StepCallback | None,
        *,
        first_leg: bool = False,
    ) -> RunOutcome:
        config = self._config(run_id)
        # The drive's span; each step's own span and metrics come from its node's wrapper
        # (workflows/dispute_workflow.py, services/tracing.traced_step).
        # A first leg's steps are recorded together where it stops (`_leg`).
        batch: list[StepRecord] = []
        with bind_run_id(run_id), traced_run(run_id):
            try:
                if first_leg:
                    leg = await self._leg(
                        run_id,
                        graph_input,
                        config,
                        on_step,
                        durability="exit",
                        stop=MONEY_STEPS,
                        batch=batch,
                    )
                    if leg.before_money:  # auto-approved: the money steps run checkpointed
                        assert leg.values is not None
                        columns = self._columns(leg.values, leg.values.get("current_step"))
                        await self.store.record_steps(run_id, batch, status="running", **columns)
                        batch.clear()
                        after = await self._leg(run_id, None, config, on_step, durability="sync")
                        leg = _Leg(after.values or leg.values, after.awaiting, False)
                else:
                    leg = await self._leg(run_id, graph_input, config, on_step, durability="sync")
            except RetryableStepError as exc:
                error = {
                    "step": exc.step,
                    "type": type(exc.cause).__name__,
                    "message": exc.cause.message,
                    "retryable": not exc.park,
                }
                log.warning("run paused on a retryable failure in %s: %s", exc.step, exc)
                # The checkpoint stays before the failed step; the dispatcher (workflows/
                # dispatch.py) decides when the next attempt is due. The steps done before it
                # are audited; the row's mirrors follow when a later drive settles.
                if batch:
                    await self.store.record_steps(run_id, batch)
                await self.store.record_retryable_failure(run_id, step=exc.step, error=error)
                return RunOutcome(
                    run_id, "running", exc.step, retryable=True, error=error, park=exc.park
                )
            if leg.values is None:  # nothing ran (a resume that only paused again)
                return await self.settle(run_id)
            # The stream carried the state the checkpoint holds: no need to read it back. The
            # settle writes every column, with the audit lines of a first leg's steps.
            return await self._settle_to(
                run_id, leg.values, awaiting=leg.awaiting, pending_steps=False, steps=batch
            )

    async def _leg(
        self,
        run_id: str,
        graph_input: Any,
        config: RunnableConfig,
        on_step: StepCallback | None,
        *,
        durability: Literal["sync", "exit"],
        stop: tuple[str, ...] = (),
        batch: list[StepRecord] | None = None,
    ) -> _Leg:
        """Stream the graph until it ends or pauses, recording each step as it finishes.

        With `batch` (an "exit" leg, whose steps are durable only together, where it stops)
        a step's audit line is collected there instead, and the caller writes them all with
        the row in one statement: one row write per first leg instead of one per step.
        """
        step: str | None = None
        update: dict[str, Any] = {}
        values: dict[str, Any] | None = None
        awaiting: int | None = None
        before_money = False
        async for mode, chunk in self.graph.astream(
            graph_input,
            config,
            context=self.context,
            stream_mode=["updates", "values"],
            durability=durability,
            interrupt_before=list(stop) or None,
        ):
            data = cast(dict[str, Any], chunk)
            if mode == "updates":
                # One step finished; its full state follows as the next "values".
                step, update = next(iter(data.items()))
                if step == "__interrupt__":
                    awaiting = _round_of(update)
                    before_money = awaiting is None  # the static stop, not a review
                    step = None
                continue
            if step is None:
                continue  # the input state, or the state at an interrupt
            values = data
            if batch is None:
                await self._record_step(run_id, step, update or {}, data)
            else:
                batch.append((step, _audit_detail(update or {})))
                log.info("step %s done", step)
            if on_step is not None:
                on_step(step, update or {})
            step = None
        return _Leg(values, awaiting, before_money)

    async def _record_step(
        self, run_id: str, step: str, update: dict[str, Any], values: dict[str, Any]
    ) -> None:
        detail = _audit_detail(update)
        columns = self._columns(values, step)
        # Only what this step changed: the large JSON columns are not re-sent every step.
        changed = {"current_step", *_columns_changed_by(update)}
        await self.store.record_step(
            run_id,
            step=step,
            detail=detail,
            status="running",
            **{name: value for name, value in columns.items() if name in changed},
        )
        log.info("step %s done", step)

    async def settle(self, run_id: str) -> RunOutcome:
        """Bring the run's row in line with its last checkpoint, and say where it rests."""
        snapshot = await self.snapshot(run_id)
        return await self._settle_to(
            run_id,
            dict(snapshot.values),
            awaiting=awaiting_round(snapshot),
            pending_steps=bool(snapshot.next or snapshot.tasks),
        )

    async def _settle_to(
        self,
        run_id: str,
        values: dict[str, Any],
        *,
        awaiting: int | None,
        pending_steps: bool,
        steps: list[StepRecord] | None = None,
    ) -> RunOutcome:
        """Write where the run rests, with the audit lines of `steps` in the same statement."""
        status: str
        step: str | None
        if awaiting is not None:
            status, step = "pending", "wait_human_review"
        elif pending_steps:
            # Stopped between steps without an interrupt: only a crash does that; keep running.
            status, step = "running", values.get("current_step")
        else:
            status, step = str(values.get("status", "failed")), values.get("current_step")
        columns = self._columns(values, step)
        columns["status"] = status
        columns["human_review_data"] = {
            **(columns.get("human_review_data") or {}),
            "awaiting_round": awaiting,
        }
        if status in FINAL_STATUSES:
            columns["completed_at"] = datetime.now(UTC)
        await self.store.record_steps(run_id, steps or [], **columns, next_attempt_at=None)
        log.info("run %s", status)
        return RunOutcome(
            run_id,
            status,
            step,
            awaiting_round=awaiting,
            error=values.get("error"),
            values=values,
        )

    @staticmethod
    def _columns(values: dict[str, Any], step: str | None) -> dict[str, Any]:
        llm_cost, breakdown = summarise_recorded(values.get("costs") or [])
        proposal = values.get("proposal")
        final = values.get("final_resolution")
        error = values.get("error")
        if error is not None:
            final = {**(final or {}), "outcome": "failed", "error": error}
        execution = values.get("execution")
        if execution is not None and final is not None:
            final = {**final, "execution": execution}
        return {
            "current_step": step,
            "customer_id": values.get("customer_id"),
            "crm_data": values.get("crm_data"),
            "billing_data": values.get("billing_data"),
            "payment_data": values.get("payment_data"),
            "resolution_proposal": (
                {**proposal, "retrieved": values.get("retrieved")} if proposal else None
            ),
            "human_review_data": {
                "validation": values.get("validation"),
                "plan": values.get("review"),
                "decisions": values.get("decisions") or [],
            },
            "final_resolution": final,
            "llm_cost": llm_cost,
            "total_cost": llm_cost,
            "cost_breakdown": breakdown,
        }


def awaiting_round(snapshot: StateSnapshot) -> int | None:
    """The review round a checkpoint is paused at, or None."""
    return _round_of(snapshot.interrupts)


def _round_of(interrupts: Any) -> int | None:
    for interrupt in interrupts or ():
        value = getattr(interrupt, "value", None)
        if isinstance(value, dict) and "round" in value:
            return int(value["round"])
    return None


# The row's columns each state key feeds (see WorkflowRunner._columns).
_COLUMNS_OF_KEY = {
    "customer_id": ("customer_id",),
    "crm_data": ("crm_data",),
    "billing_data": ("billing_data",),
    "payment_data": ("payment_data",),
    "proposal": ("resolution_proposal",),
    "retrieved": ("resolution_proposal",),
    "validation": ("human_review_data",),
    "review": ("human_review_data",),
    "decisions": ("human_review_data",),
    "final_resolution": ("final_resolution",),
    "error": ("final_resolution",),
    "execution": ("final_resolution",),
    "costs": ("llm_cost", "total_cost", "cost_breakdown"),
}


def _audit_detail(update: dict[str, Any]) -> dict[str, Any]:
    """What a step's audit line keeps of its update."""
    return {k: v for k, v in update.items() if k in ("status", "validation", "error")}


def _columns_changed_by(update: dict[str, Any]) -> set[str]:
    return {column for key in update for column in _COLUMNS_OF_KEY.get(key, ())}
