"""Every branch of the graph, on PostgreSQL checkpoints, with fake adapters."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from models.domain import ModifiedResolution, ResolutionAction, ReviewDecision
from tests.fakes.services import (
    NOW,
    FakeKnowledge,
    outage,
)
from tests.integration.conftest import Harness
from workflows.context import ReviewRules


def decision(
    verdict: str = "approved",
    *,
    reviewer: str = "alice",
    round_: int = 1,
    modified: ModifiedResolution | None = None,
) -> ReviewDecision:
    return ReviewDecision(
        decision=verdict,  # type: ignore[arg-type]
        reviewer=reviewer,
        comments="checked",
        modified_resolution=modified,
        decided_at=datetime.now(NOW.tzinfo),
        round=round_,
    )


async def test_valid_dispute_pauses_for_review_and_notifies(harness: Harness) -> None:
    outcome = await harness.runner.start(case_id="500A")
    assert outcome.status == "pending"
    assert outcome.awaiting_round == 1
    assert [n["run_id"] for n in harness.notifier.sent] == [outcome.run_id]
    row = await harness.store.get_run(outcome.run_id)
    assert row is not None and row["status"] == "pending"
    assert row["current_step"] == "wait_human_review"
    assert row["resolution_proposal"]["amount"] == "99.00"
    assert row["llm_cost"] == Decimal("0.000027")
    assert harness.payments.refunds == {}


async def test_invalid_dispute_is_rejected_with_its_rule(harness: Harness) -> None:
    harness.world.add_case("500B", "001A", "ch_1", "150.00", dispute_type="duplicate_charge")
    outcome = await harness.runner.start(case_id="500B")
    assert outcome.status == "rejected"
    row = await harness.store.get_run(outcome.run_id)
    assert row is not None
    assert row["final_resolution"]["failed_rule"] == "amount_within_refundable"
    assert harness.notifier.sent == []


async def test_unknown_dispute_type_is_drafted_and_reviewed_not_rejected(
    harness: Harness,
) -> None:
    harness.world.add_case(
        "500U", "001A", "ch_1", "99.00", dispute_type="unknown", dispute_label="Billing Query"
    )
    started = await harness.runner.start(case_id="500U")
    assert started.status == "pending"
    row = await harness.store.get_run(started.run_id)
    assert row is not None
    assert row["human_review_data"]["validation"]["valid"] is True
    assert row["human_review_data"]["plan"]["risk_flags"] == ["unknown_dispute_type"]
    assert row["crm_data"]["case"]["dispute_label"] == "Billing Query"
    assert harness.notifier.sent[0]["summary"]["review"]["risk_flags"] == ["unknown_dispute_type"]
    # A human may still decide it, and what they approve executes.
    done = await harness.runner.resume(run_id=started.run_id, decision=decision())
    assert done.status == "completed"
    assert list(harness.payments.refunds) == [f"{started.run_id}:refund"]


async def test_unknown_case_is_rejected_not_retried(harness: Harness) -> None:
    outcome = await harness.runner.start(case_id="500-missing")
    assert outcome.status == "rejected"
    row = await harness.store.get_run(outcome.run_id)
    assert row is not None and row["final_resolution"]["failed_rule"] == "records_exist"


async def test_approval_executes_refund_once_and_stores_precedent(harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    done = await harness.runner.resume(run_id=started.run_id, decision=decision())
    assert done.status == "completed"
    assert list(harness.payments.refunds) == [f"{started.run_id}:refund"]
    assert harness.payments.refunds[f"{started.run_id}:refund"].amount == Decimal("99.00")
    assert f"{started.run_id}:case_update" in harness.crm.outcomes
    assert "500A" in harness.knowledge.stored


async def test_modified_resolution_is_what_executes(harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    modified = ModifiedResolution(
        action=ResolutionAction.PARTIAL_REFUND, amount=Decimal("45.00"), reason="half"
    )
    done = await harness.runner.resume(run_id=started.run_id, decision=decision(modified=modified))
    assert done.status == "completed"
    refund = harness.payments.refunds[f"{started.run_id}:refund"]
    assert refund.amount == Decimal("45.00")


async def test_rejection_ends_run_without_executing(harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    done = await harness.runner.resume(run_id=started.run_id, decision=decision("rejected"))
    assert done.status == "rejected"
    assert harness.payments.refund_requests == []
    assert harness.crm.outcomes == {}


async def test_auto_approval_executes_without_review(harness: Harness) -> None:
    auto = harness.with_context(review_rules=ReviewRules(auto_approve_max_amount=Decimal("100")))
    outcome = await auto.runner.start(case_id="500A")
    assert outcome.status == "completed"
    assert auto.notifier.sent == []
    row = await auto.store.get_run(outcome.run_id)
    assert row is not None
    assert row["human_review_data"]["decisions"][0]["reviewer"] == "system"


async def test_dual_control_needs_two_different_reviewers(harness: Harness) -> None:
    dual = harness.with_context(review_rules=ReviewRules(dual_approval_min_amount=Decimal("50")))
    started = await dual.runner.start(case_id="500A")
    first = await dual.runner.resume(run_id=started.run_id, decision=decision())
    assert first.status == "pending" and first.awaiting_round == 2
    assert dual.payments.refund_requests == []
    done = await dual.runner.resume(
        run_id=started.run_id, decision=decision(reviewer="bob", round_=2)
    )
    assert done.status == "completed"
    assert len(dual.payments.refunds) == 1


async def test_outage_during_execution_resumes_without_paying_twice(harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    harness.payments.fail_refunds_with = outage()
    failed = await harness.runner.resume(run_id=started.run_id, decision=decision())
    # A retryable failure is not an end: the run stays running at its last checkpoint.
    assert failed.status == "running" and failed.retryable
    row = await harness.store.get_run(started.run_id)
    assert row is not None and row["status"] == "running"
    assert row["last_error"]["step"] == "move_money"
    harness.payments.fail_refunds_with = None
    assert await harness.runner.has_pending_steps(started.run_id)
    done = await harness.runner.continue_run(started.run_id)
    assert done.status == "completed"
    # Replaying the step once more sends the same key: the fake holds one refund.
    assert set(harness.payments.refund_requests) == {f"{started.run_id}:refund"}
    assert len(harness.payments.refunds) == 1


async def test_defect_in_a_node_ends_run_as_failed(harness: Harness) -> None:
    class BrokenKnowledge(FakeKnowledge):
        async def search_policies(self, *, query: str, k: int = 3):  # type: ignore[override]
            raise RuntimeError("index corrupted")

    broken = harness.with_context(knowledge=BrokenKnowledge())
    outcome = await broken.runner.start(case_id="500A")
    assert outcome.status == "failed"
    row = await broken.store.get_run(outcome.run_id)
    assert row is not None
    assert row["final_resolution"]["error"]["step"] == "generate_resolution"
    assert broken.payments.refund_requests == []
