"""Guardrails: the bounds every resolution is held to, whoever proposed it.

`check_resolution` holds the hard bounds (refundable, sign, action allowed for the dispute
type, partial below full, currency and its minor units). `check_proposal` adds the policy
ceiling of the dispute's assessment (services/drafting/assessment.py), so neither the model
nor the customer's text can raise an amount past policy. `check_modification` applies the
hard bounds to a reviewer's modified resolution: a reviewer may depart from the policy,
never from the bounds. Each check returns the violations found, empty when it may stand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from models.domain import ModifiedResolution, ResolutionAction, ResolutionProposal, quantize_money
from models.policy_rules import MONEY_MOVING_ACTIONS, allowed_actions, currency_decimals
from services.drafting.assessment import PolicyAssessment, refundable_of
from services.drafting.context import DraftingContext

ZERO = Decimal("0")


@dataclass(frozen=True)
class Violation:
    """One broken bound: a stable code and a message fit to show the model or a reviewer."""

    code: str
    message: str


def describe(violations: Sequence[Violation]) -> str:
    """The violations as one sentence."""
    return "; ".join(v.message for v in violations)


def _money(amount: Decimal) -> str:
    return f"{quantize_money(amount):.2f}"


def check_resolution(
    *,
    action: ResolutionAction,
    amount: Decimal,
    dispute_type: str,
    refundable: Decimal,
    currency: str | None,
    expected_currency: str,
) -> list[Violation]:
    """The hard bounds of any resolution, proposed or modified."""
    if not amount.is_finite():
        return [Violation("amount_not_finite", f"amount {amount} is not a number")]
    found: list[Violation] = []
    allowed = allowed_actions(dispute_type)
    if action not in allowed:
        names = ", ".join(sorted(a.value for a in allowed))
        found.append(
            Violation(
                "action_not_allowed",
                f"action {action.value} is not allowed for {dispute_type} (allowed: {names})",
            )
        )
    if currency is not None and currency.lower() != expected_currency.lower():
        found.append(
            Violation(
                "currency_mismatch",
                f"currency {currency} differs from the charge currency {expected_currency}",
            )
        )
    places = currency_decimals(expected_currency)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        found.append(
            Violation(
                "too_many_decimals",
                f"amount {amount} has more than {places} decimal places for "
                f"{expected_currency.upper()}",
            )
        )
    if action in MONEY_MOVING_ACTIONS and amount <= ZERO:
        found.append(
            Violation(
                "amount_not_positive", f"{action.value} needs an amount above 0, got {amount}"
            )
        )
    if action == ResolutionAction.DENY_REFUND and amount != ZERO:
        found.append(Violation("deny_with_amount", f"deny_refund must have amount 0, got {amount}"))
    if amount > refundable:
        found.append(
            Violation(
                "amount_above_refundable",
                f"amount {amount} exceeds the refundable {_money(refundable)} on the charge",
            )
        )
    if action == ResolutionAction.PARTIAL_REFUND and amount > ZERO and amount >= refundable:
        found.append(
            Violation(
                "partial_not_below_full",
                f"partial_refund {amount} must be below the full refundable {_money(refundable)}",
            )
        )
    if action == ResolutionAction.FULL_REFUND and ZERO < amount < refundable:
        found.append(
            Violation(
                "full_not_refundable",
                f"full_refund must be the refundable {_money(refundable)}, got {amount}; "
                "use partial_refund for less",
            )
        )
    return found


def check_proposal(
    proposal: ResolutionProposal,
    context: DraftingContext,
    assessment: PolicyAssessment,
) -> list[Violation]:
    """Hard bounds plus the policy ceiling, for a drafted proposal."""
    found = check_resolution(
        action=proposal.action,
        amount=proposal.amount,
        dispute_type=context.case.dispute_type,
        refundable=refundable_of(context),
        currency=proposal.currency,
        expected_currency=context.disputed_charge.currency,
    )
    if not proposal.amount.is_finite():
        return found
    if proposal.action in MONEY_MOVING_ACTIONS and proposal.amount > assessment.ceiling:
        found.append(
            Violation(
                "amount_above_policy",
                f"amount {proposal.amount} exceeds the policy ceiling {_money(assessment.ceiling)} "
                f"({assessment.basis})",
            )
        )
    return found


def check_modification(
    modified: ModifiedResolution,
    *,
    dispute_type: str,
    refundable: Decimal,
    currency: str,
) -> list[Violation]:
    """Hard bounds for a reviewer's modified resolution (`currency`: the charge's)."""
    return check_resolution(
        action=modified.action,
        amount=modified.amount,
        dispute_type=dispute_type,
        refundable=refundable,
        currency=None,
        expected_currency=currency,
    )


__all__ = [
    "Violation",
    "check_modification",
    "check_proposal",
    "check_resolution",
    "describe",
]
