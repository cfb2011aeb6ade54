"""The policy assessment of one dispute: what the resolution rules make of its facts.

`assess` applies the rules of models/policy_rules.py to a `DraftingContext`: the most the
policy allows (the ceiling), the action and amount the rules propose, and the facts that
decide them. It is computed once per draft (services/drafting/guarded.py); the rules
drafter proposes exactly it, the prompt shows its facts and ceiling to the model, and the
guardrails hold every draft to its ceiling.

A fact read from the case text rather than a CRM field says so ("outage 30 h from
description: '…about 30 hours…'"). An outage whose duration is found in neither is not
denied: it is proposed at the lowest compensating row of the outage matrix, with the
matrix shown, and route_review flags it `outage_hours_unknown` for a reviewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Literal

from models.domain import (
    Charge,
    DisputeType,
    ResolutionAction,
    Subscription,
    quantize_money,
)
from models.policy_rules import DUPLICATE_WINDOW_DAYS, OUTAGE_MATRIX, OutageBand, outage_band
from services.drafting.context import DraftingContext
from services.drafting.facts import outage_duration

ZERO = Decimal("0")
# Disputes in 90 days above which a proposal is rated high risk (Settings' default).
MANY_DISPUTES_90D = 3
HIGH_RISK_LEVELS = ("elevated", "highest")
RiskRating = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class PolicyAssessment:
    """What the resolution rules make of one dispute."""

    dispute_type: str
    ceiling: Decimal  # the most the policy allows to move; never above the refundable
    action: ResolutionAction  # what the rules propose
    amount: Decimal
    basis: str  # why: the rule applied to the facts, one sentence
    facts: tuple[str, ...]  # the facts that decide it, short
    confidence: float
    # What the reviewer must see whoever drafts: where a fact was read, the matrix when a
    # fact is missing, what the billing data lacked. Shown among the supporting factors.
    reviewer_notes: tuple[str, ...] = ()


def refundable_of(context: DraftingContext) -> Decimal:
    """What may still be refunded: the context's figure, never above the charge's own."""
    return max(min(context.refundable, context.disputed_charge.refundable), ZERO)


def _money(amount: Decimal) -> str:
    return f"{quantize_money(amount):.2f}"


def _refund_action(amount: Decimal, refundable: Decimal) -> ResolutionAction:
    if amount <= ZERO:
        return ResolutionAction.DENY_REFUND
    return ResolutionAction.FULL_REFUND if amount >= refundable else ResolutionAction.PARTIAL_REFUND


def find_duplicate_of(charge: Charge, others: Sequence[Charge]) -> Charge | None:
    """An earlier-or-equal twin of `charge`: same amount and currency, within the window."""
    window = timedelta(days=DUPLICATE_WINDOW_DAYS)
    twins = [
        other
        for other in others
        if other.charge_id != charge.charge_id
        and other.amount == charge.amount
        and other.currency.lower() == charge.currency.lower()
        and other.status == "succeeded"
        and abs(other.created_at - charge.created_at) <= window
    ]
    # The duplicate is the later charge; prefer a twin that came first.
    twins.sort(key=lambda c: (c.created_at > charge.created_at, c.created_at))
    return twins[0] if twins else None


def plan_for_charge(charge: Charge, subscriptions: Sequence[Subscription]) -> Subscription | None:
    """The subscription a charge most likely bills: same currency, started before the charge,
    active (or not yet cancelled) at the time, closest in price."""
    candidates = [
        sub
        for sub in subscriptions
        if sub.currency.lower() == charge.currency.lower()
        and sub.start_date <= charge.created_at
        and (sub.cancelled_at is None or sub.cancelled_at >= charge.created_at)
    ] or [s for s in subscriptions if s.currency.lower() == charge.currency.lower()]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (abs(s.amount - charge.amount), s.start_date))


def proposal_risk_level(context: DraftingContext, amount: Decimal) -> RiskRating:
    """low / medium / high, from the processor's risk, the dispute history and the amount."""
    charge = context.disputed_charge
    if charge.risk_level in HIGH_RISK_LEVELS or context.disputes_last_90d > MANY_DISPUTES_90D:
        return "high"
    if charge.risk_level == "unknown" or amount > Decimal("500"):
        return "medium"
    return "low"


def assess(context: DraftingContext) -> PolicyAssessment:
    """Apply the resolution rule of the dispute's type to the facts of `context`."""
    charge = context.disputed_charge
    refundable = refundable_of(context)
    base = (
        f"disputed charge {charge.charge_id}: {_money(charge.amount)} {charge.currency} on "
        f"{charge.created_at.date()}, refunded {_money(charge.amount_refunded)}, "
        f"refundable {_money(refundable)}, risk {charge.risk_level}",
    )
    try:
        dispute = DisputeType(context.case.dispute_type)
    except ValueError:
        return PolicyAssessment(
            context.case.dispute_type,
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            f"unknown dispute type {context.case.dispute_type!r}: no rule applies",
            base,
            0.2,
        )
    handler = _ASSESSORS[dispute]
    ceiling, action, amount, basis, facts, confidence = handler(context, refundable)
    ceiling = min(quantize_money(ceiling), refundable)
    amount = min(quantize_money(amount), ceiling)
    if amount <= ZERO:
        action, amount = ResolutionAction.DENY_REFUND, ZERO
    return PolicyAssessment(
        dispute.value,
        ceiling,
        action,
        amount,
        basis,
        base + tuple(facts),
        confidence,
        _reviewer_notes(context, dispute, facts),
    )


# The types whose rule reads the customer's subscriptions (their dates and prices).
_READS_SUBSCRIPTIONS = frozenset(
    {
        DisputeType.CANCELLATION_NOT_PROCESSED,
        DisputeType.INCORRECT_AMOUNT,
        DisputeType.UNRECOGNIZED_CHARGE,
    }
)


def _reviewer_notes(
    context: DraftingContext, dispute: DisputeType, facts: Sequence[str]
) -> tuple[str, ...]:
    notes: list[str] = []
    if dispute == DisputeType.SERVICE_OUTAGE:
        notes += [f for f in facts if f.startswith("outage ")]
    if dispute in _READS_SUBSCRIPTIONS:
        notes += [f"billing data: {note}" for note in context.billing.data_quality]
    return tuple(notes)


def outage_matrix_line(segment: str) -> str:
    """The outage matrix's rows for `segment`, on one line, as the reviewer is shown it."""
    rows = ", ".join(
        f"{band.label} {band.share[segment]:.0%}" for band in OUTAGE_MATRIX if segment in band.share
    )
    return f"outage matrix, {segment}: {rows} of the charge"


def lowest_compensating_band(segment: str) -> OutageBand | None:
    """The shortest band of the outage matrix that compensates a `segment` customer."""
    return next((b for b in OUTAGE_MATRIX if b.share.get(segment, ZERO) > ZERO), None)


_Outcome = tuple[Decimal, ResolutionAction, Decimal, str, list[str], float]


def _assess_duplicate(context: DraftingContext, refundable: Decimal) -> _Outcome:
    charge = context.disputed_charge
    others = [c for c in context.recent_charges if c.charge_id != charge.charge_id]
    twin = find_duplicate_of(charge, others)
    if twin is None:
        return (
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            f"no other charge of {_money(charge.amount)} within {DUPLICATE_WINDOW_DAYS} days: "
            "no duplicate found",
            [f"no charge of the same amount within {DUPLICATE_WINDOW_DAYS} days"],
            0.55,
        )
    gap = abs(charge.created_at - twin.created_at)
    return (
        refundable,
        ResolutionAction.FULL_REFUND,
        refundable,
        f"charge repeats {twin.charge_id} of the same amount {gap.days} day(s) apart: "
        "refund the duplicate",
        [f"twin charge {twin.charge_id} of {_money(twin.amount)}"],
        0.85,
    )


def _outage_share_outcome(
    context: DraftingContext, refundable: Decimal, share: Decimal, fact: str, confidence: float
) -> _Outcome:
    owed = quantize_money(context.disputed_charge.amount * share)
    if share >= 1:
        return (
            refundable,
            ResolutionAction.FULL_REFUND,
            refundable,
            f"{fact}: refund the charge",
            [fact],
            confidence,
        )
    return (
        owed,
        ResolutionAction.ACCOUNT_CREDIT,
        owed,
        f"{fact}: credit {_money(owed)}",
        [fact],
        confidence,
    )


def _assess_outage_unknown(context: DraftingContext, refundable: Decimal) -> _Outcome:
    # Not a denial: the least the policy gives for an outage, for a reviewer to confirm.
    segment = context.segment
    band = lowest_compensating_band(segment)
    if band is None:
        return (
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            f"segment {segment!r} is not in the outage matrix",
            [f"unknown segment {segment}"],
            0.3,
        )
    share = band.share[segment]
    fact = (
        "outage duration in neither the CRM field nor the case text: lowest compensating "
        f"row {band.label}, segment {segment}: {share:.0%} of charge"
    )
    ceiling, action, amount, basis, facts, confidence = _outage_share_outcome(
        context, refundable, share, fact, 0.4
    )
    return (
        ceiling,
        action,
        amount,
        f"{basis}, for a reviewer to confirm",
        [*facts, outage_matrix_line(segment)],
        confidence,
    )


def _assess_outage(context: DraftingContext, refundable: Decimal) -> _Outcome:
    charge, duration = context.disputed_charge, outage_duration(context.case)
    if duration is None:
        return _assess_outage_unknown(context, refundable)
    band = outage_band(duration.hours)
    share = band.share.get(context.segment)
    if share is None:
        return (
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            f"segment {context.segment!r} is not in the outage matrix",
            [f"unknown segment {context.segment}"],
            0.3,
        )
    owed = quantize_money(charge.amount * share)
    fact = (
        f"outage {duration.label} {duration.source}, band {band.label}, "
        f"segment {context.segment}: {share:.0%} of charge"
    )
    if owed <= ZERO:
        return (ZERO, ResolutionAction.DENY_REFUND, ZERO, f"{fact}: no compensation", [fact], 0.85)
    # A duration read from the text is likelier wrong than the CRM's own figure.
    confidence = 0.85 if duration.from_crm_field else 0.7
    return _outage_share_outcome(context, refundable, share, fact, confidence)


def _assess_cancellation(context: DraftingContext, refundable: Decimal) -> _Outcome:
    charge = context.disputed_charge
    requested = [
        s.cancellation_requested_at
        for s in context.billing.subscriptions
        if s.cancellation_requested_at is not None
    ]
    if not requested:
        return (
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            "no cancellation request recorded in billing",
            ["no cancellation request on record"],
            0.5,
        )
    asked = min(requested)
    after = [
        c
        for c in context.recent_charges
        if c.created_at > asked and c.status == "succeeded" and c.charge_id != charge.charge_id
    ]
    facts = [f"cancellation requested {asked.date()}"]
    if after:
        facts.append(
            f"{len(after)} other charge(s) after the request, each refunded on its own case"
        )
    gap = (charge.created_at - asked).days
    if charge.created_at <= asked:
        return (
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            f"charge made {-gap} day(s) before the cancellation request: it is due",
            facts,
            0.75,
        )
    return (
        refundable,
        ResolutionAction.FULL_REFUND,
        refundable,
        f"charge made {gap} day(s) after the cancellation request: refund it",
        facts,
        0.85,
    )


def _assess_incorrect_amount(context: DraftingContext, refundable: Decimal) -> _Outcome:
    charge = context.disputed_charge
    plan = plan_for_charge(charge, context.billing.subscriptions)
    if plan is None:
        return (
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            "no subscription in the charge's currency: the plan price is unknown",
            ["plan price unknown"],
            0.4,
        )
    difference = charge.amount - plan.amount
    fact = f"plan {plan.plan} priced {_money(plan.amount)} {plan.currency}/{plan.billing_period}"
    if difference <= ZERO:
        return (
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            f"charge {_money(charge.amount)} is not above the plan price {_money(plan.amount)}",
            [fact],
            0.8,
        )
    owed = min(difference, refundable)
    if owed < refundable:
        action = ResolutionAction.PARTIAL_REFUND
        confidence = 0.85
    else:
        # What is left on the charge is all overcharge, and a full refund is not an
        # action for this type: credit it and let a reviewer look.
        action = ResolutionAction.ACCOUNT_CREDIT
        confidence = 0.6
    return (
        owed,
        action,
        owed,
        f"charge {_money(charge.amount)} exceeds the plan price {_money(plan.amount)} by "
        f"{_money(difference)}: refund the difference",
        [fact, f"overcharge {_money(difference)}"],
        confidence,
    )


def _assess_unrecognized(context: DraftingContext, refundable: Decimal) -> _Outcome:
    charge = context.disputed_charge
    if charge.risk_level in HIGH_RISK_LEVELS:
        return (
            refundable,
            ResolutionAction.FULL_REFUND,
            refundable,
            f"charge rated {charge.risk_level} risk by the payment processor: refund as likely "
            "fraud",
            [f"processor risk {charge.risk_level} (score {charge.risk_score})"],
            0.85,
        )
    matches = [
        s
        for s in context.billing.subscriptions
        if s.amount == charge.amount
        and s.currency.lower() == charge.currency.lower()
        and s.start_date <= charge.created_at
        and (s.cancelled_at is None or s.cancelled_at >= charge.created_at)
    ]
    if matches:
        plan = matches[0]
        return (
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            f"charge matches the price of the customer's {plan.plan} subscription, active since "
            f"{plan.start_date.date()}: recognisable",
            [f"matches subscription {plan.subscription_id} ({plan.plan})"],
            0.75,
        )
    return (
        refundable,
        ResolutionAction.FULL_REFUND,
        refundable,
        "charge matches no subscription of the customer: refund, subject to review",
        ["charge matches no subscription"],
        0.6,
    )


def _assess_refund_not_processed(context: DraftingContext, refundable: Decimal) -> _Outcome:
    charge = context.disputed_charge
    # The case amount is the refund the customer was promised and has not received.
    outstanding = quantize_money(context.case.amount)
    facts = [
        f"promised refund outstanding {_money(outstanding)}; charge already shows "
        f"{_money(charge.amount_refunded)} refunded"
    ]
    if refundable <= ZERO:
        return (
            ZERO,
            ResolutionAction.DENY_REFUND,
            ZERO,
            "the charge is already refunded in full: nothing is left to pay",
            facts,
            0.8,
        )
    owed = min(outstanding, refundable)
    return (
        owed,
        _refund_action(owed, refundable),
        owed,
        f"pay the promised refund of {_money(owed)} still outstanding",
        facts,
        0.85 if outstanding <= refundable else 0.6,
    )


_ASSESSORS = {
    DisputeType.DUPLICATE_CHARGE: _assess_duplicate,
    DisputeType.SERVICE_OUTAGE: _assess_outage,
    DisputeType.CANCELLATION_NOT_PROCESSED: _assess_cancellation,
    DisputeType.INCORRECT_AMOUNT: _assess_incorrect_amount,
    DisputeType.UNRECOGNIZED_CHARGE: _assess_unrecognized,
    DisputeType.REFUND_NOT_PROCESSED: _assess_refund_not_processed,
}


__all__ = [
    "PolicyAssessment",
    "RiskRating",
    "assess",
    "find_duplicate_of",
    "lowest_compensating_band",
    "outage_matrix_line",
    "plan_for_charge",
    "proposal_risk_level",
    "refundable_of",
]
