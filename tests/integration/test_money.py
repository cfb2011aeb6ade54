"""Money moves once, for the case, and only as authorized (issue 11).

Each test reproduces one way money used to move wrongly, through the same paths a reviewer
and a worker take: decisions go through `record_decision` (as the API, the link and the
page do) and the run driver applies them. The fake payment and billing systems behave as
Stripe and Zuora do: refunds shrink what is refundable, idempotency keys expire, refunds
can be pending and fail later.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from models.approvals import approval_state
from models.domain import ModifiedResolution, ResolutionAction
from services.errors import ConflictError, IntegrationError, InvalidRequestError
from services.review.reviewers import Reviewer, ReviewerKeys
from tests.fakes.services import NOW, FakeDrafter, FakeWorld
from tests.integration.conftest import Harness
from workflows.context import ReviewRules
from workflows.controls import cancel_run, retry_run
from workflows.decisions import record_decision

DUAL_AT_500 = ReviewRules(dual_approval_min_amount=Decimal("500"))


def outage(system: str = "crm") -> IntegrationError:
    return IntegrationError("service unavailable", system=system, retryable=True, status=503)


@pytest.fixture
async def people(harness: Harness) -> dict[str, Reviewer]:
    """Three registered reviewers, each as their API key resolves them."""
    keys = ReviewerKeys(harness.store.engine)
    found = {}
    for name in ("alice", "bob", "carol"):
        issued = await keys.create(name, email=f"{name}@example.com")
        reviewer = await keys.verify(issued.key)
        assert reviewer is not None
        found[name] = reviewer
    return found


def world_with(*, charged: str, claimed: str) -> FakeWorld:
    return FakeWorld.default(amount=charged, claimed=claimed)


def harness_for(
    harness: Harness, world: FakeWorld, *, rules: ReviewRules = DUAL_AT_500, **drafter: object
) -> Harness:
    harness.world.cases.update(world.cases)
    harness.world.charges.update(world.charges)
    return harness.with_context(review_rules=rules, drafter=FakeDrafter(**drafter))  # type: ignore[arg-type]


async def decide(
    h: Harness,
    run_id: str,
    reviewer: Reviewer,
    decision: str = "approved",
    *,
    modified: tuple[str, str] | None = None,
    version: int | None = None,
) -> None:
    """Record a decision as the API does, then let the driver apply it."""
    await record_decision(
        h.store,
        run_id=run_id,
        case_id=None,
        decision=decision,
        reviewer=reviewer,
        channel="api",
        comments="",
        modified=(
            ModifiedResolution(
                action=ResolutionAction(modified[0]), amount=Decimal(modified[1]), reason="x"
            )
            if modified
            else None
        ),
        version=version,
        now=NOW,
    )
    await h.driver.advance(run_id)


async def status(h: Harness, run_id: str) -> str:
    row = await h.store.get_run(run_id)
    assert row is not None
    return str(row["status"])


def refunded(h: Harness) -> list[Decimal]:
    return [r.amount for r in h.payments.made]


async def test_one_reviewer_cannot_raise_an_amount_past_dual_control_alone(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    h = harness_for(harness, world_with(charged="2500.00", claimed="200.00"), amount=Decimal("200"))
    run = await h.runner.start(case_id="500A")
    assert run.status == "pending"
    # Before: alice's modification to 2,450 executed on her approval alone.
    await decide(h, run.run_id, people["alice"], modified=("partial_refund", "2450.00"))
    assert await status(h, run.run_id) == "pending"
    assert refunded(h) == []
    with pytest.raises(ConflictError, match="already approved version 2"):
        await decide(h, run.run_id, people["alice"], version=2)
    await decide(h, run.run_id, people["bob"], version=2)
    assert await status(h, run.run_id) == "completed"
    assert refunded(h) == [Decimal("2450.00")]
    [payout] = await h.store.payouts.for_run(run.run_id)
    assert payout.version == 2 and sorted(payout.approved_by) == sorted(
        [f"reviewer:{people['alice'].reviewer_id}", f"reviewer:{people['bob'].reviewer_id}"]
    )


async def test_a_second_approvers_change_needs_approvals_of_its_own(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    h = harness_for(harness, world_with(charged="6000.00", claimed="735.00"), amount=Decimal("735"))
    run = await h.runner.start(case_id="500A")
    await decide(h, run.run_id, people["alice"])  # alice approves 735 (version 1)
    # Before: bob changed it to 5,000 and 5,000 was refunded, approved by nobody else.
    await decide(h, run.run_id, people["bob"], modified=("partial_refund", "5000.00"))
    assert await status(h, run.run_id) == "pending"
    assert refunded(h) == []
    row = await h.store.get_run(run.run_id)
    assert row is not None
    review = row["human_review_data"]
    state = approval_state(row["resolution_proposal"], review["plan"], review["decisions"])
    assert (state.current.number, state.current.amount, state.required) == (
        2,
        Decimal("5000.00"),
        2,
    )
    assert state.approver_names == ("bob",)  # alice's approval was of 735, not of 5,000
    await decide(h, run.run_id, people["alice"], version=2)
    assert await status(h, run.run_id) == "completed"
    assert refunded(h) == [Decimal("5000.00")]


async def test_nobody_approves_a_version_they_were_not_shown(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    h = harness_for(harness, world_with(charged="2450.00", claimed="2450.00"))
    run = await h.runner.start(case_id="500A")
    await decide(h, run.run_id, people["alice"], modified=("partial_refund", "1000.00"))
    # Before: bob, shown "full_refund 2450.00", approved, and alice's 100.00 executed.
    with pytest.raises(ConflictError, match="shown version 1"):
        await decide(h, run.run_id, people["bob"])  # bob's page showed the draft
    assert refunded(h) == []
    await decide(h, run.run_id, people["bob"], version=2)
    assert refunded(h) == [Decimal("1000.00")]


async def test_one_person_is_one_reviewer_through_key_and_link(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    h = harness_for(harness, world_with(charged="1188.00", claimed="1188.00"))
    run = await h.runner.start(case_id="500A")
    await decide(h, run.run_id, people["carol"])  # by API key
    # The e-mailed link carries carol's reviewer id; the page resolves it to the same person.
    by_link = await ReviewerKeys(h.store.engine).reviewer(people["carol"].reviewer_id)
    assert by_link is not None and by_link.key_id is None
    with pytest.raises(ConflictError, match="different reviewer"):
        await decide(h, run.run_id, by_link)
    assert refunded(h) == []


async def test_a_revoked_reviewer_decides_nothing(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    keys = ReviewerKeys(harness.store.engine)
    assert await keys.revoke("carol") >= 1
    assert await keys.reviewer(people["carol"].reviewer_id) is None  # links end
    assert await keys.active(people["carol"].key_id or 0) is None  # sessions end
    assert await keys.reviewer_for_email("carol@example.com") is None  # no new links


async def test_a_resolved_case_is_refused_with_and_without_auto_approval(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    harness.world.add_charge("ch_2", "cus_A", "50.00", days_ago=5)
    harness.world.add_case("500C", "001A", "ch_2", "50.00", dispute_type="duplicate_charge")
    auto = harness.with_context(review_rules=ReviewRules(auto_approve_max_amount=Decimal("100")))
    for h, case_id in ((harness, "500A"), (auto, "500C")):
        first = await h.runner.start(case_id=case_id)
        if first.status == "pending":
            await decide(h, first.run_id, people["alice"])
        assert await status(h, first.run_id) == "completed"
        # Before: a new event id for the resolved case started a run that paid again.
        again = await h.runner.start(case_id=case_id)
        assert again.status == "rejected"
        row = await h.store.get_run(again.run_id)
        assert row is not None
        assert row["final_resolution"]["failed_rule"] == "case_not_resolved_before"
    assert refunded(harness) == [Decimal("99.00"), Decimal("50.00")]


async def test_a_closed_crm_case_is_refused(harness: Harness) -> None:
    case = harness.world.cases["500A"]
    harness.world.cases["500A"] = case.model_copy(update={"status": "Closed"})
    run = await harness.runner.start(case_id="500A")
    row = await harness.store.get_run(run.run_id)
    assert row is not None and row["final_resolution"]["failed_rule"] == "case_open"


async def test_a_charge_paid_before_is_never_auto_approved_and_the_reviewer_sees_it(
    harness: Harness,
) -> None:
    auto = harness.with_context(
        review_rules=ReviewRules(auto_approve_max_amount=Decimal("100")),
        drafter=FakeDrafter(amount=Decimal("60.00")),
    )
    first = await auto.runner.start(case_id="500A")
    assert first.status == "completed" and refunded(auto) == [Decimal("60.00")]
    # A second case about the same charge: 39.00 is all that is left of it.
    harness.world.add_case("500B", "001A", "ch_1", "39.00", dispute_type="duplicate_charge")
    auto = harness.with_context(
        review_rules=ReviewRules(auto_approve_max_amount=Decimal("100")),
        drafter=FakeDrafter(amount=Decimal("39.00")),
    )
    second = await auto.runner.start(case_id="500B")
    assert second.status == "pending"
    row = await auto.store.get_run(second.run_id)
    assert row is not None
    assert "charge_paid_before" in row["human_review_data"]["plan"]["risk_flags"]
    [prior] = row["payment_data"]["prior_payouts"]
    assert (prior["case_id"], prior["amount"], prior["state"]) == ("500A", "60.00", "succeeded")


async def test_credits_count_against_what_is_refundable(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    credit = harness.with_context(
        drafter=FakeDrafter(action=ResolutionAction.ACCOUNT_CREDIT, amount=Decimal("60.00"))
    )
    first = await credit.runner.start(case_id="500A")
    await decide(credit, first.run_id, people["alice"])
    assert await status(credit, first.run_id) == "completed"
    assert [m.amount for m in harness.billing.memos] == [Decimal("60.00")]
    # The charge still shows 99.00 unrefunded at the payment system; 60.00 was credited.
    harness.world.add_case("500B", "001A", "ch_1", "99.00", dispute_type="duplicate_charge")
    second = await harness.runner.start(case_id="500B")
    row = await harness.store.get_run(second.run_id)
    assert row is not None
    assert row["final_resolution"]["failed_rule"] == "amount_within_refundable"
    assert "39.00" in row["final_resolution"]["reason"] or "39" in str(
        row["human_review_data"]["validation"]["checks"]
    )
    assert refunded(harness) == []


async def test_a_crm_outage_of_any_length_after_a_refund_never_pays_twice(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    harness.payments.key_ttl = timedelta(seconds=30)  # Stripe keeps keys for 24 h
    clock = [NOW]
    harness.payments.clock = lambda: clock[0]
    run = await harness.runner.start(case_id="500A")
    harness.crm.fail_outcomes_with = outage()
    await decide(harness, run.run_id, people["alice"])
    assert refunded(harness) == [Decimal("99.00")]
    # The CRM stays down far longer than the provider keeps its idempotency keys.
    for _ in range(6):
        clock[0] += timedelta(seconds=40)
        outcome = await harness.runner.continue_run(run.run_id)
        assert outcome.retryable and outcome.current_step == "update_case"
    harness.crm.fail_outcomes_with = None
    done = await harness.runner.continue_run(run.run_id)
    assert done.status == "completed"
    assert refunded(harness) == [Decimal("99.00")]
    assert harness.payments.refund_requests == [f"{run.run_id}:refund"]


async def test_a_lost_reply_after_the_key_expired_is_found_not_paid_again(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    harness.payments.key_ttl = timedelta(seconds=30)
    clock = [NOW]
    harness.payments.clock = lambda: clock[0]
    run = await harness.runner.start(case_id="500A")
    original = harness.payments.refund

    async def refund_then_lose_the_reply(**kwargs: object) -> object:
        await original(**kwargs)  # type: ignore[arg-type]
        raise outage("payments")  # the refund happened; its answer never arrived

    harness.payments.refund = refund_then_lose_the_reply  # type: ignore[method-assign,assignment]
    await decide(harness, run.run_id, people["alice"])
    [payout] = await harness.store.payouts.for_run(run.run_id)
    assert payout.state == "unknown"
    harness.payments.refund = original  # type: ignore[method-assign]
    clock[0] += timedelta(hours=25)  # the provider has forgotten the key
    done = await harness.runner.continue_run(run.run_id)
    assert done.status == "completed"
    assert refunded(harness) == [Decimal("99.00")]
    [payout] = await harness.store.payouts.for_run(run.run_id)
    assert (payout.state, payout.provider_ref) == ("succeeded", "re_1")


async def test_a_pending_refund_is_followed_until_it_succeeds(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    harness.payments.next_status = "pending"
    run = await harness.runner.start(case_id="500A")
    await decide(harness, run.run_id, people["alice"])
    [payout] = await harness.store.payouts.for_run(run.run_id)
    assert payout.state == "pending"
    assert harness.crm.outcome_requests == 0  # not resolved while pending
    row = await harness.store.get_run(run.run_id)
    assert row is not None and row["status"] == "running" and row["next_attempt_at"] is not None
    assert "pending" in row["last_error"]["message"]
    harness.payments.settle("re_1", "succeeded")
    await harness.driver.advance(run.run_id)
    assert await status(harness, run.run_id) == "completed"
    assert harness.crm.outcome_requests == 1 and refunded(harness) == [Decimal("99.00")]


async def test_a_refund_that_fails_later_is_shown_to_a_person_and_paid_only_on_retry(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    harness.payments.next_status = "pending"
    run = await harness.runner.start(case_id="500A")
    await decide(harness, run.run_id, people["alice"])
    harness.payments.settle("re_1", "failed", failure_reason="expired_or_canceled_card")
    await harness.driver.advance(run.run_id)
    row = await harness.store.get_run(run.run_id)
    assert row is not None and row["status"] == "needs_attention"
    assert "expired_or_canceled_card" in row["last_error"]["message"]
    assert harness.crm.outcome_requests == 0
    # Advancing again (a redelivery, the reconciler) pays nothing: a person must look.
    await harness.driver.advance(run.run_id)
    assert len(harness.payments.made) == 1
    # An operator retries it: a new attempt, under a new key, pays once.
    harness.payments.next_status = "succeeded"
    await retry_run(harness.store, harness.jobs, run_id=run.run_id, actor="ops", reason="new card")
    await harness.driver.advance(run.run_id)
    assert await status(harness, run.run_id) == "completed"
    payouts = await harness.store.payouts.for_run(run.run_id)
    assert [(p.idempotency_key, p.state) for p in payouts] == [
        (f"{run.run_id}:refund", "failed"),
        (f"{run.run_id}:refund:2", "succeeded"),
    ]


async def test_a_run_with_money_in_flight_cannot_be_cancelled(
    harness: Harness, people: dict[str, Reviewer]
) -> None:
    harness.payments.next_status = "pending"
    run = await harness.runner.start(case_id="500A")
    await decide(harness, run.run_id, people["alice"])
    with pytest.raises(ConflictError, match="pending refund"):
        await cancel_run(harness.store, run_id=run.run_id, actor="ops", reason="")


async def test_execution_checks_the_approvals_once_more(harness: Harness) -> None:
    from agents.move_money import ExecutionRefused, authorized

    proposal = {"action": "full_refund", "amount": "900.00", "currency": "usd", "drafter": "x"}
    plan = {"required_approvals": 2, "dual_approval_min_amount": "500"}
    one = [{"decision": "approved", "reviewer": "alice", "reviewer_id": 1, "version": 1}]
    with pytest.raises(ExecutionRefused, match="needs 2"):
        authorized({"proposal": proposal, "review": plan, "decisions": one})  # type: ignore[typeddict-item]
    same_twice = one + [{"decision": "approved", "reviewer": "alice!", "reviewer_id": 1}]
    with pytest.raises(ExecutionRefused):
        authorized({"proposal": proposal, "review": plan, "decisions": same_twice})  # type: ignore[typeddict-item]
    two = one + [{"decision": "approved", "reviewer": "bob", "reviewer_id": 2, "version": 1}]
    state = authorized({"proposal": proposal, "review": plan, "decisions": two})  # type: ignore[typeddict-item]
    assert state.current.amount == Decimal("900.00")
    assert isinstance(ExecutionRefused("x"), InvalidRequestError)


async def test_a_review_says_which_systems_are_the_sandbox(harness: Harness) -> None:
    from services.review.notifications import ReviewFacts

    mixed = harness.with_context(sandbox_systems=("payments",))
    run = await mixed.runner.start(case_id="500A")
    row = await mixed.store.get_run(run.run_id)
    assert row is not None
    assert row["human_review_data"]["plan"]["sandbox_systems"] == ["payments"]
    assert ReviewFacts.from_run(row).sandbox_systems == ["payments"]
