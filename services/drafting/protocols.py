"""The drafter contract the graph depends on."""

from __future__ import annotations

from typing import Protocol

from models.domain import DraftResult
from services.drafting.context import DraftingContext


class ResolutionDrafter(Protocol):
    @property
    def name(self) -> str: ...

    async def draft(self, *, context: DraftingContext) -> DraftResult: ...

    async def invalidate(self, *, dispute_type: str) -> int:
        """Drop cached drafts of `dispute_type` (a resolution of that type was stored)."""
        ...
