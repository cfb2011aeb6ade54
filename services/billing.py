"""Billing (Zuora) contract and its sandbox implementation."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from models.domain import BillingData, CreditResult, quantize_money
from services.errors import InvalidRequestError, NotFoundError
from services.sandbox import SandboxDataset, SandboxLedger


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


class SandboxBilling:
    backend = "sandbox"

    def __init__(self, *, dataset: SandboxDataset, ledger: SandboxLedger) -> None:
        self._data = dataset
        self._ledger = ledger

    async def get_billing(self, *, account_key: str) -> BillingData:
        billing = self._data.billing.get(account_key)
        if billing is None:
            raise NotFoundError(f"billing account {account_key} not found")
        return billing

    async def create_credit(
        self, *, account_key: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> CreditResult:
        if account_key not in self._data.billing:
            raise NotFoundError(f"billing account {account_key} not found")
        if amount <= 0:
            raise InvalidRequestError("credit amount must be positive")
        entry = await self._ledger.record(
            idempotency_key=idempotency_key,
            kind="credit",
            subject_id=account_key,
            payload={"amount": str(quantize_money(amount)), "currency": currency, "reason": reason},
        )
        return CreditResult(
            credit_id=f"CM-{entry.entry_id:08d}",
            account_key=account_key,
            amount=Decimal(entry.payload["amount"]),
            currency=entry.payload["currency"],
            idempotency_key=idempotency_key,
        )
