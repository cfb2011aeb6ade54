"""ZuoraBilling against a local server speaking Zuora REST: exact requests, errors, money."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from models.domain import ResolutionAction
from services.drafting.assessment import assess
from services.drafting.context import DraftingContext
from services.drafting.rules_drafter import RulesDrafter
from services.errors import (
    AuthenticationError,
    ConflictError,
    IntegrationError,
    InvalidRequestError,
    NotFoundError,
)
from services.integrations.zuora import UNKNOWN_START, ZuoraBilling, dumps_json
from services.retry import RetryPolicy
from tests.fakes.vendor_servers import FakeZuora, contract_dataset

DATASET = contract_dataset()
ACME = "A00000001"
FINCH = "A00000002"


@pytest.fixture
def zuora() -> Iterator[FakeZuora]:
    with FakeZuora(dataset=DATASET) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def billing(zuora: FakeZuora, http: httpx.AsyncClient) -> ZuoraBilling:
    return ZuoraBilling(
        http_client=http,
        base_url=zuora.url,
        access_token=zuora.token,
        timeout=2.0,
        credit_charge_id="8a80000000000000000000000000c0de",
    )


async def test_get_billing_reads_summary_and_subscriptions(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    data = await billing.get_billing(account_key=ACME)

    assert data == DATASET.billing[ACME]
    summary, subscriptions = zuora.requests
    assert (summary.method, summary.path, summary.query) == (
        "GET",
        f"/v1/accounts/{ACME}/summary",
        "",
    )
    assert (subscriptions.path, subscriptions.query) == (
        f"/v1/subscriptions/accounts/{ACME}",
        "pageSize=40",
    )
    assert all(r.header("Authorization") == f"Bearer {zuora.token}" for r in zuora.requests)


async def test_amounts_are_exact_decimals_from_the_json(billing: ZuoraBilling) -> None:
    data = await billing.get_billing(account_key=ACME)

    assert str(data.balance) == "123.45"
    assert [str(s.amount) for s in data.subscriptions] == ["49.99", "0.30", "499.00"]
    legacy = data.subscriptions[2]
    assert (legacy.status, legacy.billing_period) == ("Cancelled", "year")
    assert (
        legacy.cancellation_requested_at
        == DATASET.billing[ACME].subscriptions[2].cancellation_requested_at
    )


async def test_subscriptions_follow_next_page(http: httpx.AsyncClient) -> None:
    with FakeZuora(dataset=DATASET, page_size=1) as server:
        billing = ZuoraBilling(http_client=http, base_url=server.url, access_token=server.token)
        data = await billing.get_billing(account_key=ACME)

    assert [s.subscription_id for s in data.subscriptions] == [
        "A-S00000101",
        "A-S00000102",
        "A-S00000103",
    ]
    pages = server.requests_to(f"/v1/subscriptions/accounts/{ACME}")
    assert [p.query for p in pages] == ["pageSize=40", "page=2&pageSize=1", "page=3&pageSize=1"]


async def test_a_subscription_with_only_term_dates_is_read_and_noted(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    zuora.only_term_dates("A-S00000101")

    data = await billing.get_billing(account_key=ACME)

    expected = DATASET.billing[ACME]
    assert data.subscriptions == expected.subscriptions  # the term start is the start here
    started = expected.subscriptions[0].start_date.date()
    assert data.data_quality == [
        "subscription A-S00000101: no subscriptionStartDate or contractEffectiveDate; "
        f"start taken from termStartDate ({started})"
    ]
    # The knob is real: the listing carries the term date only.
    [raw, *_] = (await zuora_listing(zuora, ACME))["subscriptions"]
    assert "subscriptionStartDate" not in raw and "contractEffectiveDate" not in raw


async def test_a_subscription_without_any_date_is_defaulted_and_the_draft_goes_on(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    zuora.only_term_dates("A-S00000201", term_start=False)

    data = await billing.get_billing(account_key=FINCH)

    [subscription] = data.subscriptions
    assert subscription.start_date == UNKNOWN_START
    assert subscription.cancellation_requested_at == (
        DATASET.billing[FINCH].subscriptions[0].cancellation_requested_at
    )
    note = "subscription A-S00000201: no start date; taken as started before any charge"
    assert data.data_quality == [note]
    # The decision does not need the date: Finch's cancellation case is drafted as before,
    # and the reviewer is told what was assumed.
    case = DATASET.cases["500A00000000005AAA"]
    charge = DATASET.charges["ch_Finch001"]
    context = DraftingContext(
        run_id="run-1",
        case=case,
        segment="standard",
        account_type="Customer",
        disputes_last_90d=1,
        billing=data,
        disputed_charge=charge,
        recent_charges=[charge],
        refundable=charge.refundable,
        policies=[],
        precedents=[],
    )
    proposal = RulesDrafter().propose(context, assess(context))
    assert (proposal.action, proposal.amount) == (ResolutionAction.FULL_REFUND, Decimal("29.00"))
    assert f"billing data: {note}" in proposal.supporting_factors


async def zuora_listing(zuora: FakeZuora, key: str) -> dict[str, Any]:
    """The subscriptions page exactly as the fake served it."""
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{zuora.url}/v1/subscriptions/accounts/{key}",
            headers={"Authorization": f"Bearer {zuora.token}"},
        )
    body: dict[str, Any] = response.json()
    return body


async def test_next_page_on_another_host_is_refused(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    zuora.fail(
        200,
        body={"subscriptions": [], "nextPage": "https://attacker.example/v1/x", "success": True},
        path="/v1/subscriptions",
    )

    with pytest.raises(IntegrationError, match="outside the tenant"):
        await billing.get_billing(account_key=ACME)


async def test_unknown_account_success_false_is_not_found(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    with pytest.raises(NotFoundError, match="Cannot find entity by key: 'A99999999'"):
        await billing.get_billing(account_key="A99999999")
    assert len(zuora.requests) == 1


async def test_success_false_carries_the_reasons(billing: ZuoraBilling, zuora: FakeZuora) -> None:
    zuora.fail(
        200,
        body={
            "success": False,
            "reasons": [{"code": 53100320, "message": "Account is in Canceled status."}],
        },
    )

    with pytest.raises(IntegrationError, match="53100320: Account is in Canceled status") as caught:
        await billing.get_billing(account_key=ACME)
    assert not caught.value.retryable


async def test_success_false_with_a_temporary_category_is_retryable(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    zuora.fail(
        200, body={"success": False, "reasons": [{"code": 50000050, "message": "lock contention"}]}
    )

    with pytest.raises(IntegrationError) as caught:
        await billing.get_billing(account_key=ACME)
    assert caught.value.retryable


async def test_create_credit_posts_a_credit_memo_with_idempotency_key(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    result = await billing.create_credit(
        account_key=ACME,
        amount=Decimal("12.5"),
        currency="usd",
        reason="Outage credit, 6.5 hours",
        idempotency_key="run-7:credit",
    )

    (request,) = zuora.requests
    assert (request.method, request.path) == ("POST", "/v1/creditmemos")
    assert request.header("Idempotency-Key") == "run-7:credit"
    assert request.header("Content-Type") == "application/json"
    assert request.header("Authorization") == f"Bearer {zuora.token}"
    assert b'"amount":12.50' in request.body  # an exact JSON number, two decimals
    assert request.json() == {
        "accountNumber": ACME,
        "autoPost": True,
        "comment": "[idempotency-key:run-7:credit] Outage credit, 6.5 hours",
        "charges": [
            {
                "amount": Decimal("12.50"),
                "comment": "Outage credit, 6.5 hours",
                "productRatePlanChargeId": "8a80000000000000000000000000c0de",
            }
        ],
    }
    assert result.credit_id == "CM00000001"
    assert (result.amount, result.currency, result.account_key) == (Decimal("12.50"), "usd", ACME)
    assert result.idempotency_key == "run-7:credit"


async def test_zuora_ids_are_sent_as_account_id(billing: ZuoraBilling, zuora: FakeZuora) -> None:
    account_id = zuora.accounts[ACME]["id"]

    await billing.create_credit(
        account_key=account_id, amount=Decimal("1"), currency="usd", reason="r", idempotency_key="k"
    )

    assert zuora.requests[0].json()["accountId"] == account_id


async def test_replayed_credit_returns_the_same_memo_and_credits_once(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    kwargs = {
        "account_key": ACME,
        "amount": Decimal("20.00"),
        "currency": "usd",
        "reason": "goodwill",
        "idempotency_key": "run-8:credit",
    }
    first = await billing.create_credit(**kwargs)  # type: ignore[arg-type]
    second = await billing.create_credit(**kwargs)  # type: ignore[arg-type]

    assert first == second
    assert len(zuora.credit_memos) == 1
    assert [r.header("Idempotency-Key") for r in zuora.requests] == ["run-8:credit"] * 2


async def test_same_key_for_a_different_credit_is_a_conflict(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    await billing.create_credit(
        account_key=ACME, amount=Decimal("5"), currency="usd", reason="r", idempotency_key="k9"
    )

    with pytest.raises(ConflictError):
        await billing.create_credit(
            account_key=ACME, amount=Decimal("6"), currency="usd", reason="r", idempotency_key="k9"
        )
    assert len(zuora.credit_memos) == 1


async def test_non_positive_credit_never_reaches_zuora(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    with pytest.raises(InvalidRequestError):
        await billing.create_credit(
            account_key=ACME,
            amount=Decimal("0.004"),
            currency="usd",
            reason="r",
            idempotency_key="k",
        )
    assert zuora.requests == []


async def test_unauthorized_is_an_authentication_error_without_the_token(
    zuora: FakeZuora, http: httpx.AsyncClient
) -> None:
    billing = ZuoraBilling(http_client=http, base_url=zuora.url, access_token="stale-oauth-token")

    with pytest.raises(AuthenticationError) as caught:
        await billing.get_billing(account_key=ACME)
    assert "stale-oauth-token" not in str(caught.value)


async def test_http_404_is_not_found(billing: ZuoraBilling, zuora: FakeZuora) -> None:
    zuora.fail(404)

    with pytest.raises(NotFoundError):
        await billing.get_billing(account_key=ACME)


async def test_rate_limit_is_retryable_with_retry_after(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    zuora.fail(429, headers={"Retry-After": "12"})

    with pytest.raises(IntegrationError) as caught:
        await billing.get_billing(account_key=ACME)
    assert caught.value.retryable and caught.value.retry_after == 12.0


async def test_server_error_is_retryable(billing: ZuoraBilling, zuora: FakeZuora) -> None:
    zuora.fail(500, path="/v1/creditmemos")

    with pytest.raises(IntegrationError) as caught:
        await billing.create_credit(
            account_key=ACME, amount=Decimal("3"), currency="usd", reason="r", idempotency_key="k"
        )
    assert caught.value.retryable and caught.value.status == 500
    assert zuora.credit_memos == []


async def test_timeout_is_retryable(zuora: FakeZuora, http: httpx.AsyncClient) -> None:
    billing = ZuoraBilling(
        http_client=http, base_url=zuora.url, access_token=zuora.token, timeout=0.2
    )
    zuora.stall(2.0)

    with pytest.raises(IntegrationError, match="timed out") as caught:
        await billing.get_billing(account_key=ACME)
    assert caught.value.retryable


async def test_lost_response_then_retry_credits_once(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    zuora.drop_response(path="/v1/creditmemos")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(max_attempts=3, sleep=sleep)
    result = await policy(
        lambda: billing.create_credit(
            account_key=ACME,
            amount=Decimal("9.99"),
            currency="usd",
            reason="r",
            idempotency_key="run-9:credit",
        ),
        operation="billing.credit",
    )

    assert len(zuora.credit_memos) == 1
    assert result.credit_id == zuora.credit_memos[0]["number"]
    assert len(zuora.requests) == 2 and len(slept) == 1


def test_dumps_json_refuses_floats() -> None:
    assert dumps_json({"a": [Decimal("1.10"), 2, "x", None, True]}) == (
        b'{"a":[1.10,2,"x",null,true]}'
    )
    with pytest.raises(TypeError):
        dumps_json({"amount": 1.1})
