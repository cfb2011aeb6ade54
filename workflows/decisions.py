"""Recording a reviewer's decision: the checks every channel (API, link, page) shares.

The reviewer is always the authenticated one (API key, review-link token or dashboard
session), never a name taken from a request body. The decision is stored in PostgreSQL,
the source of truth, with its channel and the proposal it replaced; a worker resumes the run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.domain import (
    CRMData,
    ModifiedResolution,
    PaymentData,
    ReviewChannel,
    ReviewDecision,
)
from services.drafting.guardrails import check_modification, describe
from services.errors import ConflictError, InvalidRequestError, NotFoundError
from services.persistence.store import WorkflowStore


async def pending_review(store: WorkflowStore, run_id: str) -> dict[str, Any]:
    """The run, if it is awaiting a decision now; else 404 / 409."""
    run = await store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} not found")
    awaiting = (run.get("human_review_data") or {}).get("awaiting_round")
    if run["status"] != "pending" or awaiting is None:
        raise ConflictError(f"run {run_id} is {run['status']}, not awaiting a decision")
    return run


async def record_decision(
    store: WorkflowStore,
    *,
    run_id: str,
    case_id: str | None,
    decision: str,
    reviewer: str,
    channel: ReviewChannel,
    comments: str,
    modified: ModifiedResolution | None,
    now: datetime,
) -> ReviewDecision:
    """Validate and store one decision for the round the run is waiting on."""
    run = await pending_review(store, run_id)
    if case_id is not None and case_id != run["case_id"]:
        raise InvalidRequestError(f"case_id {case_id} does not match run {run_id}")
    if not reviewer.strip() or reviewer.strip().casefold() == "system":
        raise InvalidRequestError("a decision needs a human reviewer")
    prior = await store.decisions_for_run(run_id)
    if any(str(d["reviewer"]).casefold() == reviewer.casefold() for d in prior):
        raise ConflictError(
            f"{reviewer} has already decided run {run_id}; "
            "a second approval must come from a different reviewer"
        )
    if modified is not None:
        if decision != "approved":
            raise InvalidRequestError("a modified resolution comes with an approval")
        crm = CRMData.model_validate(run["crm_data"])
        payment = PaymentData.model_validate(run["payment_data"])
        assert payment.disputed_charge is not None
        charge = payment.disputed_charge
        violations = check_modification(
            modified,
            dispute_type=crm.case.dispute_type,
            refundable=charge.refundable,
            currency=charge.currency,
        )
        if violations:
            raise InvalidRequestError(f"modified resolution refused: {describe(violations)}")
    review = ReviewDecision(
        decision=decision,
        reviewer=reviewer,
        comments=comments,
        modified_resolution=modified,
        channel=channel,
        decided_at=now,
        round=int(run["human_review_data"]["awaiting_round"]),
    )
    await store.record_decision(
        run_id=run_id, decision=review, proposal_before=run.get("resolution_proposal")
    )
    return review
