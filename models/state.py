"""Graph state: JSON-serialisable, so every checkpoint can be read by a person or a query.

Domain objects are stored as `model_dump(mode="json")` dicts (amounts as strings).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired, TypedDict

RunStatus = Literal["running", "pending", "completed", "rejected", "failed"]


class Validation(TypedDict):
    valid: bool
    failed_rule: str | None
    reason: str
    checks: list[dict[str, Any]]


class ReviewPlan(TypedDict):
    """How the proposal is to be decided: by the system, or by one or two reviewers."""

    auto_approve: bool
    auto_approve_rule: str | None
    required_approvals: int  # for the draft; a modified version's are recomputed
    risk_flags: list[str]
    # The dual-control threshold in force, so every version's approvals are worked out
    # from its own amount (models/approvals.py).
    dual_approval_min_amount: NotRequired[str]
    # Which integrations are the sandbox, so the reviewer knows what is not real.
    sandbox_systems: NotRequired[list[str]]


RunKind = Literal["dispute", "chargeback", "early_fraud_warning"]


class DisputeState(TypedDict, total=False):
    run_id: str
    # What started the run: a CRM case (`dispute`), a Stripe dispute (`chargeback`, whose
    # id is the run's case_id) or a Radar early fraud warning (likewise).
    kind: RunKind
    case_id: str
    customer_id: str | None  # from the queue message: a hint for display, never trusted
    event_id: str | None
    status: RunStatus
    current_step: str
    crm_data: dict[str, Any] | None
    billing_data: dict[str, Any] | None
    payment_data: dict[str, Any] | None
    validation: Validation | None
    retrieved: dict[str, Any] | None
    proposal: dict[str, Any] | None
    review: ReviewPlan | None
    decisions: Annotated[list[dict[str, Any]], operator.add]
    final_resolution: dict[str, Any] | None
    execution: dict[str, Any] | None
    costs: Annotated[list[dict[str, Any]], operator.add]
    error: dict[str, Any] | None
