"""send_human_review: notify the approvers. Runs once, before the run pauses."""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from models.state import DisputeState
from workflows.context import WorkflowContext

log = logging.getLogger(__name__)


async def send_human_review(
    state: DisputeState, runtime: Runtime[WorkflowContext]
) -> dict[str, Any]:
    """Send the review request; the pause itself happens in wait_human_review."""
    ctx = runtime.context
    try:
        await ctx.notifier.request_review(
            run_id=state["run_id"],
            case_id=state["case_id"],
            summary={
                "proposal": state.get("proposal"),
                "review": state.get("review"),
                "crm_data": state.get("crm_data"),
                "payment_data": state.get("payment_data"),
                "retrieved": state.get("retrieved"),
                "costs": state.get("costs", []),
                "decisions": state.get("decisions", []),
            },
        )
    except Exception:
        # The e-mail is a courtesy, not the source of truth: the run pauses for review all
        # the same and stays visible on the dashboard and in /human-review/pending. SMTP
        # failures are already retried and recorded by the notifier; this catches the rest.
        log.exception("review notification failed; the run waits for review regardless")
    return {"status": "pending"}
