"""Chargebacks and early fraud warnings through the graph (issue 14), on fake adapters that
keep disputes as Stripe does; and the refund path around disputed charges."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from services.errors import ConflictError, InvalidRequestError
from services.review.reviewers import Reviewer, ReviewerKeys
from tests.fakes.services import NOW
from tests.integration.conftest import Harness
from workflows.context import ReviewRules
from workflows.decisions import record_decision
from workflows.escalation import EscalationPolicy, notify_overdue_reviews


@pytest.fixture
async def alice(harness: Harness) -> Reviewer:
    keys = ReviewerKeys(harness.store.engine)
    reviewer = await keys.verify((await keys.create("alice")).key)
    assert reviewer is not None
    return reviewer


async def approve(  # type: ignore[no-untyped-def]
    h: Harness, run_id: str, reviewer: Reviewer, *, at=NOW, modified=None, version=None
) -> None:
    """Record `reviewer`'s approval (of `modified`, on the page of `version`), then drive."""
    await record_decision(
        h.store,
        run_id=run_id,
        case_id=None,
        decision="approved",
        reviewer=reviewer,
        channel="api",
        comments="",
        modified=modified,
        version=version,
        now=at,
    )
    await h.driver.advance(run_id)


async def row(h: Harness, run_id: str) -> dict:  # type: ignore[type-arg]
    found = await h.store.get_run(run_id)
    assert found is not None
    return found


async def test_a_crm_refund_case_on_a_disputed_charge_is_refused(harness: Harness) -> None:
    harness.world.add_dispute("dp_1", "ch_1")
    run = await harness.runner.start(case_id="500A")
    assert run.status == "rejected"
    found = await row(harness, run.run_id)
    assert found["human_review_data"]["validation"]["failed_rule"] == "charge_not_disputed"
    assert harness.payments.refund_requests == []


async def test_the_dispute_lookup_runs_only_for_a_charge_stripe_shows_disputed(
    harness: Harness,
) -> None:
    """fetch_data reads the disputed charge from the customer's charge list and asks for
    its dispute only when the charge is `disputed`; move_money always asks, fresh."""
    run = await harness.runner.start(case_id="500A")
    assert run.status == "pending"
    assert harness.payments.dispute_lookups == []
    harness.world.add_charge("ch_2", "cus_A", "49.00", days_ago=5)
    harness.world.add_case("500B", "001A", "ch_2", "49.00", dispute_type="duplicate_charge")
    harness.world.add_dispute("dp_2", "ch_2")
    disputed = await harness.runner.start(case_id="500B")
    assert disputed.status == "rejected"
    assert harness.payments.dispute_lookups == ["ch_2"]


async def test_a_charge_disputed_after_approval_is_never_refunded(
    harness: Harness, alice: Reviewer
) -> None:
    run = await harness.runner.start(case_id="500A")
    assert run.status == "pending"
    harness.world.add_dispute("dp_late", "ch_1")  # the chargeback arrives during the review
    await approve(harness, run.run_id, alice)
    found = await row(harness, run.run_id)
    assert found["status"] == "needs_attention"
    assert (
        "charged back" in found["last_error"]["message"]
        or "disputed" in (found["last_error"]["message"])
    )
    assert harness.payments.refund_requests == []


async def test_a_chargeback_is_drafted_reviewed_and_answered_once(
    harness: Harness, alice: Reviewer
) -> None:
    harness.world.add_dispute("dp_cb", "ch_1", reason="subscription_canceled")
    run = await harness.runner.start(case_id="dp_cb", kind="chargeback")
    assert run.status == "pending"
    found = await row(harness, run.run_id)
    proposal = found["resolution_proposal"]
    assert proposal["action"] == "contest"
    assert "cancellation_rebuttal" in proposal["evidence"]
    assert proposal["evidence_sources"]["cancellation_rebuttal"].startswith("Zuora")
    assert found["human_review_data"]["plan"]["auto_approve"] is False
    await approve(harness, run.run_id, alice)
    found = await row(harness, run.run_id)
    assert found["status"] == "completed", found["last_error"]
    [(key, evidence)] = harness.payments.submissions
    assert key == f"{run.run_id}:dispute:evidence"
    assert evidence["cancellation_rebuttal"] == proposal["evidence"]["cancellation_rebuttal"]
    assert all(v.startswith("file_") for f, v in evidence.items() if f == "refund_policy")
    # Driven again (a redelivery, the reconciler): the dispute is under review, nothing more.
    await harness.driver.advance(run.run_id)
    assert len(harness.payments.submissions) == 1
    assert harness.payments.refund_requests == []


async def test_a_decision_after_the_evidence_deadline_is_refused(
    harness: Harness, alice: Reviewer
) -> None:
    harness.world.add_dispute("dp_due", "ch_1", due_in=timedelta(days=2))
    run = await harness.runner.start(case_id="dp_due", kind="chargeback")
    with pytest.raises(ConflictError, match="deadline"):
        await approve(harness, run.run_id, alice, at=NOW + timedelta(days=3))
    assert harness.payments.submissions == []


async def test_reminders_count_down_to_the_evidence_deadline(harness: Harness) -> None:
    harness.world.add_dispute("dp_remind", "ch_1", due_in=timedelta(days=5))
    run = await harness.runner.start(case_id="dp_remind", kind="chargeback")
    due = NOW + timedelta(days=5)
    policy = EscalationPolicy(reminder_after=timedelta(hours=1), escalate_after=timedelta(hours=2))

    class Recorder:
        def __init__(self) -> None:
            from services.review.email import NotificationLog

            self.log = NotificationLog(harness.store.engine)
            self.reminded: list[str] = []
            self.escalated: list[str] = []

        async def send_reminder(self, run, *, waited, decided_by):  # type: ignore[no-untyped-def]
            self.reminded.append(str(run["run_id"]))
            await self.log.record(
                run_id=str(run["run_id"]), kind="reminder", recipient="x", status="sent", error=None
            )
            return []

        async def send_escalation(self, run, *, waited):  # type: ignore[no-untyped-def]
            self.escalated.append(str(run["run_id"]))
            await self.log.record(
                run_id=str(run["run_id"]),
                kind="escalation",
                recipient="x",
                status="sent",
                error=None,
            )
            return []

    notifier = Recorder()
    # Four days before the deadline nobody is chased; two days before, a reminder; twelve
    # hours before, the escalation.
    report = await notify_overdue_reviews(
        store=harness.store, notifier=notifier, policy=policy, now=due - timedelta(days=4)
    )
    assert report.reminded == [] and report.escalated == []
    report = await notify_overdue_reviews(
        store=harness.store, notifier=notifier, policy=policy, now=due - timedelta(hours=48)
    )
    assert (report.reminded, report.escalated) == ([run.run_id], [])
    report = await notify_overdue_reviews(
        store=harness.store, notifier=notifier, policy=policy, now=due - timedelta(hours=12)
    )
    assert report.escalated == [run.run_id]


async def test_an_early_fraud_warning_is_refunded_up_to_its_cap(
    harness: Harness, alice: Reviewer
) -> None:
    harness.world.add_charge("ch_w", "cus_A", "40.00", days_ago=2)
    harness.world.add_warning("issfr_1", "ch_w")
    off = await harness.runner.start(case_id="issfr_1", kind="early_fraud_warning")
    assert off.status == "pending"  # the cap is off by default: a reviewer decides
    await approve(harness, off.run_id, alice)
    assert (await row(harness, off.run_id))["status"] == "completed"
    assert [r.amount for r in harness.payments.made] == [Decimal("40.00")]

    harness.world.add_charge("ch_w2", "cus_A", "30.00", days_ago=1)
    harness.world.add_warning("issfr_2", "ch_w2")
    capped = harness.with_context(
        review_rules=ReviewRules(fraud_warning_auto_refund_max=Decimal("50"))
    )
    auto = await capped.runner.start(case_id="issfr_2", kind="early_fraud_warning")
    assert auto.status == "completed"
    assert [r.amount for r in harness.payments.made] == [Decimal("40.00"), Decimal("30.00")]
    [payout] = await harness.store.payouts.for_run(auto.run_id)
    assert payout.state == "succeeded"

    harness.world.add_charge("ch_w3", "cus_A", "80.00", days_ago=1)
    harness.world.add_warning("issfr_3", "ch_w3")
    above = await capped.runner.start(case_id="issfr_3", kind="early_fraud_warning")
    assert above.status == "pending"  # above the cap: a reviewer decides


async def test_a_warning_on_a_charge_already_disputed_refunds_nothing(harness: Harness) -> None:
    harness.world.add_charge("ch_d", "cus_A", "40.00", days_ago=2)
    harness.world.add_dispute("dp_d", "ch_d")
    harness.world.add_warning("issfr_d", "ch_d")
    run = await harness.runner.start(case_id="issfr_d", kind="early_fraud_warning")
    assert run.status == "rejected"
    found = await row(harness, run.run_id)
    assert found["human_review_data"]["validation"]["failed_rule"] == "charge_not_disputed"
    assert harness.payments.made == []


async def test_the_desk_lists_chargebacks_by_deadline_with_the_outcome_and_the_workload(
    harness: Harness, alice: Reviewer
) -> None:
    import httpx

    from api.app import create_app
    from api.deps import ApiServices

    harness.world.add_charge("ch_x", "cus_A", "25.00", days_ago=3)
    harness.world.add_charge("ch_y", "cus_A", "35.00", days_ago=3)
    harness.world.add_dispute("dp_late", "ch_x", due_in=timedelta(days=9))
    harness.world.add_dispute("dp_soon", "ch_y", reason="fraudulent", due_in=timedelta(days=1))
    late = await harness.runner.start(case_id="dp_late", kind="chargeback")
    soon = await harness.runner.start(case_id="dp_soon", kind="chargeback")
    await harness.store.record_dispute_update(
        message_id="m1",
        event_id="evt_closed",
        dispute_id="dp_late",
        event_type="charge.dispute.closed",
        status="won",
        amount=2500,
        currency="usd",
    )
    keys = ReviewerKeys(harness.store.engine)
    key = (await keys.create("desk-reader")).key
    services = ApiServices(
        store=harness.store, backends={"drafter": "openai:gpt-4o-mini"}, drafter_reachable=False
    )
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await http.post("/login", data={"api_key": key, "next": "/"})
        desk = await http.get("/")
        assert desk.status_code == 200
        section = desk.text[desk.text.index('id="chargebacks"') :]
        assert section.index("dp_soon") < section.index("dp_late")  # soonest deadline first
        assert "won: funds reinstated" in section
        assert 'id="workload"' in desk.text and 'id="pending-count">2<' in desk.text
        assert 'id="drafter-warning"' in desk.text
        page = await http.get(f"/review/{soon.run_id}")
        assert page.status_code == 200
        assert 'id="evidence-due"' in page.text and "fraudulent" in page.text
        assert 'id="chargeback-history"' in page.text
    assert late.status == soon.status == "pending"


async def test_a_reviewer_edits_the_evidence_and_exactly_that_is_submitted(
    harness: Harness, alice: Reviewer
) -> None:
    from models.domain import ChargebackAnswer

    keys = ReviewerKeys(harness.store.engine)
    bob = await keys.verify((await keys.create("bob")).key)
    assert bob is not None
    harness.world.add_dispute("dp_edit", "ch_1", reason="subscription_canceled")
    dual = harness.with_context(review_rules=ReviewRules(dual_approval_min_amount=Decimal("50")))
    run = await dual.runner.start(case_id="dp_edit", kind="chargeback")
    edited = ChargebackAnswer(
        action="contest",
        reason="rebuttal rewritten",
        evidence={"cancellation_rebuttal": "The customer renewed on 1 October; see the log."},
    )
    with pytest.raises(InvalidRequestError, match="not text evidence"):
        await approve(
            dual,
            run.run_id,
            alice,
            modified=edited.model_copy(update={"evidence": {"refund_policy": "text"}}),
        )
    await approve(dual, run.run_id, alice, modified=edited)
    assert dual.payments.submissions == []  # version 2 needs a second reviewer (99.00 > 50)
    with pytest.raises(ConflictError, match="shown version 1"):
        await approve(dual, run.run_id, bob)  # bob's page showed the draft
    found = await row(dual, run.run_id)
    assert found["status"] == "pending", found["status"]
    await approve(dual, run.run_id, bob, version=2)
    assert (await row(dual, run.run_id))["status"] == "completed"
    [(key, evidence)] = dual.payments.submissions
    assert evidence["cancellation_rebuttal"] == "The customer renewed on 1 October; see the log."
    assert "product_description" not in evidence  # the edited version replaces the draft's text


async def test_the_review_page_edits_a_chargebacks_evidence(harness: Harness) -> None:
    import re

    import httpx

    from api.app import create_app
    from api.deps import ApiServices

    harness.world.add_dispute("dp_page", "ch_1", reason="subscription_canceled")
    run = await harness.runner.start(case_id="dp_page", kind="chargeback")
    key = (await ReviewerKeys(harness.store.engine).create("carol")).key
    services = ApiServices(store=harness.store, backends={}, clock=lambda: NOW)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await http.post("/login", data={"api_key": key, "next": "/"})
        page = await http.get(f"/review/{run.run_id}")
        assert 'name="evidence_cancellation_rebuttal"' in page.text
        assert '<option value="contest"' in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        posted = await http.post(
            f"/review/{run.run_id}",
            data={
                "decision": "modify",
                "action": "contest",
                "reason": "clearer rebuttal",
                "evidence_cancellation_rebuttal": "No cancellation before the renewal.",
                "evidence_uncategorized_text": "",
                "version": "1",
                "csrf": csrf.group(1),
            },
        )
        assert posted.status_code == 303, posted.text
    [decision] = await harness.store.decisions_for_run(run.run_id)
    assert decision["modified_resolution"] == {
        "action": "contest",
        "amount": "99.00",
        "reason": "clearer rebuttal",
        "evidence": {"cancellation_rebuttal": "No cancellation before the renewal."},
    }


async def test_the_draft_shows_how_earlier_chargebacks_of_its_reason_ended(
    harness: Harness,
) -> None:
    harness.world.add_charge("ch_h1", "cus_A", "20.00", days_ago=9)
    harness.world.add_charge("ch_h2", "cus_A", "21.00", days_ago=8)
    harness.world.add_charge("ch_h3", "cus_A", "22.00", days_ago=7)
    for dispute_id, charge in (("dp_h1", "ch_h1"), ("dp_h2", "ch_h2"), ("dp_h3", "ch_h3")):
        harness.world.add_dispute(dispute_id, charge, reason="fraudulent")
    await harness.runner.start(case_id="dp_h1", kind="chargeback")
    await harness.runner.start(case_id="dp_h2", kind="chargeback")
    for event_id, dispute_id, status in (("e1", "dp_h1", "won"), ("e2", "dp_h2", "lost")):
        await harness.store.record_dispute_update(
            message_id=event_id,
            event_id=event_id,
            dispute_id=dispute_id,
            event_type="charge.dispute.closed",
            status=status,
            amount=2000,
            currency="usd",
        )
    third = await harness.runner.start(case_id="dp_h3", kind="chargeback")
    found = await row(harness, third.run_id)
    history = found["resolution_proposal"]["similar_chargebacks"]
    assert (history["won"], history["lost"], history["open"]) == (1, 1, 0)


async def test_a_chargeback_of_a_customer_the_crm_does_not_know_still_reaches_a_reviewer(
    harness: Harness,
) -> None:
    harness.world.add_charge("ch_z", "cus_unknown", "45.00", days_ago=4)
    harness.world.add_dispute("dp_z", "ch_z", reason="product_not_received")
    run = await harness.runner.start(case_id="dp_z", kind="chargeback")
    assert run.status == "pending"  # not lost by default for want of a CRM record
    found = await row(harness, run.run_id)
    assert "crm_account_not_found" in found["human_review_data"]["plan"]["risk_flags"]
    evidence = found["resolution_proposal"]["evidence"]
    assert evidence and "customer_name" not in evidence  # nothing the CRM did not say
    assert "facts from Stripe only" in found["billing_data"]["data_quality"][0]
