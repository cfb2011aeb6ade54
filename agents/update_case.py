"""update_case: record the executed resolution on the CRM case, after the money settled.

A step of its own, after move_money: a CRM outage of any length retries only this step,
never the payment before it. The case is marked resolved only for a resolution whose
payout succeeded (move_money does not finish on a pending or failed one).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from models.domain import CRMData
from models.state import DisputeState
from workflows.context import WorkflowContext


async def update_case(state: DisputeState, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
    """Write the outcome to the case; repeating it (same key) changes nothing."""
    ctx = runtime.context
    execution = state.get("execution") or {}
    resolution = state.get("final_resolution") or {}
    crm = CRMData.model_validate(state["crm_data"])
    currency = str(resolution.get("currency", "usd")).upper()
    summary = (
        f"{resolution.get('action')} {resolution.get('amount')} {currency}: "
        f"{resolution.get('reason', '')}"
    )
    payout = execution.get("payout")
    if payout is not None:
        summary += f" ({payout['action']} {payout.get('provider_ref')} {payout['state']})"
    await ctx.retry(
        lambda: ctx.crm.record_outcome(
            case_id=crm.case.case_id,
            status="Resolved",
            summary=summary[:2000],
            idempotency_key=f"{state['run_id']}:case_update",
        ),
        operation="crm.record_outcome",
    )
    await ctx.store.audit(
        run_id=state["run_id"],
        case_id=state["case_id"],
        step="update_case",
        actor="system",
        event="case_updated",
        detail={"case_id": crm.case.case_id, "summary": summary[:2000]},
    )
    return {"execution": {**execution, "case_updated": True}}
