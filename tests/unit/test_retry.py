"""RetryPolicy: what is retried, how long it waits, and when it gives up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.errors import (
    AuthenticationError,
    IntegrationError,
    NotFoundError,
)
from services.retry import RetryPolicy, error_for_status, parse_retry_after


class Flaky:
    """A call that fails with the given errors, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def outage(retry_after: float | None = None) -> IntegrationError:
    return IntegrationError(
        "HTTP 503", system="crm", retryable=True, retry_after=retry_after, status=503
    )


def policy(sleeps: Sleeps, *, jitter: float = 0.0, **overrides: float) -> RetryPolicy:
    options: dict[str, float] = {"max_attempts": 4, "base_delay": 1.0, "max_delay": 8.0}
    options.update(overrides)
    return RetryPolicy(
        max_attempts=int(options["max_attempts"]),
        base_delay=options["base_delay"],
        max_delay=options["max_delay"],
        max_retry_after=options.get("max_retry_after", 60.0),
        sleep=sleeps,
        random_fraction=lambda: jitter,
    )


async def test_retryable_failures_are_retried_until_success() -> None:
    sleeps, call = Sleeps(), Flaky(outage(), outage())

    assert await policy(sleeps)(call, operation="crm.case") == "ok"

    assert call.calls == 3
    assert len(sleeps.delays) == 2


async def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    sleeps = Sleeps()
    errors = [outage() for _ in range(5)]
    call = Flaky(*errors)

    with pytest.raises(IntegrationError) as caught:
        await policy(sleeps, max_attempts=3)(call, operation="crm.case")

    assert call.calls == 3
    assert caught.value is errors[2]
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize(
    "error",
    [
        IntegrationError("HTTP 400", system="zuora", retryable=False, status=400),
        NotFoundError("case 500X not found"),
        AuthenticationError("stripe: credentials rejected"),
        ValueError("a bug, not an outage"),
    ],
)
async def test_non_retryable_failures_are_raised_at_once(error: Exception) -> None:
    sleeps, call = Sleeps(), Flaky(error)

    with pytest.raises(type(error)):
        await policy(sleeps)(call, operation="op")

    assert call.calls == 1
    assert sleeps.delays == []


async def test_backoff_doubles_up_to_the_cap_with_jitter_bounds() -> None:
    low, high = Sleeps(), Sleeps()

    for sleeps, jitter in ((low, 0.0), (high, 0.999)):
        with pytest.raises(IntegrationError):
            await policy(sleeps, jitter=jitter, max_attempts=6)(
                Flaky(*(outage() for _ in range(6))), operation="op"
            )

    # Steps 1, 2, 4, 8, 8 (capped); equal jitter waits between half a step and a step.
    assert low.delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert high.delays == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0], rel=1e-3)


async def test_jitter_spreads_delays() -> None:
    rp = RetryPolicy(base_delay=1.0, max_delay=8.0)

    delays = {rp.backoff(3) for _ in range(50)}

    assert len(delays) > 1
    assert all(2.0 <= d <= 4.0 for d in delays)


async def test_retry_after_is_honoured_as_a_minimum_wait() -> None:
    sleeps = Sleeps()

    await policy(sleeps)(Flaky(outage(retry_after=7.0), outage(retry_after=0.1)), operation="op")

    assert sleeps.delays[0] == 7.0
    assert sleeps.delays[1] == 1.0  # the backoff is longer than a short Retry-After


async def test_retry_after_beyond_the_limit_gives_up_at_once() -> None:
    sleeps, call = Sleeps(), Flaky(outage(retry_after=3600))

    with pytest.raises(IntegrationError) as caught:
        await policy(sleeps, max_retry_after=60)(call, operation="op")

    assert caught.value.retry_after == 3600
    assert call.calls == 1 and sleeps.delays == []


async def test_a_single_attempt_policy_does_not_retry() -> None:
    sleeps, call = Sleeps(), Flaky(outage())

    with pytest.raises(IntegrationError):
        await policy(sleeps, max_attempts=1)(call, operation="op")
    assert call.calls == 1


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=5, max_delay=1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Mon, 02 Jun 2025 12:00:30 GMT", 30.0),
        ("Mon, 02 Jun 2025 11:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)

    assert parse_retry_after(header, now=now) == seconds


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (404, NotFoundError, False),
        (408, IntegrationError, True),
        (429, IntegrationError, True),
        (500, IntegrationError, True),
        (503, IntegrationError, True),
        (400, IntegrationError, False),
        (409, IntegrationError, False),
    ],
)
def test_error_for_status(status: int, kind: type[Exception], retryable: bool) -> None:
    error = error_for_status(system="vendor", status=status, detail="d", retry_after=5)

    assert type(error) is kind
    assert error.retryable is retryable
    if status == 429:
        assert isinstance(error, IntegrationError) and error.retry_after == 5
