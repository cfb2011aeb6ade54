"""Domain models shared by the services, the graph and the API.

Amounts are `Decimal` with the currency beside them; `model_dump(mode="json")` renders
them as strings, so a round trip through the checkpoint or a JSON column is exact.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

CENT = Decimal("0.01")


def quantize_money(amount: Decimal) -> Decimal:
    """Round an amount to cents, half-even: the one rounding rule of the project."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def to_minor_units(amount: Decimal) -> int:
    """Convert a two-decimal currency amount to integer minor units (cents)."""
    return int(quantize_money(amount) * 100)


def from_minor_units(cents: int) -> Decimal:
    """Convert integer minor units (cents) to a Decimal amount."""
    return quantize_money(Decimal(cents) / 100)


class DisputeType(StrEnum):
    DUPLICATE_CHARGE = "duplicate_charge"
    SERVICE_OUTAGE = "service_outage"
    CANCELLATION_NOT_PROCESSED = "cancellation_not_processed"
    UNRECOGNIZED_CHARGE = "unrecognized_charge"
    INCORRECT_AMOUNT = "incorrect_amount"
    REFUND_NOT_PROCESSED = "refund_not_processed"


class ResolutionAction(StrEnum):
    FULL_REFUND = "full_refund"
    PARTIAL_REFUND = "partial_refund"
    ACCOUNT_CREDIT = "account_credit"
    DENY_REFUND = "deny_refund"


CustomerSegment = Literal["standard", "premium", "enterprise"]
RiskLevel = Literal["normal", "elevated", "highest", "unknown"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CRMCase(Frozen):
    case_id: str
    case_number: str
    account_id: str
    subject: str
    description: str
    status: str
    priority: str
    created_at: datetime
    dispute_type: str
    amount: Decimal
    currency: str = "usd"
    charge_id: str | None = None
    outage_hours: Decimal | None = None
    # The CRM's own label when it is not the type's value ("Unauthorized Charge"); shown
    # to reviewers, above all when it maps to no known type (models/dispute_types.py).
    dispute_label: str | None = None


class CRMAccount(Frozen):
    account_id: str
    name: str
    type: str
    segment: CustomerSegment
    email: str | None = None
    billing_country: str | None = None
    billing_state: str | None = None
    stripe_customer_id: str | None = None
    zuora_account_id: str | None = None
    # Optional fields the CRM left empty or unreadable, and what was assumed instead
    # ("segment missing: standard assumed"); filled by the CRM adapter.
    data_quality: list[str] = Field(default_factory=list)


class CRMData(Frozen):
    case: CRMCase
    account: CRMAccount
    disputes_last_90d: int = Field(ge=0, description="disputes by this account in 90 days")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def data_quality(self) -> list[str]:
        """What the CRM adapter defaulted for this run (the account's notes)."""
        return list(self.account.data_quality)


class Subscription(Frozen):
    subscription_id: str
    plan: str
    status: str
    amount: Decimal
    currency: str = "usd"
    billing_period: str = "month"
    start_date: datetime
    cancellation_requested_at: datetime | None = None
    cancelled_at: datetime | None = None


class BillingData(Frozen):
    account_key: str
    balance: Decimal
    currency: str = "usd"
    subscriptions: list[Subscription]
    # Optional fields the billing system left empty or unreadable, and what was assumed
    # instead ("no start date: termStartDate used"); filled by the billing adapter.
    data_quality: list[str] = Field(default_factory=list)


class Charge(Frozen):
    charge_id: str
    customer_id: str
    amount: Decimal
    amount_refunded: Decimal = Decimal("0")
    currency: str = "usd"
    refunded: bool = False
    status: str = "succeeded"
    description: str = ""
    created_at: datetime
    risk_level: RiskLevel = "normal"
    risk_score: int | None = None
    # Stripe's `disputed`: whether the charge was ever disputed. None where the source does
    # not say (the dispute lookup then always runs).
    disputed: bool | None = None
    # What this system already paid against the charge that the payment system's own
    # figure does not show: account credits, and refunds it has not reported yet
    # (services/persistence/payouts.py). Both reduce what may still be refunded.
    credited: Decimal = Decimal("0")
    refunds_unreported: Decimal = Decimal("0")

    @property
    def refundable(self) -> Decimal:
        """What can still be paid back on this charge, by refund or credit."""
        paid = self.amount_refunded + self.refunds_unreported + self.credited
        return max(self.amount - paid, Decimal("0"))


class PaymentData(Frozen):
    customer_id: str
    disputed_charge: Charge | None
    recent_charges: list[Charge]
    # What this system paid against the disputed charge before, for any case (the payout
    # ledger's rows that are not failed): shown to the reviewer, never auto-approved.
    prior_payouts: list[dict[str, Any]] = Field(default_factory=list)
    # The charge's Stripe dispute (a chargeback), if it has one: a charge under dispute is
    # never refunded; for a chargeback run it is the dispute being answered.
    dispute: dict[str, Any] | None = None
    # The Radar early fraud warning an early-fraud-warning run answers.
    fraud_warning: dict[str, Any] | None = None


class RefundResult(Frozen):
    refund_id: str
    charge_id: str
    amount: Decimal
    currency: str
    # Stripe's values: pending, requires_action, succeeded, failed, canceled. A pending
    # refund may still fail; a failed or canceled one gives the amount back to the charge.
    status: str
    idempotency_key: str
    failure_reason: str | None = None


class CreditResult(Frozen):
    credit_id: str
    account_key: str
    amount: Decimal
    currency: str
    idempotency_key: str


class PolicyHit(Frozen):
    chunk_id: str
    policy_id: str
    title: str
    section: str
    source_file: str
    text: str
    score: float
    # sha256 of the section's whitespace-normalised text, and the ingestion that wrote it
    # (policy_versions keeps every version's text by hash, for audit).
    content_hash: str = ""
    policy_version: int = 0


class PrecedentHit(Frozen):
    case_id: str
    dispute_type: str
    amount: Decimal
    customer_segment: str
    outcome: str
    text: str
    score: float


class ResolutionRecord(Frozen):
    """A decided case, stored for future similarity."""

    case_id: str
    dispute_type: str
    description: str
    resolution: str
    reasoning: str
    amount: Decimal
    currency: str = "usd"
    customer_segment: str
    outcome: str


class ResolutionProposal(Frozen):
    action: ResolutionAction
    amount: Decimal = Field(ge=0)
    currency: str = "usd"
    reason: str
    confidence: float = Field(ge=0, le=1)
    supporting_factors: list[str] = Field(default_factory=list)
    risk_level: Literal["low", "medium", "high"] = "medium"
    policy_ids: list[str] = Field(default_factory=list)
    drafter: str
    fallback_used: bool = False
    fallback_reason: str | None = None
    # What the draft rested on: the cited sections' hashes, prompt version, drafter and
    # model, review thresholds (set by generate_resolution).
    provenance: dict[str, Any] | None = None


class LLMCall(Frozen):
    """One drafting call and what it cost; cost in USD to the micro-dollar."""

    model: str
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal("0")
    latency_ms: int = 0
    cache_hit: bool = False
    outcome: str = "ok"


class DraftResult(Frozen):
    proposal: ResolutionProposal
    calls: list[LLMCall] = Field(default_factory=list)


class ModifiedResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ResolutionAction
    amount: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    reason: str = Field(min_length=1, max_length=2000)


class ChargebackAnswer(BaseModel):
    """A reviewer's change to a chargeback's answer: contest it with this evidence (text
    fields; file evidence stays as drafted), or accept it. The amount is the dispute's."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["contest", "accept"]
    amount: Decimal = Field(default=Decimal("0"), ge=0, max_digits=12, decimal_places=2)
    reason: str = Field(min_length=1, max_length=2000)
    evidence: dict[str, str] = Field(default_factory=dict)


ReviewChannel = Literal["api", "link", "page", "system"]


class ReviewDecision(Frozen):
    decision: Literal["approved", "rejected"]
    reviewer: str
    comments: str = ""
    modified_resolution: ModifiedResolution | ChargebackAnswer | None = None
    channel: ReviewChannel = "api"
    decided_at: datetime
    round: int = 1
    # The reviewer's identity (table `reviewers`); None only for the system's auto-approval.
    reviewer_id: int | None = None
    # The resolution version this decision was given on (models/approvals.py).
    version: int | None = None


# Stripe's dispute statuses. An inquiry (`warning_*`) may still become a chargeback.
DISPUTE_OPEN_STATUSES = frozenset(
    {"warning_needs_response", "warning_under_review", "needs_response", "under_review"}
)
# The statuses in which Stripe takes evidence or a close (acceptance).
DISPUTE_RESPONDABLE_STATUSES = frozenset({"warning_needs_response", "needs_response"})


class Dispute(Frozen):
    """A card dispute (chargeback or inquiry) as the payment system reports it."""

    dispute_id: str
    charge_id: str
    amount: Decimal
    currency: str = "usd"
    # Stripe's reason: fraudulent, subscription_canceled, product_not_received, duplicate, ...
    reason: str
    # warning_needs_response, warning_under_review, warning_closed, needs_response,
    # under_review, won, lost (and prevented on newer API versions).
    status: str
    # `evidence_details.due_by`; None when the issuer allows no response.
    evidence_due_by: datetime | None
    # Whether the charge can still be refunded (Stripe refuses a refund when False).
    is_charge_refundable: bool
    created_at: datetime
    submission_count: int = 0
    has_evidence: bool = False
    # Whether the last submission arrived after `evidence_due_by` (delivery not guaranteed).
    past_due: bool = False

    @property
    def is_open(self) -> bool:
        """Not yet decided: the charge must not be refunded by this system."""
        return self.status in DISPUTE_OPEN_STATUSES

    @property
    def accepts_response(self) -> bool:
        """Evidence can be submitted, or the dispute accepted, now."""
        return self.status in DISPUTE_RESPONDABLE_STATUSES


class EarlyFraudWarning(Frozen):
    """A Radar early fraud warning: the issuer reported the charge as likely fraud."""

    warning_id: str
    charge_id: str
    # True while the charge is neither disputed nor fully refunded: a refund now can
    # prevent the chargeback and its fee.
    actionable: bool
    # card_never_received, fraudulent_card_application, made_with_counterfeit_card,
    # made_with_lost_card, made_with_stolen_card, misc, unauthorized_use_of_card.
    fraud_type: str
    created_at: datetime
