"""route_review: decide whether the proposal may execute without a human, or needs two."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from langgraph.runtime import Runtime

from models.dispute_types import UNKNOWN_DISPUTE_TYPE_FLAG, is_known_dispute_type
from models.domain import (
    CRMData,
    PaymentData,
    ResolutionAction,
    ResolutionProposal,
    ReviewDecision,
)
from models.state import DisputeState, ReviewPlan
from workflows.context import ReviewRules, WorkflowContext

PAID_BEFORE_FLAG = "charge_paid_before"


async def route_review(state: DisputeState, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
    """Plan the review: auto-approval, required approvals and risk flags."""
    ctx = runtime.context
    proposal = ResolutionProposal.model_validate(state["proposal"])
    crm = CRMData.model_validate(state["crm_data"])
    payment = PaymentData.model_validate(state["payment_data"])
    plan = plan_review(proposal, crm, payment, ctx.review_rules)
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
