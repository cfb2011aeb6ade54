"""Guardrails: every bound a resolution is held to, proposed or modified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from models.domain import (
    BillingData,
    Charge,
    CRMCase,
    ModifiedResolution,
    PolicyHit,
    PrecedentHit,
    ResolutionAction,
    ResolutionProposal,
    Subscription,
)
from services.drafting.assessment import assess
from services.drafting.context import DraftingContext
from services.drafting.guardrails import (
    Violation,
    check_modification,
    check_proposal,
    check_resolution,
    describe,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def check(proposal: ResolutionProposal, context: DraftingContext) -> list[Violation]:
    """The guardrails on a draft, under the context's own assessment."""
    return check_proposal(proposal, context, assess(context))


def make_charge(
    charge_id: str = "ch_disputed",
    amount: str = "49.00",
    *,
    refunded: str = "0",
    days_ago: float = 3,
    currency: str = "usd",
    risk: Any = "normal",
    description: str = "Subscription renewal: Basic Monthly",
) -> Charge:
    return Charge(
        charge_id=charge_id,
        customer_id="cus_1",
        amount=Decimal(amount),
        amount_refunded=Decimal(refunded),
        currency=currency,
        refunded=Decimal(refunded) == Decimal(amount),
        description=description,
        created_at=NOW - timedelta(days=days_ago),
        risk_level=risk,
        risk_score=80 if risk in ("elevated", "highest") else 5,
    )


def make_subscription(
    plan: str = "Basic Monthly",
    amount: str = "49.00",
    *,
    started_days_ago: int = 400,
    cancellation_requested_days_ago: int | None = None,
    currency: str = "usd",
) -> Subscription:
    return Subscription(
        subscription_id=f"A-S-{plan}",
        plan=plan,
        status="Active",
        amount=Decimal(amount),
        currency=currency,
        start_date=NOW - timedelta(days=started_days_ago),
        cancellation_requested_at=(
            None
            if cancellation_requested_days_ago is None
            else NOW - timedelta(days=cancellation_requested_days_ago)
        ),
    )


def make_context(
    dispute_type: str = "duplicate_charge",
    *,
    claimed: str | None = None,
    charge: Charge | None = None,
    others: list[Charge] | None = None,
    subscriptions: list[Subscription] | None = None,
    segment: str = "standard",
    outage_hours: str | None = None,
    disputes_last_90d: int = 0,
    subject: str = "Billing problem",
    description: str = "Please look at this charge.",
    policies: list[PolicyHit] | None = None,
    precedents: list[PrecedentHit] | None = None,
    run_id: str = "run-1",
) -> DraftingContext:
    """A drafting context around one disputed charge (defaults: a $49 Basic renewal)."""
    charge = charge or make_charge()
    others = others if others is not None else []
    case = CRMCase(
        case_id="500CASE",
        case_number="00001000",
        account_id="001ACCOUNT",
        subject=subject,
        description=description,
        status="New",
        priority="Medium",
        created_at=NOW - timedelta(days=1),
        dispute_type=dispute_type,
        amount=Decimal(claimed) if claimed is not None else charge.refundable,
        currency=charge.currency,
        charge_id=charge.charge_id,
        outage_hours=None if outage_hours is None else Decimal(outage_hours),
    )
    return DraftingContext(
        run_id=run_id,
        case=case,
        segment=segment,
        account_type="Customer - Direct",
        disputes_last_90d=disputes_last_90d,
        billing=BillingData(
            account_key="A0001",
            balance=Decimal("0"),
            subscriptions=subscriptions if subscriptions is not None else [make_subscription()],
        ),
        disputed_charge=charge,
        recent_charges=[charge, *others],
        refundable=charge.refundable,
        policies=policies or [],
        precedents=precedents or [],
    )


def proposal(action: ResolutionAction, amount: str, currency: str = "usd") -> ResolutionProposal:
    return ResolutionProposal(
        action=action,
        amount=Decimal(amount),
        currency=currency,
        reason="test",
        confidence=0.9,
        drafter="test",
    )


def codes(violations: list[Any]) -> set[str]:
    return {v.code for v in violations}


def duplicate_context() -> DraftingContext:
    """A $49 charge repeated 3 minutes after an identical one: refundable 49.00."""
    twin = make_charge("ch_twin", days_ago=3 + 3 / 1440)
    return make_context("duplicate_charge", others=[twin])


def test_a_proposal_within_every_bound_passes() -> None:
    assert check(proposal(ResolutionAction.FULL_REFUND, "49.00"), duplicate_context()) == []


def test_an_amount_above_the_refundable_is_refused() -> None:
    found = check(proposal(ResolutionAction.FULL_REFUND, "10000"), duplicate_context())
    assert "amount_above_refundable" in codes(found)
    assert "49.00" in describe(found)


def test_the_refundable_counts_what_was_already_refunded() -> None:
    charge = make_charge(amount="49.00", refunded="40.00")
    context = make_context("refund_not_processed", claimed="9.00", charge=charge)
    found = check(proposal(ResolutionAction.PARTIAL_REFUND, "20.00"), context)
    assert "amount_above_refundable" in codes(found)


@pytest.mark.parametrize("action", [ResolutionAction.FULL_REFUND, ResolutionAction.PARTIAL_REFUND])
def test_money_moving_actions_need_an_amount_above_zero(action: ResolutionAction) -> None:
    found = check(proposal(action, "0"), duplicate_context())
    assert "amount_not_positive" in codes(found)


def test_a_credit_of_zero_is_refused() -> None:
    context = make_context("service_outage", outage_hours="3", segment="premium")
    found = check(proposal(ResolutionAction.ACCOUNT_CREDIT, "0"), context)
    assert "amount_not_positive" in codes(found)


def test_a_denial_carries_no_amount() -> None:
    found = check(proposal(ResolutionAction.DENY_REFUND, "5.00"), duplicate_context())
    assert codes(found) == {"deny_with_amount"}
    assert check(proposal(ResolutionAction.DENY_REFUND, "0"), duplicate_context()) == []


def test_an_action_not_allowed_for_the_dispute_type_is_refused() -> None:
    context = make_context("unrecognized_charge", charge=make_charge(risk="highest"))
    found = check(proposal(ResolutionAction.ACCOUNT_CREDIT, "10.00"), context)
    assert "action_not_allowed" in codes(found)
    assert "unrecognized_charge" in describe(found)


def test_an_unknown_dispute_type_may_only_be_denied() -> None:
    context = make_context("chargeback_threat")
    assert "action_not_allowed" in codes(
        check(proposal(ResolutionAction.FULL_REFUND, "49.00"), context)
    )
    assert check(proposal(ResolutionAction.DENY_REFUND, "0"), context) == []


def test_a_partial_refund_must_be_below_the_full_refundable() -> None:
    found = check(proposal(ResolutionAction.PARTIAL_REFUND, "49.00"), duplicate_context())
    assert "partial_not_below_full" in codes(found)
    assert check(proposal(ResolutionAction.PARTIAL_REFUND, "48.99"), duplicate_context()) == []


def test_a_full_refund_is_the_whole_refundable() -> None:
    found = check(proposal(ResolutionAction.FULL_REFUND, "20.00"), duplicate_context())
    assert "full_not_refundable" in codes(found)


def test_more_than_two_decimal_places_is_refused() -> None:
    found = check(proposal(ResolutionAction.PARTIAL_REFUND, "10.005"), duplicate_context())
    assert codes(found) == {"too_many_decimals"}
    # Trailing zeros are not extra precision.
    assert check(proposal(ResolutionAction.PARTIAL_REFUND, "10.500"), duplicate_context()) == []


def test_a_zero_decimal_currency_takes_whole_units_only() -> None:
    charge = make_charge(amount="5000", currency="jpy")
    context = make_context("duplicate_charge", charge=charge)
    found = check(proposal(ResolutionAction.PARTIAL_REFUND, "100.50", "jpy"), context)
    assert "too_many_decimals" in codes(found)


def test_a_currency_other_than_the_charge_is_refused() -> None:
    found = check(proposal(ResolutionAction.FULL_REFUND, "49.00", "eur"), duplicate_context())
    assert codes(found) == {"currency_mismatch"}


def test_a_non_finite_amount_is_refused() -> None:
    found = check_resolution(
        action=ResolutionAction.PARTIAL_REFUND,
        amount=Decimal("NaN"),
        dispute_type="duplicate_charge",
        refundable=Decimal("49.00"),
        currency="usd",
        expected_currency="usd",
    )
    assert codes(found) == {"amount_not_finite"}


def test_a_draft_cannot_exceed_the_policy_even_within_the_refundable() -> None:
    # 2.5 hours of outage for a standard customer earns 10% of the $49 charge.
    context = make_context("service_outage", outage_hours="2.5")
    assert assess(context).ceiling == Decimal("4.90")
    found = check(proposal(ResolutionAction.FULL_REFUND, "49.00"), context)
    assert codes(found) == {"amount_above_policy"}
    assert "4.90" in describe(found)
    assert check(proposal(ResolutionAction.ACCOUNT_CREDIT, "4.90"), context) == []
    assert check(proposal(ResolutionAction.ACCOUNT_CREDIT, "3.00"), context) == []


def test_a_duplicate_without_a_twin_allows_nothing() -> None:
    context = make_context("duplicate_charge", others=[make_charge("ch_old", days_ago=33)])
    found = check(proposal(ResolutionAction.FULL_REFUND, "49.00"), context)
    assert codes(found) == {"amount_above_policy"}


def test_a_reviewer_modification_is_held_to_the_hard_bounds() -> None:
    def check(action: ResolutionAction, amount: str) -> set[str]:
        modified = ModifiedResolution(action=action, amount=Decimal(amount), reason="reviewer")
        return codes(
            check_modification(
                modified,
                dispute_type="service_outage",
                refundable=Decimal("49.00"),
                currency="usd",
            )
        )

    assert check(ResolutionAction.PARTIAL_REFUND, "45.00") == set()
    # Beyond the outage matrix, but a reviewer may go past policy within the bounds.
    assert check(ResolutionAction.FULL_REFUND, "49.00") == set()
    assert "amount_above_refundable" in check(ResolutionAction.PARTIAL_REFUND, "60.00")
    assert "amount_not_positive" in check(ResolutionAction.ACCOUNT_CREDIT, "0")
    assert "partial_not_below_full" in check(ResolutionAction.PARTIAL_REFUND, "49.00")
    assert "deny_with_amount" in check(ResolutionAction.DENY_REFUND, "1.00")


def test_a_reviewer_cannot_use_an_action_not_allowed() -> None:
    modified = ModifiedResolution(
        action=ResolutionAction.ACCOUNT_CREDIT, amount=Decimal("10"), reason="goodwill"
    )
    found = check_modification(
        modified, dispute_type="unrecognized_charge", refundable=Decimal("49.00"), currency="usd"
    )
    assert codes(found) == {"action_not_allowed"}


def test_the_refundable_never_exceeds_the_charges_own() -> None:
    # A context claiming more refundable than the charge has left cannot widen the bound.
    charge = make_charge(amount="49.00", refunded="40.00")
    context = make_context("refund_not_processed", claimed="9.00", charge=charge)
    inflated = context.model_copy(update={"refundable": Decimal("49.00")})
    found = check(proposal(ResolutionAction.FULL_REFUND, "49.00"), inflated)
    assert "amount_above_refundable" in codes(found)
