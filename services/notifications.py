"""Reviewer notification contract."""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class ReviewNotifier(Protocol):
    backend: str

    async def request_review(self, *, run_id: str, case_id: str, summary: dict[str, Any]) -> None:
        """Tell the approvers that a run awaits their decision (records what was sent)."""
        ...


class LogOnlyNotifier:
    """Used when no SMTP server is configured: the request is logged, not e-mailed.

    The run stays pending and visible on the dashboard and in /human-review/pending.
    """

    backend = "log-only (SMTP_HOST not set)"

    def __init__(self, *, public_base_url: str) -> None:
        self._base = public_base_url.rstrip("/")

    async def request_review(self, *, run_id: str, case_id: str, summary: dict[str, Any]) -> None:
        log.info(
            "review requested for case %s: %s/runs/%s (no e-mail sent: SMTP_HOST not set)",
            case_id,
            self._base,
            run_id,
            extra={"run_id": run_id},
        )
