"""Human review over REST: the pending list and decisions (reviewer API key required).

The decision is recorded under the reviewer the API key belongs to. `reviewer_name` in the
body is optional; when given it must name that same reviewer (else 403), so a client can
never record a decision in someone else's name.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from api.auth import ApiReviewer, require_api_reviewer
from api.deps import Services
from api.schemas import DecisionAccepted, PendingReviews, error_responses
from models.approvals import approval_state
from models.domain import ChargebackAnswer, ModifiedResolution
from services.errors import ForbiddenError
from workflows.decisions import record_decision

router = APIRouter(
    prefix="/human-review", tags=["review"], dependencies=[Depends(require_api_reviewer)]
)


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: uuid.UUID
    case_id: str | None = Field(default=None, max_length=64)
    decision: Literal["approved", "rejected"]
    reviewer_name: str | None = Field(default=None, min_length=1, max_length=200)
    comments: str = Field(default="", max_length=4000)
    modified_resolution: ModifiedResolution | ChargebackAnswer | None = Field(
        default=None,
        description="A changed resolution (approval with a modification). For a chargeback: "
        "`{action: contest|accept, reason, evidence: {text field: text}}`.",
    )
    version: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="The resolution version you were shown (`current.version` in "
        "/human-review/pending). Omitted: the draft, version 1. A decision on a version "
        "that is no longer current is refused with 409.",
    )


def pending_summary(run: dict[str, Any]) -> dict[str, Any]:
    proposal = run.get("resolution_proposal") or {}
    crm = run.get("crm_data") or {}
    review = run.get("human_review_data") or {}
    plan = review.get("plan") or {}
    approval = (
        approval_state(proposal, plan, review.get("decisions") or [])
        if proposal.get("action")
        else None
    )
    return {
        "run_id": run["run_id"],
        "case_id": run["case_id"],
        "customer_id": run["customer_id"],
        "dispute_type": (crm.get("case") or {}).get("dispute_type"),
        # The CRM's own label ("Unauthorized Charge"), above all when it maps to no type.
        "dispute_label": (crm.get("case") or {}).get("dispute_label"),
        "claimed_amount": (crm.get("case") or {}).get("amount"),
        "proposal": {
            k: proposal.get(k)
            for k in (
                "action",
                "amount",
                "currency",
                "reason",
                "confidence",
                "drafter",
                "fallback_used",
            )
        },
        # What would execute now, every version with who proposed or changed it, and who
        # approved the current one (models/approvals.py).
        "current": approval.current.as_dict() if approval else None,
        "versions": [v.as_dict() for v in approval.versions] if approval else [],
        "approved_by": list(approval.approver_names) if approval else [],
        "prior_payouts": (run.get("payment_data") or {}).get("prior_payouts", []),
        "awaiting_round": review.get("awaiting_round"),
        "required_approvals": approval.required if approval else plan.get("required_approvals"),
        "risk_flags": plan.get("risk_flags", []),
        "llm_cost": str(run["llm_cost"]),
        "created_at": run["created_at"].isoformat(),
        "review_url": f"/review/{run['run_id']}",
    }


@router.get("/pending", response_model=PendingReviews, responses=error_responses(401))
async def pending(services: Services) -> dict[str, Any]:
    """Runs awaiting a reviewer's decision, oldest first."""
    runs = await services.store.list_runs(status="pending", limit=500)
    items = [pending_summary(r) for r in sorted(runs, key=lambda r: r["created_at"])]
    return {"count": len(items), "items": items}


@router.post(
    "/decision",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DecisionAccepted,
    responses=error_responses(
        401,
        403,
        404,
        409,
        413,
        422,
        descriptions={
            403: "reviewer_name names someone other than the API key's reviewer.",
            404: "No such run.",
            409: "The run is not awaiting a decision, this reviewer already decided it, "
            "or the version decided on is no longer current.",
            422: "The body is malformed, the case_id is not the run's, or the modified "
            "resolution is refused (e.g. an amount above what is refundable).",
        },
    ),
)
async def decide(
    body: DecisionRequest, services: Services, reviewer: ApiReviewer
) -> dict[str, Any]:
    """Record the authenticated reviewer's decision; a worker resumes the run."""
    if (
        body.reviewer_name is not None
        and body.reviewer_name.strip().casefold() != reviewer.name.casefold()
    ):
        raise ForbiddenError(
            f"reviewer_name '{body.reviewer_name[:200]}' is not the reviewer of this API key "
            f"('{reviewer.name}'); omit it or send your own"
        )
    decision = await record_decision(
        services.store,
        run_id=str(body.run_id),
        case_id=body.case_id,
        decision=body.decision,
        reviewer=reviewer,
        channel="api",
        comments=body.comments,
        modified=body.modified_resolution,
        version=body.version,
        now=services.clock(),
    )
    return {
        "run_id": str(body.run_id),
        "decision": decision.decision,
        "round": decision.round,
        "version": decision.version,
        "reviewer": decision.reviewer,
        "status": "recorded; the run resumes shortly",
    }
