"""generate_resolution: retrieve policies and precedents, then draft a proposal."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from langgraph.runtime import Runtime

from agents.draft_chargeback import draft_chargeback_response, fraud_warning_proposal
from agents.retrieved import retrieved_view
from models.domain import BillingData, CRMData, DraftResult, PaymentData
from models.state import DisputeState
from services.drafting.context import DraftingContext, knowledge_query
from services.drafting.prompt import PROMPT_VERSION
from workflows.context import ReviewRules, WorkflowContext

# Prompt context caps (docs/architecture.md, "Drafting"): the drafter never sees more.
MAX_POLICIES = 3
MAX_PRECEDENTS = 3


async def generate_resolution(
    state: DisputeState, runtime: Runtime[WorkflowContext]
) -> dict[str, Any]:
    """Draft a resolution from the facts, the governing policies and similar past cases."""
    ctx = runtime.context
    payment = PaymentData.model_validate(state["payment_data"])
    if state.get("kind") == "chargeback":
        return await draft_chargeback_response(state, ctx)
    if state.get("kind") == "early_fraud_warning":
        assert payment.disputed_charge is not None
        return fraud_warning_proposal(payment.disputed_charge, payment.fraud_warning or {})
    crm = CRMData.model_validate(state["crm_data"])
    billing = BillingData.model_validate(state["billing_data"])
    case = crm.case
    query = knowledge_query(case)
    policies = await ctx.knowledge.search_policies(query=query, k=MAX_POLICIES)
    precedents = await ctx.knowledge.similar_cases(
        query=query,
        dispute_type=case.dispute_type,
        amount=case.amount,
        customer_segment=crm.account.segment,
        k=MAX_PRECEDENTS,
        exclude_case_id=case.case_id,
    )
    context = DraftingContext.of_dispute(
        state["run_id"],
        crm,
        billing,
        payment,
        policies=policies[:MAX_POLICIES],
        precedents=precedents[:MAX_PRECEDENTS],
    )
    result = await ctx.drafter.draft(context=context)
    proposal = result.proposal.model_copy(
        update={"provenance": provenance(context, result, ctx.review_rules)}
    )
    return {
        "proposal": proposal.model_dump(mode="json"),
        "retrieved": retrieved_view(context.policies, context.precedents),
        "costs": [call.model_dump(mode="json") for call in result.calls],
    }


def provenance(context: DraftingContext, result: DraftResult, rules: ReviewRules) -> dict[str, Any]:
    """What a draft rested on: the sections it saw (by content hash and ingestion version),
    the prompt version, the drafter and model, and the review thresholds in force."""
    models = [call.model for call in result.calls]
    return {
        "policies": [
            {
                "policy_id": p.policy_id,
                "section": p.section,
                "content_hash": p.content_hash,
                "policy_version": p.policy_version,
            }
            for p in context.policies
        ],
        "prompt_version": PROMPT_VERSION,
        "drafter": result.proposal.drafter,
        "model": models[-1] if models else None,
        "review_thresholds": {k: str(v) for k, v in asdict(rules).items()},
    }
