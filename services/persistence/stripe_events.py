"""Verified Stripe webhook events, each recorded once (table `stripe_events`).

The webhook answers a redelivered event id with 2xx and does nothing else; Stripe sends an
event again until it gets a 2xx, and may send it again even then.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from models.tables import stripe_events


class StripeEventLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def record(
        self, *, event_id: str, type_: str, object_id: str | None, outcome: str
    ) -> bool:
        """Record the event; False when its id was recorded before."""
        statement = (
            insert(stripe_events)
            .values(event_id=event_id, type=type_, object_id=object_id, outcome=outcome)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(stripe_events.c.event_id)
        )
        async with self._auto.connect() as conn:
            return (await conn.execute(statement)).scalar() is not None

    async def forget(self, event_id: str) -> None:
        """Undo `record` when the event could not be enqueued: Stripe's retry is then new."""
        async with self._auto.connect() as conn:
            await conn.execute(delete(stripe_events).where(stripe_events.c.event_id == event_id))


__all__ = ["StripeEventLog"]
