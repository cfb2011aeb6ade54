"""handle_error: end a run that hit a non-retryable error as failed, with step and error."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from models.state import DisputeState
from workflows.context import WorkflowContext


async def handle_error(state: DisputeState, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
    """Record the failure; the run stops here and nothing further executes."""
    error = state.get("error") or {"message": "unknown error"}
    await runtime.context.store.audit(
        run_id=state["run_id"],
        case_id=state["case_id"],
        step=str(error.get("step", "unknown")),
        actor="system",
        event="run_failed",
        detail=error,
    )
    return {"status": "failed"}
