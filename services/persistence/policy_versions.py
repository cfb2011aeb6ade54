"""Every ingested version of every policy section (table `policy_versions`).

The knowledge base holds the current text of each section; this table keeps each text
ever ingested, by its content hash, so the sections a past proposal cited stay readable
after the policy changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from models.domain import PolicyHit
from models.tables import policy_versions


class PolicyVersion(BaseModel):
    """One stored version of a policy section."""

    model_config = ConfigDict(frozen=True)

    policy_id: str
    section: str
    content_hash: str
    source_file: str
    text: str
    version: int
    ingested_at: datetime


class PolicyVersionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, sections: Sequence[PolicyHit]) -> int:
        """Store the sections' versions not stored before; return how many were new."""
        rows = {
            (s.policy_id, s.section, s.content_hash): {
                "policy_id": s.policy_id,
                "section": s.section,
                "content_hash": s.content_hash,
                "source_file": s.source_file,
                "text": s.text,
                "version": s.policy_version,
            }
            for s in sections
            if s.content_hash
        }
        if not rows:
            return 0
        statement = (
            insert(policy_versions)
            .values(list(rows.values()))
            .on_conflict_do_nothing(constraint="uq_policy_versions_hash")
            .returning(policy_versions.c.id)
        )
        async with self._engine.begin() as conn:
            return len((await conn.execute(statement)).all())

    async def by_hash(self, content_hash: str) -> list[PolicyVersion]:
        """The stored section versions whose text has `content_hash` (normally one)."""
        return await self._select(policy_versions.c.content_hash == content_hash)

    async def history(self, *, policy_id: str, section: str) -> list[PolicyVersion]:
        """Every stored version of one section, oldest first."""
        return await self._select(
            (policy_versions.c.policy_id == policy_id) & (policy_versions.c.section == section)
        )

    async def _select(self, where: ColumnElement[bool]) -> list[PolicyVersion]:
        statement = (
            select(
                policy_versions.c.policy_id,
                policy_versions.c.section,
                policy_versions.c.content_hash,
                policy_versions.c.source_file,
                policy_versions.c.text,
                policy_versions.c.version,
                policy_versions.c.ingested_at,
            )
            .where(where)
            .order_by(policy_versions.c.version, policy_versions.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [PolicyVersion.model_validate(dict(row)) for row in rows]


__all__ = ["PolicyVersion", "PolicyVersionStore"]
