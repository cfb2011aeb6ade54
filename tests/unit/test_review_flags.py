"""route_review's flags on the proposal itself: each one stops auto-approval and says why."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.route_review import plan_review
from models.domain import (
    CRMAccount,
    CRMData,
    PaymentData,
    ResolutionAction,
    ResolutionProposal,
)
from tests.unit.test_guardrails import make_charge, make_context
from workflows.context import ReviewRules

# Every draft here is small, confident and low risk: only a flag can stop auto-approval.
AUTO = ReviewRules(auto_approve_max_amount=Decimal("100"), auto_approve_min_confidence=0.5)
FULL = ResolutionAction.FULL_REFUND
CREDIT = ResolutionAction.ACCOUNT_CREDIT


def plan_for(
    action: ResolutionAction,
    amount: str,
    *,
    dispute_type: str = "duplicate_charge",
    claimed: str = "49.00",
    description: str = "Please look at this charge.",
    outage_hours: str | None = None,
    account_notes: list[str] | None = None,
) -> tuple[bool, list[str]]:
    context = make_context(
        dispute_type, claimed=claimed, description=description, outage_hours=outage_hours
    )
    account = CRMAccount(
        account_id="001ACCOUNT",
        name="Acme",
        type="Customer",
        segment="standard",
        stripe_customer_id="cus_1",
        zuora_account_id="A1",
        data_quality=account_notes or [],
    )
    crm = CRMData(case=context.case, account=account, disputes_last_90d=0)
    payment = PaymentData(
        customer_id="cus_1", disputed_charge=make_charge(), recent_charges=[make_charge()]
    )
    proposal = ResolutionProposal(
        action=action,
        amount=Decimal(amount),
        reason="drafted",
        confidence=0.9,
        risk_level="low",
        drafter="fake",
    )
    plan = plan_review(proposal, crm, payment, AUTO)
    return plan["auto_approve"], plan["risk_flags"]


def test_a_draft_at_the_claim_and_of_the_remedy_asked_is_auto_approved() -> None:
    assert plan_for(FULL, "49.00", description="Please refund it.") == (True, [])


def test_a_proposal_above_the_claim_is_flagged_with_both_amounts() -> None:
    auto, flags = plan_for(FULL, "49.00", claimed="25.00")
    assert not auto
    assert flags == ["claim_exceeded: proposes 49.00 USD, the customer claimed 25.00 USD"]
    # At or below the claim: nothing to flag.
    assert plan_for(FULL, "25.00", claimed="25.00") == (True, [])


@pytest.mark.parametrize(
    ("action", "description", "flag"),
    [
        (
            CREDIT,
            "Please refund this month's fee.",
            "action_differs: the customer asked for a refund, the proposal is an account credit",
        ),
        (
            FULL,
            "We request the SLA credit due under our agreement.",
            "action_differs: the customer asked for an account credit, the proposal is a refund",
        ),
    ],
)
def test_a_remedy_other_than_the_one_asked_for_is_flagged(
    action: ResolutionAction, description: str, flag: str
) -> None:
    assert plan_for(action, "20.00", description=description) == (False, [flag])


def test_a_text_that_asks_for_no_particular_remedy_is_not_flagged() -> None:
    assert plan_for(CREDIT, "20.00", description="What is this charge?") == (True, [])


def test_an_outage_without_a_duration_is_flagged_and_never_auto_approved() -> None:
    unknown = plan_for(
        CREDIT, "4.90", dispute_type="service_outage", description="Down all evening."
    )
    assert unknown == (False, ["outage_hours_unknown"])
    # A duration in the field or in the text: no flag.
    field = plan_for(CREDIT, "4.90", dispute_type="service_outage", outage_hours="2")
    text = plan_for(
        CREDIT, "4.90", dispute_type="service_outage", description="Down for 90 minutes."
    )
    assert field == text == (True, [])


def test_a_defaulted_segment_is_flagged_where_it_sets_the_compensation() -> None:
    note = "account segment (Customer_Segment__c) missing: standard assumed"
    outage = plan_for(
        CREDIT, "4.90", dispute_type="service_outage", outage_hours="2", account_notes=[note]
    )
    assert outage == (False, [f"data_defaulted: {note}"])
    # The segment decides nothing about a duplicate charge.
    assert plan_for(FULL, "49.00", account_notes=[note]) == (True, [])
