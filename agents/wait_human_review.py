"""wait_human_review: the one node that pauses the run for a reviewer's decision."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from models.domain import ReviewDecision
from models.state import DisputeState
from workflows.context import WorkflowContext


async def wait_human_review(
    state: DisputeState, runtime: Runtime[WorkflowContext]
) -> dict[str, Any]:
    """Pause until a decision for the next review round arrives.

    On resume LangGraph re-runs this node from its start, so nothing before `interrupt()`
    may have side effects: the notification was sent by send_human_review.
    """
    review = state.get("review")
    round_ = len(state.get("decisions", [])) + 1
    raw = interrupt(
        {
            "run_id": state["run_id"],
            "round": round_,
            "required_approvals": review["required_approvals"] if review else 1,
        }
    )
    decision = ReviewDecision.model_validate(raw)
    if decision.round != round_:
        raise ValueError(f"decision for round {decision.round} given at round {round_}")
    return {"decisions": [decision.model_dump(mode="json")], "status": "running"}
