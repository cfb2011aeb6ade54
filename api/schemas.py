"""The JSON the REST API returns, as pydantic models, and the error responses it documents.

The routes build plain dicts; these models only declare (and check) their shape for
/openapi.json, so each one mirrors its route's dict key for key: a field missing here
would be dropped from the response. Amounts and timestamps stay strings, as the routes
write them. What is free-form JSON kept from the run's state (a proposal, a review plan,
an outcome, audit details) stays `dict[str, Any]`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error this API returns, whatever its status (api/app.py's handlers)."""

    error: str = Field(description="What went wrong, for a person to read.")
    status: int = Field(description="The HTTP status, repeated.")


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request is refused as malformed.",
    401: "No reviewer API key, or an invalid or revoked one.",
    403: "The API key's reviewer may not do this.",
    404: "No such run or case.",
    409: "The request conflicts with the run's current state.",
    413: "The request body is above 64 KiB.",
    422: "The request body is malformed, or well-formed but unacceptable.",
    503: "A service this request needs is unavailable; retry later.",
}
_UNAUTHORIZED_HEADERS = {
    "WWW-Authenticate": {
        "description": "`Bearer`: send a reviewer key as a Bearer token or in X-API-Key.",
        "schema": {"type": "string"},
    }
}


def error_responses(
    *codes: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for these error statuses, all with the `ErrorBody` shape.

    A `default` entry covers any other status (a 500, say) with the same body, and keeps
    FastAPI from documenting its own `{"detail": [...]}` 422, which this API never sends.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        text = (descriptions or {}).get(code) or ERROR_DESCRIPTIONS[code]
        responses[code] = {"model": ErrorBody, "description": text}
        if code == 401:
            responses[code]["headers"] = _UNAUTHORIZED_HEADERS
    responses["default"] = {"model": ErrorBody, "description": "Any other failure."}
    return responses


class WebhookReceipt(BaseModel):
    """A provider's event was received: handled, ignored, or a duplicate of one seen."""

    received: bool
    handled: bool | None = None
    duplicate: bool | None = None


class HealthStatus(BaseModel):
    status: Literal["ok", "unavailable"]


class BackendsHealth(BaseModel):
    backends: dict[str, str] = Field(
        description="The kind of each backend (`salesforce`, `sandbox`, ...); never a URL."
    )
    sandbox_systems: list[str] = Field(description="Which of crm, billing, payments are sandbox.")


class ResolutionVersionOut(BaseModel):
    """One version of a resolution and who made it (models/approvals.py)."""

    version: int
    action: str
    amount: str
    currency: str
    reason: str
    author: str = Field(description="`drafter:<name>` for the draft, else the reviewer.")


class ProposalSummary(BaseModel):
    """The drafted proposal's headline fields; each null when the run has no draft."""

    action: str | None
    amount: str | None
    currency: str | None
    reason: str | None
    confidence: float | None
    drafter: str | None
    fallback_used: bool | None


class PendingReview(BaseModel):
    run_id: str
    case_id: str
    customer_id: str | None
    dispute_type: str | None
    dispute_label: str | None = Field(description="The CRM's own label for the dispute.")
    claimed_amount: str | None
    proposal: ProposalSummary
    current: ResolutionVersionOut | None = Field(description="What would execute now.")
    versions: list[ResolutionVersionOut]
    approved_by: list[str] = Field(description="Who approved the current version.")
    prior_payouts: list[dict[str, Any]]
    awaiting_round: int | None
    required_approvals: int | None
    risk_flags: list[str]
    llm_cost: str
    created_at: str
    review_url: str


class PendingReviews(BaseModel):
    count: int
    items: list[PendingReview] = Field(description="Oldest first.")


class DecisionAccepted(BaseModel):
    run_id: str
    decision: Literal["approved", "rejected"]
    round: int
    version: int | None = Field(description="The resolution version decided on.")
    reviewer: str
    status: str


class ApprovalSummary(BaseModel):
    version: int = Field(description="The current version's number.")
    current: ResolutionVersionOut
    versions: list[ResolutionVersionOut]
    required_approvals: int
    approved_by: list[str]
    approvals_missing: int


class ReviewState(BaseModel):
    plan: dict[str, Any] | None
    awaiting_round: int | None
    approval: ApprovalSummary | None


class PayoutOut(BaseModel):
    """One row of the payout ledger: money this system moved, or is moving."""

    run_id: str
    case_id: str
    charge_id: str
    action: str = Field(description="`refund` or `credit`.")
    amount: str
    currency: str
    state: str = Field(description="intended, sent, pending, succeeded, failed or unknown.")
    provider: str
    provider_ref: str | None
    version: int
    approved_by: list[str]
    failure_reason: str | None
    created_at: str
    idempotency_key: str


class DecisionRecord(BaseModel):
    """A decision on the run. The system's auto-approvals carry no reviewer_id or version."""

    round: int
    decision: Literal["approved", "rejected"]
    reviewer: str
    reviewer_id: int | None = None
    version: int | None = None
    channel: str = Field(description="api, link, page or system.")
    comments: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    decided_at: str | None
    applied_at: str | None


class RunCostTotals(BaseModel):
    llm_cost: str
    total_cost: str


class AuditEntry(BaseModel):
    at: str
    step: str
    actor: str
    event: str
    detail: dict[str, Any]


class RunStatus(BaseModel):
    run_id: str
    case_id: str
    customer_id: str | None
    status: str
    current_step: str | None
    attempts: int
    next_attempt_at: str | None
    last_error: dict[str, Any] | None
    validation: dict[str, Any] | None
    dispute_label: str | None = Field(description="The CRM's own label for the dispute.")
    proposal: dict[str, Any] | None
    provenance: dict[str, Any] | None = Field(
        default=None,
        description="What the draft rested on: the cited policy sections' content hashes "
        "and ingestion versions, the prompt version, the drafter and model, and the review "
        "thresholds in force.",
    )
    review: ReviewState
    payouts: list[PayoutOut]
    decisions: list[DecisionRecord]
    final_resolution: dict[str, Any] | None
    costs: RunCostTotals
    audit: list[AuditEntry]
    created_at: str
    updated_at: str
    completed_at: str | None


class RunControlResult(BaseModel):
    run_id: str
    status: str = Field(description="The run's status now: `running` or `cancelled`.")


class LLMCallCost(BaseModel):
    """One drafting call (models/domain.py `LLMCall`), cost in USD as a string."""

    model: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_usd: str
    latency_ms: int
    cache_hit: bool
    outcome: str


class RunCosts(BaseModel):
    run_id: str
    status: str
    llm_cost_usd: str
    total_cost_usd: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    calls: list[LLMCallCost]


class WorkflowCosts(BaseModel):
    case_id: str
    run_id: str
    status: str
    llm_cost_usd: str
    total_cost_usd: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    calls: list[LLMCallCost]


class CaseCosts(BaseModel):
    case_id: str
    runs: int = Field(description="How many runs the case had.")
    llm_cost_usd: str
    total_cost_usd: str
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    items: list[RunCosts]
