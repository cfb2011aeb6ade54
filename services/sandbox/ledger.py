"""The sandbox ledger: a durable row per refund, credit and case update, one per key."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from models.tables import sandbox_ledger


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: int
    kind: str
    subject_id: str
    payload: dict[str, Any]
    replayed: bool
    idempotency_key: str


class SandboxLedger:
    """Refunds, credits and case updates, one row per idempotency key."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, idempotency_key: str) -> LedgerEntry | None:
        """The entry stored under this key; keys here never expire, unlike a provider's."""
        return await self._one(sandbox_ledger.c.idempotency_key == idempotency_key)

    async def get_entry(self, entry_id: int) -> LedgerEntry | None:
        """The entry with this id."""
        return await self._one(sandbox_ledger.c.id == entry_id)

    async def _one(self, condition: ColumnElement[bool]) -> LedgerEntry | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(sandbox_ledger).where(condition))).first()
        if row is None:
            return None
        return _stored(row)

    async def record(
        self, *, idempotency_key: str, kind: str, subject_id: str, payload: dict[str, Any]
    ) -> LedgerEntry:
        """Insert the entry, or return the one already stored under this key."""
        async with self._engine.begin() as conn:
            inserted = (
                await conn.execute(
                    insert(sandbox_ledger)
                    .values(
                        idempotency_key=idempotency_key,
                        kind=kind,
                        subject_id=subject_id,
                        payload=payload,
                    )
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                    .returning(sandbox_ledger.c.id)
                )
            ).scalar()
        if inserted is not None:
            return LedgerEntry(
                inserted,
                kind,
                subject_id,
                payload,
                replayed=False,
                idempotency_key=idempotency_key,
            )
        existing = await self.get(idempotency_key)
        assert existing is not None
        return existing

    async def entries(self, *, kind: str, subject_id: str) -> list[LedgerEntry]:
        """Every entry of `kind` about `subject_id`, oldest first."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(sandbox_ledger)
                    .where(sandbox_ledger.c.kind == kind, sandbox_ledger.c.subject_id == subject_id)
                    .order_by(sandbox_ledger.c.id)
                )
            ).all()
        return [_stored(row) for row in rows]

    async def refunded_total(self, *, charge_id: str) -> Decimal:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(sandbox_ledger.c.payload).where(
                        sandbox_ledger.c.kind == "refund", sandbox_ledger.c.subject_id == charge_id
                    )
                )
            ).scalars()
            return sum((Decimal(p["amount"]) for p in rows), Decimal("0"))


def _stored(row: Any) -> LedgerEntry:
    """A ledger row as read back: a replay of what was recorded under its key."""
    return LedgerEntry(
        row.id,
        row.kind,
        row.subject_id,
        row.payload,
        replayed=True,
        idempotency_key=row.idempotency_key,
    )
