"""Recording a reviewer's decision: the checks every channel (API, link, page) shares.

The reviewer is always the authenticated identity (API key, review-link token or dashboard
session, all resolving to one reviewer id), never a name taken from a request body. The
decision is stored in PostgreSQL, the source of truth, with its channel and the version it
was given on; a worker resumes the run.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from models.approvals import approval_state, identity_of
from models.domain import (
    ChargebackAnswer,
    CRMData,
    ModifiedResolution,
    PaymentData,
    ReviewChannel,
    ReviewDecision,
)
from services.drafting.guardrails import check_modification, describe
from services.errors import ConflictError, InvalidRequestError, NotFoundError
from services.integrations.protocols import (
    EVIDENCE_TEXT_MAX_CHARS,
    EVIDENCE_TOTAL_MAX_CHARS,
    TEXT_EVIDENCE_FIELDS,
)
from services.metrics import DECISIONS
from services.persistence.store import WorkflowStore
from services.review.reviewers import Reviewer


async def pending_review(store: WorkflowStore, run_id: str) -> dict[str, Any]:
    """The run, if it is awaiting a decision now; else 404 / 409."""
    run = await store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} not found")
    awaiting = (run.get("human_review_data") or {}).get("awaiting_round")
    if run["status"] != "pending" or awaiting is None:
        raise ConflictError(f"run {run_id} is {run['status']}, not awaiting a decision")
    return run


def evidence_due_by(run: dict[str, Any]) -> datetime | None:
    """A chargeback run's evidence deadline (Stripe's `evidence_details.due_by`)."""
    if run.get("kind") != "chargeback":
        return None
    raw = ((run.get("payment_data") or {}).get("dispute") or {}).get("evidence_due_by")
    return datetime.fromisoformat(str(raw)) if raw else None


async def record_decision(
    store: WorkflowStore,
    *,
    run_id: str,
    case_id: str | None,
    decision: str,
    reviewer: Reviewer,
    channel: ReviewChannel,
    comments: str,
    modified: ModifiedResolution | ChargebackAnswer | None,
    version: int | None,
    now: datetime,
) -> ReviewDecision:
    """Validate and store one decision for the round the run is waiting on.

    `version` is the resolution version the reviewer was shown (None: the draft, version 1).
    A decision on any other version than the current one is refused (409), so nobody
    approves what they were not shown. A reviewer approves a version once; modifying makes
    a new version, which the modifier approves by making it (models/approvals.py).
    """
    run = await pending_review(store, run_id)
    if case_id is not None and case_id != run["case_id"]:
        raise InvalidRequestError(f"case_id {case_id} does not match run {run_id}")
    due = evidence_due_by(run)
    if due is not None and now >= due:
        raise ConflictError(
            f"the evidence deadline of dispute {run['case_id']} passed at "
            f"{due.strftime('%Y-%m-%d %H:%M')} UTC: Stripe no longer takes an answer"
        )
    review = run.get("human_review_data") or {}
    proposal = run.get("resolution_proposal") or {}
    approval = approval_state(proposal, review.get("plan"), review.get("decisions") or [])
    current = approval.current
    shown = version if version is not None else 1
    if shown != current.number:
        raise ConflictError(
            f"you were shown version {shown}, but the resolution is now "
            f"{current.describe()} (by {current.author}); review version {current.number}"
        )
    identity = identity_of({"reviewer": reviewer.name, "reviewer_id": reviewer.reviewer_id})
    if identity in approval.approvers:
        raise ConflictError(
            f"{reviewer.name} has already approved version {current.number} of run {run_id}; "
            "the next approval must come from a different reviewer"
        )
    if run.get("kind") == "chargeback" and modified is not None:
        modified = _checked_answer(modified, decision=decision, amount=current.amount)
    elif isinstance(modified, ChargebackAnswer):
        raise InvalidRequestError("contest and accept answer chargebacks only")
    elif modified is not None:
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
    recorded = ReviewDecision(
        decision=decision,
        reviewer=reviewer.name,
        reviewer_id=reviewer.reviewer_id,
        comments=comments,
        modified_resolution=modified,
        channel=channel,
        decided_at=now,
        round=int(review["awaiting_round"]),
        version=current.number,
    )
    await store.record_decision(run_id=run_id, decision=recorded, proposal_before=current.as_dict())
    DECISIONS.labels(decision=decision, channel=channel).inc()
    return recorded


def _checked_answer(
    modified: ModifiedResolution | ChargebackAnswer, *, decision: str, amount: Decimal
) -> ChargebackAnswer:
    """A chargeback's changed answer: contest or accept, with text evidence within
    Stripe's fields and limits; the amount is the dispute's, whatever was sent."""
    if not isinstance(modified, ChargebackAnswer):
        raise InvalidRequestError(
            "a chargeback's answer is changed with action contest or accept (and evidence)"
        )
    if decision != "approved":
        raise InvalidRequestError("a changed answer comes with an approval")
    unknown = sorted(set(modified.evidence) - TEXT_EVIDENCE_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"not text evidence fields of a Stripe dispute: {', '.join(unknown)[:300]}"
        )
    too_long = [f for f, text in modified.evidence.items() if len(text) > EVIDENCE_TEXT_MAX_CHARS]
    if too_long or sum(len(t) for t in modified.evidence.values()) > EVIDENCE_TOTAL_MAX_CHARS:
        raise InvalidRequestError(
            f"evidence too long (each field at most {EVIDENCE_TEXT_MAX_CHARS} characters, "
            f"all at most {EVIDENCE_TOTAL_MAX_CHARS})"
        )
    evidence = {f: t.strip() for f, t in modified.evidence.items() if t.strip()}
    if modified.action == "contest" and not evidence:
        raise InvalidRequestError("contesting needs evidence")
    return modified.model_copy(
        update={"amount": amount, "evidence": evidence if modified.action == "contest" else {}}
    )
