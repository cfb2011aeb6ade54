"""store_results: settle the run's outcome and keep executed resolutions for similarity."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from langgraph.runtime import Runtime

from models.domain import CRMData, ResolutionRecord
from models.state import DisputeState
from workflows.context import WorkflowContext


async def store_results(state: DisputeState, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
    """Mark the run completed or rejected; store executed resolutions as precedents."""
    validation = state.get("validation")
    if validation is not None and not validation["valid"]:
        return {
            "status": "rejected",
            "final_resolution": {
                "outcome": "invalid",
                "failed_rule": validation["failed_rule"],
                "reason": validation["reason"],
            },
        }
    decisions = state.get("decisions", [])
    if decisions and decisions[-1]["decision"] == "rejected":
        last = decisions[-1]
        return {
            "status": "rejected",
            "final_resolution": {
                "outcome": "rejected_by_reviewer",
                "reviewer": last["reviewer"],
                "reason": last.get("comments", ""),
            },
        }
    ctx = runtime.context
    resolution = state["final_resolution"]
    assert resolution is not None
    crm = CRMData.model_validate(state["crm_data"])
    if state.get("kind") == "chargeback":
        # Kept as a past chargeback of its reason; Stripe's verdict (won / lost) arrives
        # later by webhook and is recorded on the run (`dispute_outcome`).
        reason = (crm.case.dispute_label or "").removeprefix("Stripe dispute: ") or "general"
        await ctx.knowledge.add_resolution(
            record=ResolutionRecord(
                case_id=crm.case.case_id,
                dispute_type=f"chargeback:{reason}",
                description=f"{crm.case.subject}. {crm.case.description}",
                resolution=f"{resolution['action']} chargeback",
                reasoning=str(resolution.get("reason") or ""),
                amount=Decimal(resolution["amount"]),
                currency=resolution["currency"],
                customer_segment=crm.account.segment,
                outcome=str(resolution["action"]),
            )
        )
        return {"status": "completed", "final_resolution": {**resolution, "outcome": "answered"}}
    proposal = state.get("proposal") or {}
    await ctx.knowledge.add_resolution(
        record=ResolutionRecord(
            case_id=crm.case.case_id,
            dispute_type=crm.case.dispute_type,
            description=f"{crm.case.subject}. {crm.case.description}",
            resolution=f"{resolution['action']} {resolution['amount']} {resolution['currency']}",
            reasoning=resolution["reason"] or str(proposal.get("reason", "")),
            amount=Decimal(resolution["amount"]),
            currency=resolution["currency"],
            customer_segment=crm.account.segment,
            outcome=resolution["action"],
        )
    )
    if ctx.on_resolution_stored is not None:
        await ctx.on_resolution_stored(crm.case.dispute_type)
    return {"status": "completed", "final_resolution": {**resolution, "outcome": "executed"}}
