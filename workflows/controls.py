"""Operator controls on a run: retry and cancel, each audited with actor and reason."""

from __future__ import annotations

from datetime import UTC, datetime

from services.errors import ConflictError, NotFoundError
from services.persistence.jobs import RunJobs
from services.persistence.store import WorkflowStore

RETRYABLE_STATUSES = ("failed", "needs_attention")
CANCELLABLE_STATUSES = ("running", "pending", "needs_attention")


async def retry_run(
    store: WorkflowStore, jobs: RunJobs, *, run_id: str, actor: str, reason: str
) -> None:
    """Put a failed or parked run back in the hands of the workers, from its checkpoint."""
    run = await store.run_head(run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} not found")
    if run["status"] not in RETRYABLE_STATUSES:
        raise ConflictError(f"run {run_id} is {run['status']}; only failed or parked runs retry")
    # A failed payout the run parked on has now been seen: the next attempt may pay again.
    acknowledged = await store.payouts.acknowledge_failed(run_id)
    await store.schedule_attempt(run_id, attempts=0, at=None, status="running")
    await store.audit(
        run_id=run_id,
        case_id=run["case_id"],
        step=run.get("current_step") or "unknown",
        actor=actor,
        event="run_retried",
        detail={
            "reason": reason,
            "from_status": run["status"],
            "failed_payouts_acknowledged": acknowledged,
        },
    )
    await jobs.wake(run_id)


async def cancel_run(store: WorkflowStore, *, run_id: str, actor: str, reason: str) -> None:
    """End a run that has no payout made or in flight: it is `cancelled`, nothing further
    executes. A run whose money moved (or may have) can only be retried to its end."""
    run = await store.run_head(run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} not found")
    if run["status"] not in CANCELLABLE_STATUSES:
        raise ConflictError(f"run {run_id} is {run['status']} and cannot be cancelled")
    committed = [p for p in await store.payouts.for_run(run_id) if p.committed]
    if committed:
        payout = committed[-1]
        raise ConflictError(
            f"run {run_id} has a {payout.state} {payout.action} of {payout.amount} "
            f"{payout.currency.upper()} and cannot be cancelled; retry it to finish"
        )
    await store.update_run(
        run_id,
        status="cancelled",
        attempts=0,
        next_attempt_at=None,
        completed_at=datetime.now(UTC),
    )
    await store.audit(
        run_id=run_id,
        case_id=run["case_id"],
        step=run.get("current_step") or "unknown",
        actor=actor,
        event="run_cancelled",
        detail={"reason": reason, "from_status": run["status"]},
    )
