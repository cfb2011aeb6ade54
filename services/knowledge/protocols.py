"""Knowledge base contract: company policies and past resolutions (ChromaDB)."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from models.domain import PolicyHit, PrecedentHit, ResolutionRecord


class PolicyStore(Protocol):
    backend: str

    async def search_policies(self, *, query: str, k: int = 3) -> list[PolicyHit]:
        """The `k` policy sections most relevant to `query`, best first, with scores."""
        ...

    async def similar_cases(
        self,
        *,
        query: str,
        dispute_type: str,
        amount: Decimal,
        customer_segment: str,
        k: int = 3,
        exclude_case_id: str | None = None,
    ) -> list[PrecedentHit]:
        """The `k` past resolutions most similar to this dispute, best first, with scores;
        never the resolution of `exclude_case_id` (the querying case's own)."""
        ...

    async def add_resolution(self, *, record: ResolutionRecord) -> None:
        """Store a decided case for future similarity (upsert by case id)."""
        ...
