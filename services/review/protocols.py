"""The review contract the graph depends on: telling approvers a run awaits them."""

from __future__ import annotations

from typing import Any, Protocol


class ReviewNotifier(Protocol):
    @property
    def backend(self) -> str: ...

    async def request_review(self, *, run_id: str, case_id: str, summary: dict[str, Any]) -> None:
        """Tell the approvers that a run awaits their decision (records what was sent)."""
        ...
