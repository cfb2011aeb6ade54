"""Resolution drafting contract and the offline rules drafter."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from models.domain import (
    BillingData,
    Charge,
    CRMCase,
    DraftResult,
    PolicyHit,
    PrecedentHit,
    ResolutionAction,
    ResolutionProposal,
    quantize_money,
)


class DraftingContext(BaseModel):
    """Everything a drafter may see. Contact data (e-mail, phone, address) is not in it."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    case: CRMCase
    segment: str
    account_type: str
    disputes_last_90d: int
    billing: BillingData
    disputed_charge: Charge
    recent_charges: list[Charge]
    refundable: Decimal
    policies: list[PolicyHit]
    precedents: list[PrecedentHit]


class ResolutionDrafter(Protocol):
    name: str

    async def draft(self, *, context: DraftingContext) -> DraftResult: ...


class RulesDrafter:
    """Deterministic offline drafter; every proposal says it came from the rules."""

    name = "rules"

    async def draft(self, *, context: DraftingContext) -> DraftResult:
        return DraftResult(proposal=self.propose(context))

    def propose(self, context: DraftingContext) -> ResolutionProposal:
        refundable = context.refundable
        claimed = min(quantize_money(context.case.amount), refundable)
        dispute = context.case.dispute_type
        policy_ids = [hit.policy_id for hit in context.policies]
        if dispute in ("duplicate_charge", "unrecognized_charge", "refund_not_processed"):
            action = (
                ResolutionAction.FULL_REFUND
                if claimed == refundable
                else ResolutionAction.PARTIAL_REFUND
            )
            amount, reason = claimed, f"{dispute.replace('_', ' ')} verified against the charge"
        elif dispute == "service_outage":
            action = ResolutionAction.ACCOUNT_CREDIT
            amount, reason = claimed, "service outage compensation as account credit"
        elif dispute in ("cancellation_not_processed", "incorrect_amount"):
            action = (
                ResolutionAction.PARTIAL_REFUND
                if claimed < refundable
                else (ResolutionAction.FULL_REFUND)
            )
            amount, reason = claimed, f"{dispute.replace('_', ' ')}: refund the amount in dispute"
        else:
            action, amount, reason = ResolutionAction.DENY_REFUND, Decimal("0"), "unknown type"
        return ResolutionProposal(
            action=action,
            amount=amount,
            currency=context.disputed_charge.currency,
            reason=f"[offline rules drafter] {reason}",
            confidence=0.8,
            supporting_factors=[f"refundable on charge: {refundable}"],
            risk_level="low" if context.disputed_charge.risk_level == "normal" else "high",
            policy_ids=policy_ids,
            drafter=self.name,
        )
