"""The contracts of the external systems a run talks to: CRM (Salesforce), billing (Zuora)
and payments (Stripe). Real adapters live beside this module; the sandbox implements the
same Protocols structurally (services/sandbox/backends.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from models.domain import BillingData, Charge, CreditResult, CRMAccount, CRMCase, RefundResult


class CRMClient(Protocol):
    backend: str

    async def get_case(self, *, case_id: str) -> CRMCase: ...

    async def get_account(self, *, account_id: str) -> CRMAccount: ...

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


@dataclass(frozen=True)
class Backends:
    """One implementation of each contract."""

    crm: CRMClient
    billing: BillingClient
    payments: PaymentGateway
