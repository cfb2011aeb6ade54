"""Payment gateway (Stripe) contract and its sandbox implementation."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from models.domain import Charge, RefundResult, quantize_money
from services.errors import InvalidRequestError, NotFoundError
from services.sandbox import SandboxDataset, SandboxLedger


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
        return RefundResult(
            refund_id=f"re_sandbox_{entry.entry_id:08d}",
            charge_id=charge_id,
            amount=Decimal(entry.payload["amount"]),
            currency=entry.payload["currency"],
            status="succeeded",
            idempotency_key=idempotency_key,
        )
