"""Reminders and escalation for reviews left waiting. Nothing is ever decided by a timeout.

A run pending longer than REVIEW_REMINDER_HOURS gets one reminder to the approvers who
have not decided yet; longer than REVIEW_ESCALATION_HOURS, one e-mail to ESCALATION_EMAIL.
Waiting is measured from the run's creation; a chargeback's review counts down to its
evidence deadline instead (reminded 72 h before `due_by`, escalated 24 h before). Each is
recorded in `notifications` (whatever its outcome, so a failing mail server does not
produce a reminder per sweep) and in the audit trail. The sweep runs in the worker
process; an advisory lock per run keeps two workers from sending the same reminder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from models.approvals import identity_of
from services.logs import bind_run_id
from services.persistence.store import RunBusyError, WorkflowStore
from services.review.email import Delivery, NotificationLog
from services.review.notifications import ESCALATION, REMINDER
from services.settings import Settings
from workflows.decisions import evidence_due_by

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EscalationPolicy:
    reminder_after: timedelta
    escalate_after: timedelta
    # A chargeback counts down to its evidence deadline instead: reminded this long before
    # `due_by`, escalated this long before it.
    remind_before_deadline: timedelta = timedelta(hours=72)
    escalate_before_deadline: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings) -> EscalationPolicy:
        return cls(
            reminder_after=timedelta(hours=settings.review_reminder_hours),
            escalate_after=timedelta(hours=settings.review_escalation_hours),
        )


class OverdueNotifier(Protocol):
    log: NotificationLog

    async def send_reminder(
        self, run: dict[str, Any], *, waited: timedelta, decided_by: set[str]
    ) -> list[Delivery]: ...

    async def send_escalation(
        self, run: dict[str, Any], *, waited: timedelta
    ) -> list[Delivery]: ...


@dataclass
class SweepReport:
    reminded: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)


async def notify_overdue_reviews(
    *,
    store: WorkflowStore,
    notifier: OverdueNotifier,
    policy: EscalationPolicy,
    now: datetime,
) -> SweepReport:
    """Send the reminders and escalations that are due at `now`; never decide anything."""
    report = SweepReport()
    for run in await store.list_runs(status="pending", limit=1000):
        waited = now - run["created_at"]
        due = evidence_due_by(run)
        if due is not None:
            left = due - now
            remind, escalate = (
                left <= policy.remind_before_deadline,
                left <= policy.escalate_before_deadline,
            )
        else:
            remind, escalate = waited >= policy.reminder_after, waited >= policy.escalate_after
        if not (remind or escalate):
            continue
        run_id = str(run["run_id"])
        try:
            async with store.run_lock(f"escalation:{run_id}"):
                with bind_run_id(run_id):
                    await _notify_run(store, notifier, run, waited, report, remind, escalate)
        except RunBusyError:
            continue  # another worker is sweeping this run right now
    return report


async def _notify_run(
    store: WorkflowStore,
    notifier: OverdueNotifier,
    run: dict[str, Any],
    waited: timedelta,
    report: SweepReport,
    remind: bool,
    escalate: bool,
) -> None:
    run_id = str(run["run_id"])
    awaiting = (run.get("human_review_data") or {}).get("awaiting_round")
    decisions = await store.decisions_for_run(run_id)
    if awaiting is None or any(d["round"] == awaiting for d in decisions):
        return  # a decision is recorded and about to be applied: nobody needs chasing
    done = await notifier.log.kinds(run_id)
    hours = round(waited.total_seconds() / 3600, 1)
    if remind and REMINDER not in done:
        decided_by = {identity_of(d) for d in decisions}
        sent = await notifier.send_reminder(run, waited=waited, decided_by=decided_by)
        await _audit(store, run, "review_reminder_sent", sent, hours)
        report.reminded.append(run_id)
    if escalate and ESCALATION not in done:
        sent = await notifier.send_escalation(run, waited=waited)
        await _audit(store, run, "review_escalated", sent, hours)
        report.escalated.append(run_id)


async def _audit(
    store: WorkflowStore,
    run: dict[str, Any],
    event: str,
    deliveries: list[Delivery],
    hours: float,
) -> None:
    log.info("%s after %s h: %s", event, hours, ", ".join(d.status for d in deliveries))
    await store.audit(
        run_id=str(run["run_id"]),
        case_id=run["case_id"],
        step="wait_human_review",
        actor="system",
        event=event,
        detail={
            "waited_hours": hours,
            "recipients": [
                {"to": d.recipient, "status": d.status, "attempts": d.attempts, "error": d.error}
                for d in deliveries
            ],
        },
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def review_escalation_loop(
    *,
    store: WorkflowStore,
    notifier: OverdueNotifier,
    policy: EscalationPolicy,
    stop: asyncio.Event,
    interval_seconds: float = 300.0,
    clock: Callable[[], datetime] = _utc_now,
) -> None:
    """Sweep for overdue reviews every `interval_seconds` until `stop` is set."""
    while not stop.is_set():
        try:
            report = await notify_overdue_reviews(
                store=store, notifier=notifier, policy=policy, now=clock()
            )
            if report.reminded or report.escalated:
                log.info(
                    "review sweep: %d reminded, %d escalated",
                    len(report.reminded),
                    len(report.escalated),
                )
        except Exception:  # the process boundary: a failed sweep is retried at the next one
            log.exception("review reminder sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
