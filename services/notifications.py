"""Reviewer notification contract."""

from __future__ import annotations

from typing import Any, Protocol


class ReviewNotifier(Protocol):
    backend: str

    async def request_review(self, *, run_id: str, case_id: str, summary: dict[str, Any]) -> None:
        """Tell the approvers that a run awaits their decision (records what was sent)."""
        ...
