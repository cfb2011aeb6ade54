"""The payout ledger: the single record of money this system moves (table `payouts`).

A row is written before the provider is called (`intended`), marked `sent` just before the
call, and updated from the provider's answer: `pending`, `succeeded` or `failed`; a call
whose answer never came is `unknown`. Rows that are not `failed` are money committed
against their charge: they cap what any later run may refund or credit on it, whatever
the provider's own figures say. `unknown` and `sent` rows are settled by looking the
payment up at the provider under the row's idempotency key, never by paying again
(agents/move_money.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from models.tables import payouts

PayoutState = str  # intended | sent | pending | succeeded | failed | unknown
COMMITTED_STATES = ("intended", "sent", "pending", "succeeded", "unknown")
REFUND, CREDIT = "refund", "credit"


@dataclass(frozen=True)
class Payout:
    id: int
    run_id: str
    case_id: str
    charge_id: str
    account_key: str | None
    action: str
    amount: Decimal
    currency: str
    idempotency_key: str
    version: int
    approved_by: list[str]
    state: PayoutState
    provider: str
    provider_ref: str | None
    provider_status: str | None
    failure_reason: str | None
    acknowledged_at: datetime | None
    created_at: datetime

    @property
    def committed(self) -> bool:
        return self.state in COMMITTED_STATES

    def as_dict(self) -> dict[str, Any]:
        """For the graph state, the run's row and the reviewer: JSON, amounts as strings."""
        return {
            "run_id": self.run_id,
            "case_id": self.case_id,
            "charge_id": self.charge_id,
            "action": self.action,
            "amount": str(self.amount),
            "currency": self.currency,
            "state": self.state,
            "provider": self.provider,
            "provider_ref": self.provider_ref,
            "version": self.version,
            "approved_by": self.approved_by,
            "failure_reason": self.failure_reason,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class PaidAgainst:
    """What this system has committed against one charge (rows that are not `failed`)."""

    refunds: Decimal
    credits: Decimal
    payouts: tuple[Payout, ...]


def _payout(row: Any) -> Payout:
    m = row._mapping
    return Payout(
        id=m["id"],
        run_id=str(m["run_id"]),
        case_id=m["case_id"],
        charge_id=m["charge_id"],
        account_key=m["account_key"],
        action=m["action"],
        amount=Decimal(m["amount"]),
        currency=m["currency"],
        idempotency_key=m["idempotency_key"],
        version=m["version"],
        approved_by=list(m["approved_by"] or []),
        state=m["state"],
        provider=m["provider"],
        provider_ref=m["provider_ref"],
        provider_status=m["provider_status"],
        failure_reason=m["failure_reason"],
        acknowledged_at=m["acknowledged_at"],
        created_at=m["created_at"],
    )


class PayoutLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def intend(
        self,
        *,
        run_id: str,
        case_id: str,
        charge_id: str,
        account_key: str | None,
        action: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        version: int,
        approved_by: Sequence[str],
        provider: str,
    ) -> Payout:
        """Write the intended payout, or return the row already written under this key."""
        statement = (
            insert(payouts)
            .values(
                run_id=run_id,
                case_id=case_id,
                charge_id=charge_id,
                account_key=account_key,
                action=action,
                amount=amount,
                currency=currency,
                idempotency_key=idempotency_key,
                version=version,
                approved_by=list(approved_by),
                state="intended",
                provider=provider,
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
        )
        async with self._auto.connect() as conn:
            await conn.execute(statement)
            row = (
                await conn.execute(
                    select(payouts).where(payouts.c.idempotency_key == idempotency_key)
                )
            ).one()
        return _payout(row)

    async def mark(
        self,
        idempotency_key: str,
        state: PayoutState,
        *,
        provider_ref: str | None = None,
        provider_status: str | None = None,
        failure_reason: str | None = None,
    ) -> Payout:
        """Record what is known of the payout now; a settled row is never reopened."""
        values: dict[str, Any] = {"state": state, "updated_at": func.now()}
        if provider_ref is not None:
            values["provider_ref"] = provider_ref
        if provider_status is not None:
            values["provider_status"] = provider_status
        if failure_reason is not None:
            values["failure_reason"] = failure_reason[:2000]
        async with self._auto.connect() as conn:
            row = (
                await conn.execute(
                    update(payouts)
                    .where(
                        payouts.c.idempotency_key == idempotency_key,
                        # succeeded is final; failed is final unless a late answer shows
                        # the payment did happen (then the money moved after all).
                        (payouts.c.state != "succeeded") | (payouts.c.state == state),
                    )
                    .values(**values)
                    .returning(*payouts.c)
                )
            ).first()
            if row is None:
                row = (
                    await conn.execute(
                        select(payouts).where(payouts.c.idempotency_key == idempotency_key)
                    )
                ).one()
        return _payout(row)

    async def for_run(self, run_id: str) -> list[Payout]:
        """The run's payouts, oldest first."""
        async with self._auto.connect() as conn:
            rows = await conn.execute(
                select(payouts).where(payouts.c.run_id == run_id).order_by(payouts.c.id)
            )
            return [_payout(r) for r in rows]

    async def for_charge(self, charge_id: str) -> list[Payout]:
        async with self._auto.connect() as conn:
            rows = await conn.execute(
                select(payouts).where(payouts.c.charge_id == charge_id).order_by(payouts.c.id)
            )
            return [_payout(r) for r in rows]

    async def paid_against(self, charge_id: str, *, exclude_key: str | None = None) -> PaidAgainst:
        """Refunds and credits committed against the charge, but for `exclude_key`'s row."""
        committed = [
            p
            for p in await self.for_charge(charge_id)
            if p.committed and p.idempotency_key != exclude_key
        ]
        refunds = sum((p.amount for p in committed if p.action == REFUND), Decimal("0"))
        credits = sum((p.amount for p in committed if p.action == CREDIT), Decimal("0"))
        return PaidAgainst(refunds=refunds, credits=credits, payouts=tuple(committed))

    async def acknowledge_failed(self, run_id: str) -> int:
        """An operator has seen the run's failed payouts: its next attempt may pay again."""
        async with self._auto.connect() as conn:
            result = await conn.execute(
                update(payouts)
                .where(
                    payouts.c.run_id == run_id,
                    payouts.c.state == "failed",
                    payouts.c.acknowledged_at.is_(None),
                )
                .values(acknowledged_at=func.now(), updated_at=func.now())
            )
            return int(result.rowcount)


__all__ = ["COMMITTED_STATES", "CREDIT", "REFUND", "PaidAgainst", "Payout", "PayoutLedger"]
