"""route_review: decide whether the proposal may execute without a human, or needs two."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from langgraph.runtime import Runtime

from agents.fetch_stripe import NO_ACCOUNT_FLAG
from models.dispute_types import UNKNOWN_DISPUTE_TYPE_FLAG, is_known_dispute_type
from models.domain import (
    CRMData,
    DisputeType,
    PaymentData,
    ResolutionAction,
    ResolutionProposal,
    ReviewDecision,
)
from models.state import DisputeState, ReviewPlan
from services.drafting.facts import (
    OUTAGE_HOURS_UNKNOWN_FLAG,
    Remedy,
    outage_hours_unknown,
    requested_remedy,
)
from workflows.context import ReviewRules, WorkflowContext

PAID_BEFORE_FLAG = "charge_paid_before"
CLAIM_EXCEEDED_FLAG = "claim_exceeded"
ACTION_DIFFERS_FLAG = "action_differs"
DATA_QUALITY_FLAG = "data_defaulted"
REMEDY_OF_ACTION: dict[ResolutionAction, Remedy] = {
    ResolutionAction.FULL_REFUND: "refund",
    ResolutionAction.PARTIAL_REFUND: "refund",
    ResolutionAction.ACCOUNT_CREDIT: "credit",
}
REMEDY_NAMES: dict[Remedy, str] = {"refund": "a refund", "credit": "an account credit"}


async def route_review(state: DisputeState, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
    """Plan the review: auto-approval, required approvals and risk flags."""
    ctx = runtime.context
    if state.get("kind") == "chargeback":
        return {"review": chargeback_plan(state, ctx.review_rules)}
    proposal = ResolutionProposal.model_validate(state["proposal"])
    crm = CRMData.model_validate(state["crm_data"])
    payment = PaymentData.model_validate(state["payment_data"])
    plan = plan_review(proposal, crm, payment, ctx.review_rules)
    if state.get("kind") == "early_fraud_warning":
        plan["risk_flags"] = [*plan["risk_flags"], *_account_flags(state)]
        plan = fraud_warning_plan(plan, proposal, ctx.review_rules)
    if ctx.sandbox_systems:
        plan["sandbox_systems"] = list(ctx.sandbox_systems)
    update: dict[str, Any] = {"review": plan}
    if plan["auto_approve"]:
        approval = ReviewDecision(
            decision="approved",
            reviewer="system",
            channel="system",
            comments=plan["auto_approve_rule"] or "",
            decided_at=ctx.clock(),
            version=1,
        )
        update["decisions"] = [approval.model_dump(mode="json")]
    return update


def plan_review(
    proposal: ResolutionProposal, crm: CRMData, payment: PaymentData, rules: ReviewRules
) -> ReviewPlan:
    """Apply the review rules to one proposal."""
    flags: list[str] = []
    # No rule covers a type the project does not know: a human decides, never the system.
    if not is_known_dispute_type(crm.case.dispute_type):
        flags.append(UNKNOWN_DISPUTE_TYPE_FLAG)
    charge = payment.disputed_charge
    if charge is not None and charge.risk_level in ("elevated", "highest"):
        flags.append(f"radar_risk_{charge.risk_level}")
    if crm.disputes_last_90d > rules.max_disputes_90d:
        flags.append(f"disputes_90d_{crm.disputes_last_90d}>{rules.max_disputes_90d}")
    if proposal.fallback_used:
        flags.append("drafter_fallback")
    if payment.prior_payouts:
        # This system already paid against the charge (another case): a human looks.
        flags.append(PAID_BEFORE_FLAG)
    flags += proposal_flags(proposal, crm)
    required = 2 if proposal.amount > rules.dual_approval_min_amount else 1
    auto = (
        not flags
        and required == 1
        and proposal.action != ResolutionAction.DENY_REFUND
        and Decimal("0") < proposal.amount <= rules.auto_approve_max_amount
        and proposal.confidence >= rules.auto_approve_min_confidence
        and proposal.risk_level == "low"
    )
    rule = (
        f"amount {proposal.amount} <= {rules.auto_approve_max_amount}, confidence "
        f"{proposal.confidence} >= {rules.auto_approve_min_confidence}, low risk"
        if auto
        else None
    )
    return {
        "auto_approve": auto,
        "auto_approve_rule": rule,
        "required_approvals": required,
        "risk_flags": flags,
        "dual_approval_min_amount": str(rules.dual_approval_min_amount),
    }


def chargeback_plan(state: DisputeState, rules: ReviewRules) -> ReviewPlan:
    """A chargeback's answer is always a person's decision, two above the threshold."""
    amount = Decimal(str((state.get("proposal") or {}).get("amount") or "0"))
    return {
        "auto_approve": False,
        "auto_approve_rule": None,
        "required_approvals": 2 if amount > rules.dual_approval_min_amount else 1,
        "risk_flags": ["chargeback", *_account_flags(state)],
        "dual_approval_min_amount": str(rules.dual_approval_min_amount),
    }


def fraud_warning_plan(
    plan: ReviewPlan, proposal: ResolutionProposal, rules: ReviewRules
) -> ReviewPlan:
    """An early fraud warning's refund: auto-approved up to its own cap (0: never), unless
    the charge was paid before; Radar's risk level is what the warning is about, so it
    does not block it."""
    cap = rules.fraud_warning_auto_refund_max
    blocking = [f for f in plan["risk_flags"] if not f.startswith("radar_risk_")]
    auto = (
        not blocking and plan["required_approvals"] == 1 and Decimal("0") < proposal.amount <= cap
    )
    return {
        **plan,
        "auto_approve": auto,
        "auto_approve_rule": (
            f"early fraud warning refund {proposal.amount} <= {cap}" if auto else None
        ),
    }


def proposal_flags(proposal: ResolutionProposal, crm: CRMData) -> list[str]:
    """Flags on what the proposal rests on or departs from, each with its reason after a
    colon: a missing outage duration, defaulted CRM data the outage compensation rests on,
    more than the customer claimed, another remedy than the customer asked for."""
    flags: list[str] = []
    case = crm.case
    if outage_hours_unknown(case):
        flags.append(OUTAGE_HOURS_UNKNOWN_FLAG)
    if crm.data_quality and case.dispute_type == DisputeType.SERVICE_OUTAGE:
        # The segment, which the CRM left empty or unknown, sets the outage compensation.
        flags.append(f"{DATA_QUALITY_FLAG}: {'; '.join(crm.data_quality)}")
    same_currency = proposal.currency.lower() == case.currency.lower()
    if proposal.amount > case.amount > 0 and same_currency:
        currency = case.currency.upper()
        flags.append(
            f"{CLAIM_EXCEEDED_FLAG}: proposes {proposal.amount:.2f} {currency}, the customer "
            f"claimed {case.amount:.2f} {currency}"
        )
    asked = requested_remedy(f"{case.subject}\n{case.description}")
    offered = REMEDY_OF_ACTION.get(proposal.action)
    if asked is not None and offered is not None and asked != offered:
        flags.append(
            f"{ACTION_DIFFERS_FLAG}: the customer asked for {REMEDY_NAMES[asked]}, the "
            f"proposal is {REMEDY_NAMES[offered]}"
        )
    return flags


def _account_flags(state: DisputeState) -> list[str]:
    """`crm_account_not_found` when a Stripe-started run found no CRM or billing account."""
    notes = ((state.get("crm_data") or {}).get("account") or {}).get("data_quality") or []
    return [NO_ACCOUNT_FLAG] if any("no CRM account" in n for n in notes) else []
