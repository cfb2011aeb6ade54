"""GET /workflow/{run_id}/status: where a run is, what was decided and by whom; and the
operator's controls: retry a failed or parked run, cancel one that is not executing."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.auth import ApiReviewer, require_api_reviewer
from api.deps import Services
from api.schemas import RunControlResult, RunStatus, error_responses
from models.approvals import approval_state
from services.errors import NotFoundError, PaymentsAgentError
from workflows.controls import cancel_run, retry_run

router = APIRouter(
    prefix="/workflow", tags=["workflow"], dependencies=[Depends(require_api_reviewer)]
)


def parse_run_id(run_id: str) -> str:
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        raise NotFoundError(f"run {run_id[:64]} not found") from None


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _system_decisions(review: dict[str, Any]) -> list[dict[str, Any]]:
    """Auto-approvals, recorded in the run's state as approved by the system with the rule."""
    return [
        {
            "round": d.get("round", 1),
            "decision": d["decision"],
            "reviewer": "system",
            "channel": "system",
            "comments": d.get("comments", ""),
            "before": None,
            "after": None,
            "decided_at": d.get("decided_at"),
            "applied_at": d.get("decided_at"),
        }
        for d in review.get("decisions") or []
        if d.get("channel") == "system"
    ]


@router.get(
    "/{run_id}/status",
    response_model=RunStatus,
    # The system's decisions have no reviewer_id or version: leave them out, not null.
    response_model_exclude_unset=True,
    responses=error_responses(401, 404),
)
async def run_status(run_id: str, services: Services) -> dict[str, Any]:
    """The run's status, step, proposal, decisions, outcome, costs and audit trail."""
    run_id = parse_run_id(run_id)
    run = await services.store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} not found")
    decisions = await services.store.decisions_for_run(run_id)
    audit = await services.store.audit_trail(run_id)
    review = run.get("human_review_data") or {}
    proposal = run.get("resolution_proposal") or {}
    approval = (
        approval_state(proposal, review.get("plan"), review.get("decisions") or [])
        if proposal.get("action")
        else None
    )
    payouts = await services.store.payouts.for_run(run_id)
    return {
        "run_id": run_id,
        "case_id": run["case_id"],
        "customer_id": run["customer_id"],
        "status": run["status"],
        "current_step": run["current_step"],
        "attempts": run["attempts"],
        "next_attempt_at": _iso(run["next_attempt_at"]),
        "last_error": run["last_error"],
        "validation": review.get("validation"),
        "dispute_label": ((run.get("crm_data") or {}).get("case") or {}).get("dispute_label"),
        "proposal": run["resolution_proposal"],
        "provenance": proposal.get("provenance"),
        "review": {
            "plan": review.get("plan"),
            "awaiting_round": review.get("awaiting_round"),
            # The version that would execute, who made each version, who approved it.
            "approval": approval.summary() if approval else None,
        },
        "payouts": [p.as_dict() | {"idempotency_key": p.idempotency_key} for p in payouts],
        "decisions": _system_decisions(review)
        + [
            {
                "round": d["round"],
                "decision": d["decision"],
                "reviewer": d["reviewer"],
                "reviewer_id": d["reviewer_id"],
                "version": d["version"],
                "channel": d["channel"],
                "comments": d["comments"],
                "before": d["proposal_before"],
                "after": d["modified_resolution"],
                "decided_at": _iso(d["decided_at"]),
                "applied_at": _iso(d["applied_at"]),
            }
            for d in decisions
        ],
        "final_resolution": run["final_resolution"],
        "costs": {"llm_cost": str(run["llm_cost"]), "total_cost": str(run["total_cost"])},
        "audit": [
            {
                "at": _iso(a["created_at"]),
                "step": a["step"],
                "actor": a["actor"],
                "event": a["event"],
                "detail": a["detail"],
            }
            for a in audit
        ],
        "created_at": _iso(run["created_at"]),
        "updated_at": _iso(run["updated_at"]),
        "completed_at": _iso(run["completed_at"]),
    }


class ControlRequest(BaseModel):
    """Why the operator acts; recorded in the audit with who did it."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


@router.post(
    "/{run_id}/retry",
    response_model=RunControlResult,
    responses=error_responses(
        401, 404, 409, 413, 422, descriptions={409: "The run is not failed or parked."}
    ),
)
async def retry(
    run_id: str, body: ControlRequest, services: Services, reviewer: ApiReviewer
) -> dict[str, Any]:
    """Give a `failed` or `needs_attention` run back to the workers, from its checkpoint."""
    run_id = parse_run_id(run_id)
    if services.store.jobs is None:
        raise PaymentsAgentError("run jobs are not configured in this process")
    await retry_run(
        services.store, services.store.jobs, run_id=run_id, actor=reviewer.name, reason=body.reason
    )
    return {"run_id": run_id, "status": "running"}


@router.post(
    "/{run_id}/cancel",
    response_model=RunControlResult,
    responses=error_responses(
        401, 404, 409, 413, 422, descriptions={409: "The run is finished or executing."}
    ),
)
async def cancel(
    run_id: str, body: ControlRequest, services: Services, reviewer: ApiReviewer
) -> dict[str, Any]:
    """End a run that is not executing its resolution; nothing further runs."""
    run_id = parse_run_id(run_id)
    await cancel_run(services.store, run_id=run_id, actor=reviewer.name, reason=body.reason)
    return {"run_id": run_id, "status": "cancelled"}
