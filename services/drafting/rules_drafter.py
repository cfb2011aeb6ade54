"""The offline rules drafter: the policy assessment, stated as a proposal."""

from __future__ import annotations

from models.domain import DraftResult, ResolutionProposal
from models.policy_rules import governing_policy_ids
from services.drafting.assessment import PolicyAssessment, assess, proposal_risk_level
from services.drafting.context import DraftingContext

RULES_LABEL = "[offline rules drafter]"
MAX_FACTORS = 5


class RulesDrafter:
    """Deterministic offline drafter applying models/policy_rules.py through the
    guardrails' assessment; every proposal's reason starts with "[offline rules drafter]".

    Per dispute type: a duplicate (same amount within 7 days) is refunded in full; an outage
    earns the outage matrix's share of the charge (credit below the whole, refund at it); a
    charge after the cancellation request is refunded in full; an incorrect amount earns the
    difference to the plan price; an unrecognised charge is refunded in full when the
    processor rates it elevated or highest risk or it matches no subscription, and denied
    when it matches an active subscription's price; a promised refund not processed is paid
    (the case amount, up to what remains refundable). An outage duration missing from the
    CRM field is read from the case text (services/drafting/facts.py); found in neither,
    the lowest compensating row of the matrix is proposed with low confidence, the matrix
    shown. Where the facts cannot decide (no twin, no plan price, no cancellation request),
    it denies with low confidence and a reviewer decides.
    """

    name = "rules"

    async def draft(self, *, context: DraftingContext) -> DraftResult:
        return DraftResult(proposal=self.propose(context, assess(context)))

    def propose(self, context: DraftingContext, policy: PolicyAssessment) -> ResolutionProposal:
        """The rules' proposal for `context`, as `policy` assesses it."""
        return ResolutionProposal(
            action=policy.action,
            amount=policy.amount,
            currency=context.disputed_charge.currency,
            reason=f"{RULES_LABEL} {policy.basis}.",
            confidence=policy.confidence,
            supporting_factors=_factors(policy),
            risk_level=proposal_risk_level(context, policy.amount),
            policy_ids=governing_policy_ids(context.case.dispute_type),
            drafter=self.name,
        )


def _factors(policy: PolicyAssessment) -> list[str]:
    """The deciding facts, capped, then whatever else the reviewer must see."""
    factors = list(policy.facts[:MAX_FACTORS])
    return factors + [note for note in policy.reviewer_notes if note not in factors]


__all__ = ["MAX_FACTORS", "RULES_LABEL", "RulesDrafter"]
