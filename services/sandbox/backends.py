"""The sandbox's CRM, billing and payment backends: the built-in dataset, with every case
update, credit and refund a durable row in the sandbox ledger. They implement the Protocols
of services/integrations/protocols.py.

The ledger holds one row per idempotency key and never forgets one (Stripe and Zuora do,
after 24 hours): a repeated key here always returns the first refund or credit, and
`find_refund` / `find_credit` read the same rows.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from models.domain import (
    BillingData,
    Charge,
    CreditResult,
    CRMAccount,
    CRMCase,
    RefundResult,
    quantize_money,
)
from services.errors import InvalidRequestError, NotFoundError
from services.integrations.protocols import Backends
from services.sandbox.dataset import SandboxDataset
from services.sandbox.ledger import LedgerEntry, SandboxLedger


class SandboxCRM:
    """The built-in dataset's cases and accounts; outcomes go to the sandbox ledger."""

    backend = "sandbox"

    def __init__(self, *, dataset: SandboxDataset, ledger: SandboxLedger) -> None:
        self._data = dataset
        self._ledger = ledger

    async def get_case(self, *, case_id: str) -> CRMCase:
        case = self._data.cases.get(case_id)
        if case is None:
            raise NotFoundError(f"case {case_id} not found in CRM")
        return case

    async def get_account(self, *, account_id: str) -> CRMAccount:
        account = self._data.accounts.get(account_id)
        if account is None:
            raise NotFoundError(f"account {account_id} not found in CRM")
        return account

    async def list_account_disputes(self, *, account_id: str, since: datetime) -> list[CRMCase]:
        return [
            case
            for case in self._data.cases.values()
            if case.account_id == account_id and case.created_at >= since
        ]

    async def record_outcome(
        self, *, case_id: str, status: str, summary: str, idempotency_key: str
    ) -> None:
        if case_id not in self._data.cases:
            raise NotFoundError(f"case {case_id} not found in CRM")
        await self._ledger.record(
            idempotency_key=idempotency_key,
            kind="case_update",
            subject_id=case_id,
            payload={"status": status, "summary": summary},
        )


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
        return _credit(entry, idempotency_key=idempotency_key)

    async def find_credit(self, *, account_key: str, idempotency_key: str) -> CreditResult | None:
        entry = await self._ledger.get(idempotency_key)
        if entry is None or entry.kind != "credit" or entry.subject_id != account_key:
            return None
        return _credit(entry, idempotency_key=idempotency_key)


class SandboxPayments:
    """Charges from the built-in dataset; refunds are durable rows in the sandbox ledger."""

    backend = "sandbox"

    def __init__(self, *, dataset: SandboxDataset, ledger: SandboxLedger) -> None:
        self._data = dataset
        self._ledger = ledger

    async def _with_refunds(self, charge: Charge) -> Charge:
        refunded = await self._ledger.refunded_total(charge_id=charge.charge_id)
        total = charge.amount_refunded + refunded
        return charge.model_copy(
            update={"amount_refunded": total, "refunded": charge.refunded or total >= charge.amount}
        )

    async def list_charges(self, *, customer_id: str, limit: int) -> list[Charge]:
        charges = sorted(
            (c for c in self._data.charges.values() if c.customer_id == customer_id),
            key=lambda c: c.created_at,
            reverse=True,
        )[:limit]
        return [await self._with_refunds(c) for c in charges]

    async def get_charge(self, *, charge_id: str) -> Charge:
        charge = self._data.charges.get(charge_id)
        if charge is None:
            raise NotFoundError(f"charge {charge_id} not found")
        return await self._with_refunds(charge)

    async def refund(
        self, *, charge_id: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> RefundResult:
        replay = await self._ledger.get(idempotency_key)
        if replay is None:
            charge = await self.get_charge(charge_id=charge_id)
            if amount <= 0 or amount > charge.refundable:
                raise InvalidRequestError(
                    f"refund of {amount} exceeds the refundable {charge.refundable} on {charge_id}"
                )
        entry = await self._ledger.record(
            idempotency_key=idempotency_key,
            kind="refund",
            subject_id=charge_id,
            payload={"amount": str(quantize_money(amount)), "currency": currency, "reason": reason},
        )
        return _refund(entry, idempotency_key=idempotency_key)

    async def find_refund(self, *, charge_id: str, idempotency_key: str) -> RefundResult | None:
        entry = await self._ledger.get(idempotency_key)
        if entry is None or entry.kind != "refund" or entry.subject_id != charge_id:
            return None
        return _refund(entry, idempotency_key=idempotency_key)

    async def get_refund(self, *, refund_id: str) -> RefundResult:
        number = refund_id.removeprefix(REFUND_ID_PREFIX)
        entry = None
        if refund_id.startswith(REFUND_ID_PREFIX) and number.isdigit():
            entry = await self._ledger.get_entry(int(number))
        if entry is None or entry.kind != "refund":
            raise NotFoundError(f"refund {refund_id} not found")
        return _refund(entry, idempotency_key=entry.idempotency_key)


REFUND_ID_PREFIX = "re_sandbox_"


def _refund(entry: LedgerEntry, *, idempotency_key: str) -> RefundResult:
    # Sandbox refunds settle at once: never pending, never failed.
    return RefundResult(
        refund_id=f"{REFUND_ID_PREFIX}{entry.entry_id:08d}",
        charge_id=entry.subject_id,
        amount=Decimal(entry.payload["amount"]),
        currency=entry.payload["currency"],
        status="succeeded",
        idempotency_key=idempotency_key,
    )


def _credit(entry: LedgerEntry, *, idempotency_key: str) -> CreditResult:
    return CreditResult(
        credit_id=f"CM-{entry.entry_id:08d}",
        account_key=entry.subject_id,
        amount=Decimal(entry.payload["amount"]),
        currency=entry.payload["currency"],
        idempotency_key=idempotency_key,
    )


def sandbox_backends(*, dataset: SandboxDataset, ledger: SandboxLedger) -> Backends:
    """The sandbox's CRM, billing and payments over one dataset and ledger."""
    return Backends(
        crm=SandboxCRM(dataset=dataset, ledger=ledger),
        billing=SandboxBilling(dataset=dataset, ledger=ledger),
        payments=SandboxPayments(dataset=dataset, ledger=ledger),
    )
