"""StripeGateway (the real `stripe` SDK) against a local server speaking Stripe's API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest
import stripe

from models.domain import RefundResult
from services.errors import (
    AuthenticationError,
    ConflictError,
    IntegrationError,
    InvalidRequestError,
    NotFoundError,
)
from services.integrations.stripe_gateway import StripeGateway, new_stripe_client
from services.retry import RetryPolicy
from tests.fakes.vendor_servers import FakeStripe, contract_dataset

DATASET = contract_dataset()
CUSTOMER = "cus_Acme001"
CHARGE = "ch_Acme002"  # 49.99 charged, 10.00 already refunded


@pytest.fixture
def stripe_server() -> Iterator[FakeStripe]:
    with FakeStripe(dataset=DATASET) as server:
        yield server


@pytest.fixture
async def stripe_http() -> AsyncIterator[stripe.HTTPXClient]:
    client = stripe.HTTPXClient(timeout=2.0)
    yield client
    await client.close_async()


def gateway_for(
    server: FakeStripe, http: stripe.HTTPClient, *, key: str | None = None
) -> StripeGateway:
    return StripeGateway(
        client=new_stripe_client(
            secret_key=key or server.token, api_base=server.url, http_client=http
        )
    )


@pytest.fixture
def gateway(stripe_server: FakeStripe, stripe_http: stripe.HTTPXClient) -> StripeGateway:
    return gateway_for(stripe_server, stripe_http)


async def test_list_charges_asks_for_the_customer_newest_first(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    charges = await gateway.list_charges(customer_id=CUSTOMER, limit=5)

    assert [c.charge_id for c in charges] == ["ch_Acme001", "ch_Acme002", "ch_Acme003"]
    assert charges == [DATASET.charges[c.charge_id] for c in charges]
    (request,) = stripe_server.requests
    assert (request.method, request.path) == ("GET", "/v1/charges")
    assert request.params == {"customer": [CUSTOMER], "limit": ["5"]}
    assert request.header("Authorization") == f"Bearer {stripe_server.token}"


async def test_limit_is_passed_through(gateway: StripeGateway, stripe_server: FakeStripe) -> None:
    charges = await gateway.list_charges(customer_id=CUSTOMER, limit=1)

    assert [c.charge_id for c in charges] == ["ch_Acme001"]
    assert stripe_server.requests[0].param("limit") == "1"


async def test_get_charge_reads_refunds_and_radar_outcome(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    charge = await gateway.get_charge(charge_id=CHARGE)

    assert charge == DATASET.charges[CHARGE]
    assert (charge.amount, charge.amount_refunded, charge.refundable) == (
        Decimal("49.99"),
        Decimal("10.00"),
        Decimal("39.99"),
    )
    assert (charge.risk_level, charge.risk_score) == ("elevated", 67)
    assert stripe_server.requests[0].path == f"/v1/charges/{CHARGE}"


async def test_not_assessed_risk_is_unknown(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.charges[CHARGE]["outcome"] = {"risk_level": "not_assessed", "type": "authorized"}

    charge = await gateway.get_charge(charge_id=CHARGE)

    assert (charge.risk_level, charge.risk_score) == ("unknown", None)


async def test_refund_sends_cents_and_the_idempotency_key(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    result = await gateway.refund(
        charge_id=CHARGE,
        amount=Decimal("45.5") - Decimal("20.00"),
        currency="usd",
        reason="Duplicate charge confirmed",
        idempotency_key="run-1:refund",
    )

    (request,) = stripe_server.requests
    assert (request.method, request.path) == ("POST", "/v1/refunds")
    assert request.header("Idempotency-Key") == "run-1:refund"
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert request.form() == {
        "charge": CHARGE,
        "amount": "2550",
        "reason": "requested_by_customer",
        "metadata[resolution_reason]": "Duplicate charge confirmed",
        "metadata[idempotency_key]": "run-1:refund",
    }
    assert result.refund_id in stripe_server.refunds
    assert (result.charge_id, result.amount, result.currency, result.status) == (
        CHARGE,
        Decimal("25.50"),
        "usd",
        "succeeded",
    )
    assert stripe_server.charges[CHARGE]["amount_refunded"] == 1000 + 2550


async def test_replayed_refund_returns_the_same_refund_and_refunds_once(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    async def refund() -> str:
        result = await gateway.refund(
            charge_id=CHARGE,
            amount=Decimal("39.99"),
            currency="usd",
            reason="full",
            idempotency_key="run-2:refund",
        )
        return result.refund_id

    first, second = await refund(), await refund()

    assert first == second
    assert list(stripe_server.refunds) == [first]
    assert stripe_server.charges[CHARGE]["refunded"] is True
    assert [r.header("Idempotency-Key") for r in stripe_server.requests] == ["run-2:refund"] * 2


async def test_lost_response_is_retried_with_the_same_key_and_refunds_once(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.drop_response(path="/v1/refunds")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(max_attempts=3, sleep=sleep)
    result = await policy(
        lambda: gateway.refund(
            charge_id=CHARGE,
            amount=Decimal("5.00"),
            currency="usd",
            reason="r",
            idempotency_key="run-3:refund",
        ),
        operation="payments.refund",
    )

    assert list(stripe_server.refunds) == [result.refund_id]
    keys = [r.header("Idempotency-Key") for r in stripe_server.requests_to("/v1/refunds")]
    assert keys == ["run-3:refund", "run-3:refund"]
    assert len(slept) == 1


async def test_caller_killed_after_stripe_refunded_rerun_replays_the_refund(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.drop_response(path="/v1/refunds", hold=30)

    async def refund() -> RefundResult:
        return await gateway.refund(
            charge_id=CHARGE,
            amount=Decimal("39.99"),
            currency="usd",
            reason="r",
            idempotency_key="run-4:refund",
        )

    first_attempt = asyncio.create_task(refund())
    await asyncio.to_thread(stripe_server.wait_for, "/v1/refunds", method="POST")
    assert len(stripe_server.refunds) == 1  # the money moved, the caller never heard
    first_attempt.cancel()  # the worker dies here
    with contextlib.suppress(asyncio.CancelledError):
        await first_attempt

    rerun = await refund()

    assert list(stripe_server.refunds) == [rerun.refund_id]
    assert stripe_server.charges[CHARGE]["amount_refunded"] == 4999


async def test_same_key_for_a_different_amount_is_a_conflict(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    await gateway.refund(
        charge_id=CHARGE, amount=Decimal("5"), currency="usd", reason="r", idempotency_key="k"
    )

    with pytest.raises(ConflictError):
        await gateway.refund(
            charge_id=CHARGE, amount=Decimal("6"), currency="usd", reason="r", idempotency_key="k"
        )
    assert len(stripe_server.refunds) == 1


async def test_refund_above_what_is_refundable_is_refused_by_stripe(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    with pytest.raises(InvalidRequestError, match="greater than unrefunded"):
        await gateway.refund(
            charge_id=CHARGE,
            amount=Decimal("40.00"),
            currency="usd",
            reason="r",
            idempotency_key="k",
        )
    assert stripe_server.refunds == {}


async def test_refund_of_a_refunded_charge_is_a_conflict(gateway: StripeGateway) -> None:
    with pytest.raises(ConflictError, match="already been refunded"):
        await gateway.refund(
            charge_id="ch_Acme003",
            amount=Decimal("1"),
            currency="usd",
            reason="r",
            idempotency_key="k",
        )


async def test_zero_and_zero_decimal_currency_refunds_never_reach_stripe(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    with pytest.raises(InvalidRequestError):
        await gateway.refund(
            charge_id=CHARGE,
            amount=Decimal("0.001"),
            currency="usd",
            reason="r",
            idempotency_key="k",
        )
    with pytest.raises(InvalidRequestError):
        await gateway.refund(
            charge_id=CHARGE,
            amount=Decimal("500"),
            currency="jpy",
            reason="r",
            idempotency_key="k",
        )
    assert stripe_server.requests == []


async def test_unauthorized_is_an_authentication_error_without_the_key(
    stripe_server: FakeStripe, stripe_http: stripe.HTTPXClient
) -> None:
    gateway = gateway_for(stripe_server, stripe_http, key="sk_test_wrongkey9876")

    with pytest.raises(AuthenticationError) as caught:
        await gateway.get_charge(charge_id=CHARGE)

    assert not caught.value.retryable
    assert "9876" not in str(caught.value) and "sk_test" not in str(caught.value)


async def test_unknown_charge_is_not_found(gateway: StripeGateway) -> None:
    with pytest.raises(NotFoundError, match="No such charge: 'ch_missing'"):
        await gateway.get_charge(charge_id="ch_missing")


async def test_refund_of_an_unknown_charge_is_not_found(gateway: StripeGateway) -> None:
    with pytest.raises(NotFoundError):
        await gateway.refund(
            charge_id="ch_missing",
            amount=Decimal("1"),
            currency="usd",
            reason="r",
            idempotency_key="k",
        )


async def test_rate_limit_is_retryable_with_retry_after(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.fail(429, headers={"Retry-After": "4"})

    with pytest.raises(IntegrationError) as caught:
        await gateway.list_charges(customer_id=CUSTOMER, limit=5)

    assert caught.value.retryable
    assert (caught.value.retry_after, caught.value.status) == (4.0, 429)


async def test_server_error_is_retryable(gateway: StripeGateway, stripe_server: FakeStripe) -> None:
    stripe_server.fail(500, path="/v1/refunds")

    with pytest.raises(IntegrationError) as caught:
        await gateway.refund(
            charge_id=CHARGE, amount=Decimal("1"), currency="usd", reason="r", idempotency_key="k"
        )
    assert caught.value.retryable and caught.value.status == 500
    assert stripe_server.refunds == {}


async def test_server_error_stripe_says_not_to_retry_is_final(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.fail(500, headers={"Stripe-Should-Retry": "false"})

    with pytest.raises(IntegrationError) as caught:
        await gateway.get_charge(charge_id=CHARGE)
    assert not caught.value.retryable


async def test_timeout_is_retryable(stripe_server: FakeStripe) -> None:
    http = stripe.HTTPXClient(timeout=0.2)
    gateway = gateway_for(stripe_server, http)
    stripe_server.stall(2.0)
    try:
        with pytest.raises(IntegrationError, match="network error or timeout") as caught:
            await gateway.get_charge(charge_id=CHARGE)
    finally:
        await http.close_async()
    assert caught.value.retryable
    assert len(stripe_server.requests) == 1  # the SDK's own retries are off


async def test_retry_policy_honours_retry_after_then_succeeds(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.fail(429, headers={"Retry-After": "2"}, path="/v1/charges")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(max_attempts=2, base_delay=0.1, sleep=sleep)
    charge = await policy(lambda: gateway.get_charge(charge_id=CHARGE), operation="charge")

    assert charge.charge_id == CHARGE
    assert len(slept) == 1 and slept[0] >= 2.0
