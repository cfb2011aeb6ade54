"""send_human_review: notify the approvers. Runs once, before the run pauses."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from models.state import DisputeState
from workflows.context import WorkflowContext


async def send_human_review(
    state: DisputeState, runtime: Runtime[WorkflowContext]
) -> dict[str, Any]:
    """Send the review request; the pause itself happens in wait_human_review."""
    ctx = runtime.context
    await ctx.notifier.request_review(
        run_id=state["run_id"],
        case_id=state["case_id"],
        summary={
            "proposal": state.get("proposal"),
            "review": state.get("review"),
            "crm_data": state.get("crm_data"),
            "payment_data": state.get("payment_data"),
            "costs": state.get("costs", []),
        },
    )
    return {"status": "pending"}
