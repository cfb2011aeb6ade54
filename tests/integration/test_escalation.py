"""Reminders and escalation with an injected clock: one of each, and never a decision."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from services.review.email import EmailError, Mailer, NotificationLog
from services.review.links import ReviewLinkSigner
from services.review.notifications import EmailNotifier
from services.review.reviewers import ReviewerKeys
from services.settings import Settings
from tests.fakes.email import RecordingSender
from tests.fakes.services import NOW
from tests.integration.conftest import Harness
from workflows.context import ReviewRules
from workflows.decisions import record_decision
from workflows.escalation import (
    EscalationPolicy,
    SweepReport,
    notify_overdue_reviews,
    review_escalation_loop,
)

POLICY = EscalationPolicy(reminder_after=timedelta(hours=24), escalate_after=timedelta(hours=48))
APPROVERS = ["alice@example.com", "bob@example.com"]
LEAD = "finance-lead@example.com"


@pytest.fixture(autouse=True)
async def registered_approvers(harness: Harness) -> None:
    """Links go only to registered, active reviewers: alice and bob are; the lead is not."""
    keys = ReviewerKeys(harness.store.engine)
    await keys.create("alice", email="alice@example.com")
    await keys.create("bob", email="bob@example.com")


def notifier_for(
    harness: Harness, sender: RecordingSender, *, escalation_email: str | None = LEAD
) -> EmailNotifier:
    async def no_wait(seconds: float) -> None:
        return None

    return EmailNotifier(
        mailer=Mailer(sender=sender, log_=NotificationLog(harness.store.engine), sleep=no_wait),
        approvers=APPROVERS,
        escalation_email=escalation_email,
        public_base_url="https://review.example.com",
        links=ReviewLinkSigner(b"escalation-test-secret-0123456789", ttl=timedelta(hours=72)),
        keys=ReviewerKeys(harness.store.engine),
        escalation_hours=48,
        clock=lambda: NOW,
    )


async def pending_run(harness: Harness, case_id: str = "500A") -> tuple[str, datetime]:
    outcome = await harness.runner.start(case_id=case_id)
    assert outcome.status == "pending"
    row = await harness.store.get_run(outcome.run_id)
    assert row is not None
    return outcome.run_id, row["created_at"]


async def sweep(harness: Harness, notifier: EmailNotifier, at: datetime) -> SweepReport:
    return await notify_overdue_reviews(
        store=harness.store, notifier=notifier, policy=POLICY, now=at
    )


async def events(harness: Harness, run_id: str) -> list[str]:
    return [
        a["event"]
        for a in await harness.store.audit_trail(run_id)
        if a["event"].startswith("review_")
    ]


async def test_one_reminder_then_one_escalation_and_nothing_is_decided(
    harness: Harness,
) -> None:
    sender = RecordingSender()
    notifier = notifier_for(harness, sender)
    run_id, created = await pending_run(harness)

    assert (
        await sweep(harness, notifier, created + timedelta(hours=23, minutes=59)) == SweepReport()
    )
    assert sender.sent == []

    reminded = await sweep(harness, notifier, created + timedelta(hours=24, minutes=1))
    assert reminded.reminded == [run_id] and reminded.escalated == []
    assert sorted(e.to for e in sender.sent) == APPROVERS
    reminder = sender.to("alice@example.com")[0]
    assert reminder.subject.startswith("Reminder")
    assert "waiting for a decision for 24 hours" in reminder.text
    assert f"https://review.example.com/review/{run_id}?token=" in reminder.text

    for hours in (26, 47):
        assert await sweep(harness, notifier, created + timedelta(hours=hours)) == SweepReport()
    assert len(sender.sent) == 2

    escalated = await sweep(harness, notifier, created + timedelta(hours=48, minutes=1))
    assert escalated.escalated == [run_id] and escalated.reminded == []
    [escalation] = sender.to(LEAD)
    assert escalation.subject.startswith("Escalation")
    assert "Nothing has been decided automatically" in escalation.text
    assert "500A" in escalation.text and "99.00" in escalation.text

    assert await sweep(harness, notifier, created + timedelta(days=30)) == SweepReport()
    assert len(sender.sent) == 3

    # Nothing was decided by the passing of time.
    row = await harness.store.get_run(run_id)
    assert row is not None and row["status"] == "pending"
    assert row["human_review_data"]["awaiting_round"] == 1
    assert await harness.store.decisions_for_run(run_id) == []
    assert harness.payments.refund_requests == []

    # Recorded in notifications and in the audit trail.
    rows = await NotificationLog(harness.store.engine).for_run(run_id)
    assert sorted((r["kind"], r["recipient"], r["status"]) for r in rows) == [
        ("escalation", LEAD, "sent"),
        ("reminder", "alice@example.com", "sent"),
        ("reminder", "bob@example.com", "sent"),
    ]
    assert await events(harness, run_id) == ["review_reminder_sent", "review_escalated"]


async def test_a_long_outage_of_the_sweep_sends_both_at_once(harness: Harness) -> None:
    sender = RecordingSender()
    run_id, created = await pending_run(harness)
    report = await sweep(harness, notifier_for(harness, sender), created + timedelta(hours=72))
    assert report.reminded == [run_id] and report.escalated == [run_id]
    assert sorted(e.to for e in sender.sent) == sorted([*APPROVERS, LEAD])


async def test_reminder_goes_only_to_approvers_who_have_not_decided(harness: Harness) -> None:
    dual = harness.with_context(review_rules=ReviewRules(dual_approval_min_amount=Decimal("50")))
    run_id, created = await pending_run(dual)
    # alice decides by API; her key and her e-mail address are one reviewer, so the
    # reminder knows alice@example.com has decided.
    issued = await ReviewerKeys(harness.store.engine).create("alice", email="alice@example.com")
    alice = await ReviewerKeys(harness.store.engine).verify(issued.key)
    assert alice is not None
    await record_decision(
        dual.store,
        run_id=run_id,
        case_id=None,
        decision="approved",
        reviewer=alice,
        channel="api",
        comments="",
        modified=None,
        version=None,
        now=NOW,
    )
    # Recorded but not yet applied: nobody is chased while the worker picks it up.
    sender = RecordingSender()
    notifier = notifier_for(dual, sender)
    assert await sweep(dual, notifier, created + timedelta(hours=25)) == SweepReport()
    [stored] = await dual.store.unapplied_decisions(run_id=run_id)
    await dual.runner.resume(run_id=run_id, decision=stored.decision)
    await dual.store.mark_decision_applied(stored.id)

    report = await sweep(dual, notifier, created + timedelta(hours=25))
    assert report.reminded == [run_id]
    assert [e.to for e in sender.sent] == ["bob@example.com"]


async def test_decided_and_fresh_runs_are_left_alone(harness: Harness) -> None:
    sender = RecordingSender()
    auto = harness.with_context(review_rules=ReviewRules(auto_approve_max_amount=Decimal("100")))
    done = await auto.runner.start(case_id="500A")
    assert done.status == "completed"
    row = await harness.store.get_run(done.run_id)
    assert row is not None
    report = await sweep(
        harness, notifier_for(harness, sender), row["created_at"] + timedelta(days=9)
    )
    assert report == SweepReport() and sender.sent == []


async def test_without_escalation_email_the_skip_is_recorded_once(harness: Harness) -> None:
    sender = RecordingSender()
    notifier = notifier_for(harness, sender, escalation_email=None)
    run_id, created = await pending_run(harness)
    for hours in (49, 50, 80):
        await sweep(harness, notifier, created + timedelta(hours=hours))
    rows = await NotificationLog(harness.store.engine).for_run(run_id)
    skipped = [r for r in rows if r["kind"] == "escalation"]
    assert [(r["status"], r["error"]) for r in skipped] == [("skipped", "ESCALATION_EMAIL not set")]
    assert sender.to(LEAD) == []
    assert (await events(harness, run_id)).count("review_escalated") == 1


async def test_a_failing_mail_server_still_means_one_reminder(harness: Harness) -> None:
    down = [EmailError("SMTP unavailable", retryable=True) for _ in range(20)]
    sender = RecordingSender(failures=down)
    notifier = notifier_for(harness, sender)
    run_id, created = await pending_run(harness)
    for hours in (25, 26, 27):
        await sweep(harness, notifier, created + timedelta(hours=hours))
    rows = await NotificationLog(harness.store.engine).for_run(run_id)
    assert sorted((r["recipient"], r["status"], r["attempts"]) for r in rows) == [
        ("alice@example.com", "failed", 3),
        ("bob@example.com", "failed", 3),
    ]
    assert sender.attempts == 6
    [audit] = [
        a for a in await harness.store.audit_trail(run_id) if a["event"] == "review_reminder_sent"
    ]
    assert {r["status"] for r in audit["detail"]["recipients"]} == {"failed"}


async def test_concurrent_sweeps_send_one_reminder(harness: Harness) -> None:
    sender = RecordingSender()
    notifier = notifier_for(harness, sender)
    _, created = await pending_run(harness)
    at = created + timedelta(hours=25)
    await asyncio.gather(*(sweep(harness, notifier, at) for _ in range(4)))
    assert sorted(e.to for e in sender.sent) == APPROVERS


async def test_the_loop_sweeps_with_its_clock_until_stopped(harness: Harness) -> None:
    sender = RecordingSender()
    _, created = await pending_run(harness)
    stop = asyncio.Event()
    loop = asyncio.create_task(
        review_escalation_loop(
            store=harness.store,
            notifier=notifier_for(harness, sender),
            policy=POLICY,
            stop=stop,
            interval_seconds=0.05,
            clock=lambda: created + timedelta(hours=25),
        )
    )
    for _ in range(200):
        if len(sender.sent) == 2:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
    assert sorted(e.to for e in sender.sent) == APPROVERS


@pytest.mark.parametrize("hours", [24, 48])
def test_policy_reads_the_settings(hours: int) -> None:
    settings = Settings(
        _env_file=None, review_reminder_hours=hours, review_escalation_hours=hours * 2
    )
    policy = EscalationPolicy.from_settings(settings)
    assert policy.reminder_after == timedelta(hours=hours)
    assert policy.escalate_after == timedelta(hours=hours * 2)


async def test_links_go_only_to_registered_active_reviewers(harness: Harness) -> None:
    keys = ReviewerKeys(harness.store.engine)
    await keys.revoke("bob")  # bob is no longer a reviewer
    sender = RecordingSender()
    notifier = notifier_for(harness, sender)
    run_id, _ = await pending_run(harness)
    await notifier.request_review(run_id=run_id, case_id="500A", summary={})
    assert [e.to for e in sender.sent] == ["alice@example.com"]
    assert "?token=" in sender.sent[0].text
    skipped = [
        n
        for n in await NotificationLog(harness.store.engine).for_run(run_id)
        if n["status"] == "skipped"
    ]
    assert [n["recipient"] for n in skipped] == ["bob@example.com"]
    assert "not a registered, active reviewer" in skipped[0]["error"]
