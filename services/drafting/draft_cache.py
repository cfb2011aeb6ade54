"""The draft cache: a draft reused for identical drafting inputs, across processes.

Kept in PostgreSQL (`draft_cache`), so it survives restarts and is shared by every worker.
The key hashes everything the drafter sees except the run id and the retrieval scores,
with timestamps taken relative to the case's creation (the sandbox dataset is rebuilt
relative to "now" at each start; the facts, and so the draft, are the same), plus the
drafter's model and the prompt version. Entries expire after the TTL; storing a new
resolution invalidates every entry of its dispute type, since that resolution may now be
retrieved as a precedent for them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from models.domain import ResolutionProposal
from models.tables import draft_cache

if TYPE_CHECKING:
    from services.drafting.context import DraftingContext

log = logging.getLogger(__name__)


def _canonical(value: Any, anchor: datetime) -> Any:
    if isinstance(value, datetime):
        return round((value - anchor).total_seconds())
    if isinstance(value, Decimal):
        return str(value.normalize()) if value.is_finite() else str(value)
    if isinstance(value, dict):
        return {key: _canonical(item, anchor) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item, anchor) for item in value]
    return value


def cache_key(context: DraftingContext, *, drafter: str, prompt_version: str) -> str:
    """SHA-256 of the drafting inputs of `context` for `drafter` and `prompt_version`."""
    inputs = context.model_dump(
        exclude={
            "run_id": True,
            "case": {"status"},
            "policies": {"__all__": {"score"}},
            "precedents": {"__all__": {"score"}},
        }
    )
    payload = {
        "drafter": drafter,
        "prompt": prompt_version,
        "inputs": _canonical(inputs, context.case.created_at),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class DraftCache:
    """Stored drafts by cache key, with a TTL; a TTL of zero disables the cache.

    Reads ignore expired rows; a put drops them, at most once per `SWEEP_EVERY` per
    process, so the hot path is one statement each way.
    """

    SWEEP_EVERY = timedelta(minutes=5)

    def __init__(
        self, engine: AsyncEngine, *, ttl: timedelta, clock: Callable[[], datetime]
    ) -> None:
        self._engine = engine
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._ttl = ttl
        self._clock = clock
        self._swept: datetime | None = None

    @property
    def enabled(self) -> bool:
        return self._ttl > timedelta(0)

    async def get(self, key: str) -> ResolutionProposal | None:
        """The unexpired draft stored under `key`, if any."""
        if not self.enabled:
            return None
        async with self._auto.connect() as conn:
            stored = (
                await conn.execute(
                    select(draft_cache.c.proposal).where(
                        draft_cache.c.cache_key == key,
                        draft_cache.c.expires_at > self._clock(),
                    )
                )
            ).scalar()
        return None if stored is None else ResolutionProposal.model_validate(stored)

    async def put(
        self, key: str, *, case_id: str, dispute_type: str, proposal: ResolutionProposal
    ) -> None:
        """Store `proposal` under `key` (replacing any previous one)."""
        if not self.enabled:
            return
        now = self._clock()
        values = {
            "case_id": case_id,
            "dispute_type": dispute_type,
            "proposal": proposal.model_dump(mode="json"),
            "created_at": now,
            "expires_at": now + self._ttl,
        }
        statement = insert(draft_cache).values(cache_key=key, **values)
        async with self._auto.connect() as conn:
            await conn.execute(
                statement.on_conflict_do_update(index_elements=["cache_key"], set_=values)
            )
            if self._swept is None or now - self._swept >= self.SWEEP_EVERY:
                self._swept = now
                await conn.execute(delete(draft_cache).where(draft_cache.c.expires_at <= now))

    async def discard(self, key: str) -> None:
        """Drop the entry under `key`."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(draft_cache).where(draft_cache.c.cache_key == key))

    async def invalidate(self, *, dispute_type: str) -> int:
        """Drop every draft of `dispute_type`; returns how many were dropped."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(draft_cache).where(draft_cache.c.dispute_type == dispute_type)
            )
        dropped = int(result.rowcount or 0)
        log.info("draft cache: %d draft(s) of %s invalidated", dropped, dispute_type)
        return dropped

    async def on_resolution_stored(self, dispute_type: str) -> None:
        """Hook for the workflow context: a resolution of `dispute_type` was stored."""
        await self.invalidate(dispute_type=dispute_type)


__all__ = ["DraftCache", "cache_key"]
