"""Retrying external calls: which failures are worth another attempt, and when to make it.

Only an `IntegrationError` marked `retryable` (a timeout, a 429, a 5xx) is retried. The
wait grows exponentially with jitter, is never shorter than the vendor's `Retry-After`,
and the number of attempts is bounded. A `Retry-After` longer than the policy is willing
to wait ends the attempts at once: the run fails and its message is redelivered later.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from services.errors import (
    AuthenticationError,
    IntegrationError,
    NotFoundError,
    PaymentsAgentError,
)
from services.tracing import external_call, note_retry

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), if any."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def error_for_status(
    *, system: str, status: int, detail: str, retry_after: float | None = None
) -> PaymentsAgentError:
    """Translate a vendor's HTTP error status into the project's exception."""
    if status in (401, 403):
        # The vendor's own message is left out: some echo a masked credential back.
        return AuthenticationError(f"{system}: credentials rejected (HTTP {status})")
    if status == 404:
        return NotFoundError(f"{system}: {detail}")
    if status == 429:
        return IntegrationError(
            f"rate limited: {detail}",
            system=system,
            retryable=True,
            retry_after=retry_after,
            status=status,
        )
    if status >= 500 or status == 408:
        return IntegrationError(
            f"HTTP {status}: {detail}",
            system=system,
            retryable=True,
            retry_after=retry_after,
            status=status,
        )
    return IntegrationError(
        f"HTTP {status}: {detail}", system=system, retryable=False, status=status
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter; usable as the graph's retrier."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    # The longest Retry-After honoured by waiting; a longer one gives up immediately.
    max_retry_after: float = 60.0
    sleep: Sleep = field(default=asyncio.sleep, compare=False)
    random_fraction: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")

    def backoff(self, attempt: int) -> float:
        """Delay after failed attempt number `attempt` (1-based), before any Retry-After."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        # Equal jitter: at least half the exponential step, so retries still spread out.
        return ceiling / 2 + self.random_fraction() * ceiling / 2

    def delay_for(self, error: BaseException, attempt: int) -> float | None:
        """How long to wait before retrying after `error`, or None to give up."""
        if not isinstance(error, IntegrationError) or not error.retryable:
            return None
        if attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt)
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            delay = max(delay, error.retry_after)
        return delay

    async def __call__(self, call: Callable[[], Awaitable[T]], *, operation: str) -> T:
        """Run `call`, retrying retryable integration failures within the policy."""
        with external_call(operation):  # one span per call, its retries as events
            return await self._attempts(call, operation=operation)

    async def _attempts(self, call: Callable[[], Awaitable[T]], *, operation: str) -> T:
        attempt = 1
        while True:
            try:
                return await call()
            except IntegrationError as exc:
                delay = self.delay_for(exc, attempt)
                if delay is None:
                    if exc.retryable:
                        logger.warning(
                            "%s failed after %d attempt(s), giving up: %s",
                            operation,
                            attempt,
                            exc.message,
                        )
                    raise
                logger.info(
                    "%s attempt %d failed (%s), retrying in %.2fs",
                    operation,
                    attempt,
                    exc.message,
                    delay,
                )
                note_retry(attempt, delay, exc.message)
                await self.sleep(delay)
                attempt += 1


__all__ = ["RetryPolicy", "Sleep", "error_for_status", "parse_retry_after"]
