"""The run driver: the one thing that moves a run forward, run by Procrastinate jobs.

`advance(run_id)` looks at the run's last checkpoint and does the one thing due: start the
graph, continue it after a crash, apply a recorded decision, or settle the row to the
checkpoint. A retryable failure schedules the next attempt (backoff with jitter) on the
run's row and as a job due then; past `max_attempts` the run is `needs_attention` until an
operator retries it. The maintenance loop reconciles runs owed a driver (a crash between
a commit and a wake-up, a lost job), puts back the jobs of dead workers, and prunes the
checkpoints of old final runs. See docs/architecture.md, "The run lifecycle".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate

from services.logs import bind_run_id
from services.metrics import RUN_RETRIES
from services.persistence.jobs import ADVANCE_TASK, RUN_QUEUE, RunJobs
from services.persistence.store import StoredDecision, WorkflowStore
from workflows.runner import FINAL_STATUSES, RunOutcome, WorkflowRunner, awaiting_round

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a run that failed retryably is tried again."""

    max_attempts: int = 8
    base_seconds: float = 5.0
    max_seconds: float = 300.0

    def delay(self, attempt: int, *, rand: Callable[[], float] = random.random) -> float:
        """Seconds before attempt `attempt + 1`: exponential, capped, with full jitter
        over the upper half (so retries of many runs spread out, never bunch at zero)."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** max(attempt - 1, 0))
        return float(ceiling / 2 + rand() * ceiling / 2)


def utc_now() -> datetime:
    return datetime.now(UTC)


class RunDriver:
    """Advances runs; every path a run can take forward goes through `advance`."""

    def __init__(
        self,
        *,
        runner: WorkflowRunner,
        store: WorkflowStore,
        jobs: RunJobs,
        retry: RetryPolicy,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.runner = runner
        self.store = store
        self.jobs = jobs
        self.retry = retry
        self.clock = clock

    async def advance(self, run_id: str) -> RunOutcome | None:
        """Do what is due for the run now; None when nothing was (a final run, or a
        pending one with no decision yet)."""
        with bind_run_id(run_id):
            run = await self.store.run_head(run_id)
            if run is None:
                log.warning("advance: no such run")
                return None
            if run["status"] in FINAL_STATUSES:
                return None
            if run["status"] == "needs_attention":
                return None  # waits for an operator's retry
            outcome = await self._step(run)
            if outcome is not None and outcome.retryable:
                await self._schedule_retry(run, outcome)
            elif outcome is not None and (run.get("attempts") or run.get("next_attempt_at")):
                # It moved on after earlier failures: the count starts again.
                await self.store.schedule_attempt(
                    run_id, attempts=0, at=None, status=outcome.status
                )
            return outcome

    async def _step(self, run: dict[str, Any]) -> RunOutcome | None:
        run_id = str(run["run_id"])
        snapshot = await self.runner.snapshot(run_id)
        if snapshot.created_at is None:  # no checkpoint yet: the graph has not started
            return await self.runner.begin(
                run_id=run_id,
                case_id=run["case_id"],
                customer_id=run["customer_id"],
                event_id=run.get("event_id"),
                kind=run.get("kind") or "dispute",
            )
        awaiting = awaiting_round(snapshot)
        if awaiting is not None:
            decision = await self._decision_for(run_id, awaiting)
            if decision is None:
                return await self.runner.settle(run_id)  # pending: nothing to apply yet
            outcome = await self.runner.resume(run_id=run_id, decision=decision.decision)
            if not outcome.retryable:
                await self.store.mark_decision_applied(decision.id)
            return outcome
        if snapshot.next or snapshot.tasks:
            # Steps left to run. `tasks` too: a step whose writes were saved but whose next
            # checkpoint was not (the database went away between the two) is not in `next`.
            return await self.runner.continue_run(run_id)
        return await self.runner.settle(run_id)

    async def _decision_for(self, run_id: str, round_: int) -> StoredDecision | None:
        for stored in await self.store.unapplied_decisions(run_id=run_id):
            if stored.round == round_:
                return stored
            # A decision for a round the run is not at was overtaken (it was applied by an
            # earlier attempt whose bookkeeping did not commit): nothing to apply.
            await self.store.mark_decision_applied(stored.id)
        return None

    async def _schedule_retry(self, run: dict[str, Any], outcome: RunOutcome) -> None:
        run_id = str(run["run_id"])
        attempts = int(run.get("attempts") or 0) + 1
        RUN_RETRIES.inc()
        if outcome.park or attempts >= self.retry.max_attempts:
            log.error("run needs attention after %d attempt(s): %s", attempts, outcome.error)
            await self.store.schedule_attempt(
                run_id, attempts=attempts, at=None, status="needs_attention"
            )
            await self.store.audit(
                run_id=run_id,
                case_id=run["case_id"],
                step=outcome.current_step or "unknown",
                actor="system",
                event="run_needs_attention",
                detail={"attempts": attempts, "error": outcome.error},
            )
            return
        due = self.clock() + timedelta(seconds=self.retry.delay(attempts))
        await self.store.schedule_attempt(run_id, attempts=attempts, at=due)
        await self.jobs.wake(run_id, at=due)
        log.info("attempt %d failed; next attempt at %s", attempts, due.isoformat())

    async def apply_pending_decisions(self) -> int:
        """Advance every run with a recorded decision not yet applied; how many moved."""
        applied = 0
        for run_id in dict.fromkeys(d.run_id for d in await self.store.unapplied_decisions()):
            outcome = await self.advance(run_id)
            if outcome is not None and not outcome.retryable:
                applied += 1
        return applied

    async def reconcile(self) -> int:
        """Wake every run owed a driver (none of its jobs waiting or running)."""
        woken = 0
        for run_id, due in await self.store.runs_owed_a_driver():
            at = due if due is not None and due > self.clock() else None
            if await self.jobs.wake(run_id, at=at):
                woken += 1
        if woken:
            log.info("reconciler woke %d run(s) that had no driver", woken)
        return woken


def register_tasks(app: procrastinate.App, driver: RunDriver) -> None:
    """Register the task that drives runs on the job app."""

    async def advance_run(run_id: str) -> None:
        await driver.advance(run_id)

    app.task(name=ADVANCE_TASK, queue=RUN_QUEUE, pass_context=False)(advance_run)


@dataclass(frozen=True)
class Maintenance:
    """The periodic work every worker does; harmless when several do it at once."""

    reconcile_interval: float = 15.0
    stalled_after_seconds: float = 30.0
    retention: timedelta | None = timedelta(days=30)


async def maintenance_round(
    driver: RunDriver,
    settings: Maintenance,
    *,
    prune: Callable[[str], Awaitable[Any]] | None = None,
) -> None:
    """Retry stalled jobs, wake runs owed a driver, prune old checkpoints: once."""
    await driver.jobs.stalled_jobs_retried(seconds_since_heartbeat=settings.stalled_after_seconds)
    await driver.reconcile()
    if prune is not None and settings.retention is not None:
        cutoff = driver.clock() - settings.retention
        for run_id in await driver.store.final_runs_with_checkpoints(cutoff):
            await prune(run_id)


async def maintenance_loop(
    driver: RunDriver,
    settings: Maintenance,
    stop: asyncio.Event,
    *,
    prune: Callable[[str], Awaitable[Any]] | None = None,
) -> None:
    """Run a maintenance round every `reconcile_interval` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            await maintenance_round(driver, settings, prune=prune)
        except Exception:  # the process boundary: the next round tries again
            log.exception("maintenance round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.reconcile_interval)


__all__ = [
    "Maintenance",
    "RetryPolicy",
    "RunDriver",
    "maintenance_loop",
    "maintenance_round",
    "register_tasks",
]
