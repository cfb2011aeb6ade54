"""The contracts of the external systems a run talks to: CRM (Salesforce), billing (Zuora)
and payments (Stripe). Real adapters live beside this module; the sandbox implements the
same Protocols structurally (services/sandbox/backends.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from models.domain import (
    BillingData,
    Charge,
    CreditResult,
    CRMAccount,
    CRMCase,
    Dispute,
    EarlyFraudWarning,
    RefundResult,
)
from services.errors import ConflictError

# Stripe's dispute evidence fields (`evidence[...]` of `POST /v1/disputes/{id}`). A text
# field takes text; a file field takes only the id (`file_...`) of a file uploaded with
# purpose `dispute_evidence`, and Stripe refuses anything else.
TEXT_EVIDENCE_FIELDS = frozenset(
    {
        "access_activity_log",
        "billing_address",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "duplicate_charge_explanation",
        "duplicate_charge_id",
        "product_description",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "service_date",
        "shipping_address",
        "shipping_carrier",
        "shipping_date",
        "shipping_tracking_number",
        "uncategorized_text",
    }
)
FILE_EVIDENCE_FIELDS = frozenset(
    {
        "cancellation_policy",
        "customer_communication",
        "customer_signature",
        "duplicate_charge_documentation",
        "receipt",
        "refund_policy",
        "service_documentation",
        "shipping_documentation",
        "uncategorized_file",
    }
)
# Stripe's limits: 20,000 characters for each long text field, 150,000 for all together.
EVIDENCE_TEXT_MAX_CHARS = 20_000
EVIDENCE_TOTAL_MAX_CHARS = 150_000
# What Stripe takes as a `dispute_evidence` file: PDF, JPEG or PNG, at most 5 MB.
EVIDENCE_FILE_MAX_BYTES = 5 * 1024 * 1024
# Stripe's dispute reasons.
DISPUTE_REASONS = frozenset(
    {
        "bank_cannot_process",
        "check_returned",
        "credit_not_processed",
        "customer_initiated",
        "debit_not_authorized",
        "duplicate",
        "fraudulent",
        "general",
        "incorrect_account_details",
        "insufficient_funds",
        "noncompliant",
        "product_not_received",
        "product_unacceptable",
        "subscription_canceled",
        "unrecognized",
    }
)


class ChargeDisputedError(ConflictError):
    """A refund refused because the charge is under dispute (Stripe: `charge_disputed`).

    Never retried: refunding a charged-back charge would pay the customer twice.
    """


class CRMClient(Protocol):
    backend: str

    async def get_case(self, *, case_id: str) -> CRMCase: ...

    async def get_account(self, *, account_id: str) -> CRMAccount: ...

    async def find_account_by_stripe_customer(self, *, customer_id: str) -> CRMAccount | None:
        """The account whose Stripe customer id is `customer_id`, or None."""
        ...

    async def list_account_disputes(self, *, account_id: str, since: datetime) -> list[CRMCase]:
        """Dispute cases of the account created at or after `since` (all statuses)."""
        ...

    async def record_outcome(
        self, *, case_id: str, status: str, summary: str, idempotency_key: str
    ) -> None:
        """Write the resolution outcome to the case; repeating the same key changes nothing."""
        ...


class BillingClient(Protocol):
    backend: str

    async def get_billing(self, *, account_key: str) -> BillingData:
        """Account summary (balance) and its subscriptions."""
        ...

    async def create_credit(
        self, *, account_key: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> CreditResult:
        """Credit the account; the same key never credits twice."""
        ...

    async def find_credit(self, *, account_key: str, idempotency_key: str) -> CreditResult | None:
        """The credit memo made for the account under this key, or None.

        Looked up from what the billing system stores, not from its idempotency cache, so
        it still answers after the provider has forgotten the key.
        """
        ...


class PaymentGateway(Protocol):
    backend: str

    async def list_charges(self, *, customer_id: str, limit: int) -> list[Charge]:
        """The customer's most recent charges, newest first."""
        ...

    async def get_charge(self, *, charge_id: str) -> Charge:
        """One charge with what has been refunded and its risk assessment."""
        ...

    async def refund(
        self, *, charge_id: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> RefundResult:
        """Refund part or all of a charge; the same key never refunds twice."""
        ...

    async def find_refund(self, *, charge_id: str, idempotency_key: str) -> RefundResult | None:
        """The refund of this charge made under this key, or None.

        Looked up from the charge's refunds, not from the provider's idempotency cache
        (Stripe forgets a key after 24 hours), so a retry days later still finds it.
        """
        ...

    async def get_refund(self, *, refund_id: str) -> RefundResult:
        """One refund by id, as it stands now (to follow a pending refund until it settles)."""
        ...


class DisputeGateway(Protocol):
    """Card disputes (chargebacks), their evidence, and Radar early fraud warnings."""

    backend: str

    async def get_dispute(self, *, dispute_id: str) -> Dispute:
        """One dispute as it stands now."""
        ...

    async def dispute_of_charge(self, *, charge_id: str) -> Dispute | None:
        """The charge's newest dispute, or None; asked before any refund of the charge."""
        ...

    async def upload_evidence_file(
        self, *, filename: str, content: bytes, idempotency_key: str
    ) -> str:
        """Upload a PDF, JPEG or PNG as dispute evidence; return its file id (`file_...`)."""
        ...

    async def submit_evidence(
        self, *, dispute_id: str, evidence: dict[str, str], idempotency_key: str
    ) -> Dispute:
        """Submit the evidence (TEXT_EVIDENCE_FIELDS take text, FILE_EVIDENCE_FIELDS file
        ids) to the issuer; the same key never submits twice."""
        ...

    async def accept_dispute(self, *, dispute_id: str, idempotency_key: str) -> Dispute:
        """Close the dispute, accepting it as lost; the same key never closes twice."""
        ...

    async def get_early_fraud_warning(self, *, warning_id: str) -> EarlyFraudWarning:
        """One early fraud warning, with whether it is still actionable."""
        ...


class EvidenceRenderer(Protocol):
    """Renders evidence documents to upload as dispute evidence files."""

    def render_pdf(self, *, title: str, sections: list[tuple[str, str]]) -> bytes:
        """A PDF of `title` and its (heading, text) sections."""
        ...


@dataclass(frozen=True)
class Backends:
    """One implementation of each contract."""

    crm: CRMClient
    billing: BillingClient
    payments: PaymentGateway
    # The sandbox's payments answer disputes too; None where a backend set has none.
    disputes: DisputeGateway | None = None
