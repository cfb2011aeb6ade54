"""Finding a refund or credit already made for an idempotency key, after the provider forgot it.

The real Stripe SDK adapter and the Zuora adapter talk HTTP to the local fakes, which
forget an Idempotency-Key after `idempotency_ttl` seconds as Stripe and Zuora do after a
day; the sandbox backends read the sandbox ledger on real PostgreSQL, where keys never
expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine

from models.domain import RefundResult
from services.errors import ConflictError, InvalidRequestError, NotFoundError
from services.integrations.stripe_gateway import StripeGateway, new_stripe_client
from services.integrations.zuora import ZuoraBilling
from services.sandbox.backends import SandboxBilling, SandboxPayments
from services.sandbox.ledger import SandboxLedger
from tests.fakes.vendor_servers import FakeStripe, FakeZuora, contract_dataset

DATASET = contract_dataset()
FRESH = "ch_Acme001"  # 49.99, nothing refunded
PARTLY = "ch_Acme002"  # 49.99, 10.00 refunded
ACME = "A00000001"
KEY_TTL = 0.3  # seconds; Stripe and Zuora keep a key for a day


async def outlive_the_key() -> None:
    await asyncio.sleep(KEY_TTL + 0.1)


@pytest.fixture
def stripe_server() -> Iterator[FakeStripe]:
    with FakeStripe(dataset=DATASET, idempotency_ttl=KEY_TTL) as server:
        yield server


@pytest.fixture
async def gateway(stripe_server: FakeStripe) -> AsyncIterator[StripeGateway]:
    http = stripe.HTTPXClient(timeout=5.0)
    yield StripeGateway(
        client=new_stripe_client(
            secret_key=stripe_server.token, api_base=stripe_server.url, http_client=http
        )
    )
    await http.close_async()  # type: ignore[no-untyped-call]


@pytest.fixture
def zuora() -> Iterator[FakeZuora]:
    with FakeZuora(dataset=DATASET, idempotency_ttl=KEY_TTL) as server:
        yield server


@pytest.fixture
async def billing(zuora: FakeZuora) -> AsyncIterator[ZuoraBilling]:
    async with httpx.AsyncClient() as http:
        yield ZuoraBilling(http_client=http, base_url=zuora.url, access_token=zuora.token)


async def refund(
    gateway: StripeGateway, amount: str, key: str, charge_id: str = FRESH
) -> RefundResult:
    return await gateway.refund(
        charge_id=charge_id,
        amount=Decimal(amount),
        currency="usd",
        reason="duplicate charge",
        idempotency_key=key,
    )


# Stripe


async def test_find_refund_finds_it_after_the_key_expired(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    made = await refund(gateway, "12.00", "run-1:refund")
    await outlive_the_key()

    found = await gateway.find_refund(charge_id=FRESH, idempotency_key="run-1:refund")

    assert found == made
    assert await gateway.find_refund(charge_id=FRESH, idempotency_key="run-2:refund") is None
    assert await gateway.find_refund(charge_id=PARTLY, idempotency_key="run-1:refund") is None
    listed = stripe_server.requests_to("/v1/refunds", "GET")
    assert listed[0].params == {"charge": [FRESH], "limit": ["100"]}


async def test_refund_again_after_the_key_expired_pays_twice(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    # The danger find_refund exists for: the fake is as forgetful as Stripe.
    first = await refund(gateway, "12.00", "run-1:refund")
    replayed = await refund(gateway, "12.00", "run-1:refund")
    assert replayed.refund_id == first.refund_id
    await outlive_the_key()

    second = await refund(gateway, "12.00", "run-1:refund")

    assert second.refund_id != first.refund_id
    assert len(stripe_server.refunds) == 2
    assert stripe_server.charges[FRESH]["amount_refunded"] == 2400
    charge = await gateway.get_charge(charge_id=FRESH)
    assert charge.refundable == Decimal("25.99")


async def test_find_refund_reads_every_page(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    keys = [f"run-{n}:refund" for n in range(103)]
    for key in keys:
        await refund(gateway, "0.01", key)

    oldest = await gateway.find_refund(charge_id=FRESH, idempotency_key=keys[0])

    assert oldest is not None and oldest.amount == Decimal("0.01")
    pages = stripe_server.requests_to("/v1/refunds", "GET")
    assert len(pages) == 2
    assert pages[1].param("starting_after") is not None
    assert pages[1].param("charge") == FRESH


async def test_pending_refund_that_fails_gives_the_amount_back(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.make_refunds_pending(count=1)

    made = await refund(gateway, "20.00", "run-1:refund")

    assert (made.status, made.failure_reason) == ("pending", None)
    assert (await gateway.get_charge(charge_id=FRESH)).refundable == Decimal("29.99")
    assert (await gateway.get_refund(refund_id=made.refund_id)).status == "pending"

    stripe_server.settle_refund(made.refund_id, "failed", failure_reason="expired_or_canceled_card")

    settled = await gateway.get_refund(refund_id=made.refund_id)
    assert (settled.status, settled.failure_reason) == ("failed", "expired_or_canceled_card")
    assert (settled.charge_id, settled.idempotency_key) == (FRESH, "run-1:refund")
    assert (await gateway.get_charge(charge_id=FRESH)).refundable == Decimal("49.99")
    found = await gateway.find_refund(charge_id=FRESH, idempotency_key="run-1:refund")
    assert found is not None and found.status == "failed"


async def test_pending_refund_that_succeeds_stays_refunded(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.make_refunds_pending(charge_id=FRESH)
    made = await refund(gateway, "20.00", "run-1:refund")

    stripe_server.settle_refund(made.refund_id, "succeeded")

    settled = await gateway.get_refund(refund_id=made.refund_id)
    assert (settled.status, settled.failure_reason) == ("succeeded", None)
    assert (await gateway.get_charge(charge_id=FRESH)).refundable == Decimal("29.99")


async def test_find_refund_prefers_the_refund_that_moved_money(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.make_refunds_pending(count=1)
    failed = await refund(gateway, "20.00", "run-1:refund")
    stripe_server.settle_refund(failed.refund_id, "failed")
    await outlive_the_key()
    paid = await refund(gateway, "20.00", "run-1:refund")

    found = await gateway.find_refund(charge_id=FRESH, idempotency_key="run-1:refund")

    assert found is not None and found.refund_id == paid.refund_id
    assert found.status == "succeeded"


async def test_refunds_shrink_what_is_refundable(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    with pytest.raises(InvalidRequestError, match=r"greater than charge amount \(\$49\.99\)"):
        await refund(gateway, "50.00", "run-1:refund")

    await refund(gateway, "20.00", "run-2:refund")
    assert (await gateway.get_charge(charge_id=FRESH)).refundable == Decimal("29.99")
    with pytest.raises(
        InvalidRequestError, match=r"greater than unrefunded amount on charge \(\$29\.99\)"
    ):
        await refund(gateway, "30.00", "run-3:refund")

    await refund(gateway, "29.99", "run-4:refund")
    charge = await gateway.get_charge(charge_id=FRESH)
    assert (charge.refundable, charge.refunded) == (Decimal("0"), True)
    with pytest.raises(ConflictError, match="already been refunded"):
        await refund(gateway, "0.01", "run-5:refund")
    assert len(stripe_server.refunds) == 2


async def test_same_key_other_amount_within_the_ttl_is_a_conflict(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    await refund(gateway, "5.00", "run-1:refund")

    with pytest.raises(ConflictError):
        await refund(gateway, "6.00", "run-1:refund")
    assert len(stripe_server.refunds) == 1


async def test_get_refund_of_an_unknown_id_is_not_found(gateway: StripeGateway) -> None:
    with pytest.raises(NotFoundError, match="No such refund"):
        await gateway.get_refund(refund_id="re_missing")


# Zuora


async def test_find_credit_finds_the_memo_after_the_key_expired(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    made = await billing.create_credit(
        account_key=ACME,
        amount=Decimal("15.00"),
        currency="usd",
        reason="Outage credit",
        idempotency_key="run-1:credit",
    )
    await outlive_the_key()

    found = await billing.find_credit(account_key=ACME, idempotency_key="run-1:credit")

    assert found == made
    assert await billing.find_credit(account_key=ACME, idempotency_key="run-1") is None
    assert (
        await billing.find_credit(account_key="A00000002", idempotency_key="run-1:credit") is None
    )
    assert zuora.credit_memos[0]["comment"] == "[idempotency-key:run-1:credit] Outage credit"
    listed = zuora.requests_to("/v1/creditmemos", "GET")[0]
    assert listed.params == {"accountNumber": [ACME], "pageSize": ["40"]}


async def test_credit_again_after_the_key_expired_credits_twice(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    async def credit() -> str:
        result = await billing.create_credit(
            account_key=ACME,
            amount=Decimal("15.00"),
            currency="usd",
            reason="Outage credit",
            idempotency_key="run-1:credit",
        )
        return result.credit_id

    first = await credit()
    assert await credit() == first
    await outlive_the_key()

    assert await credit() != first
    assert len(zuora.credit_memos) == 2


async def test_find_credit_follows_next_page_and_the_account_id(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    zuora.page_size = 2
    account_id = zuora.accounts[ACME]["id"]
    for n in range(5):
        await billing.create_credit(
            account_key=ACME,
            amount=Decimal("1.00"),
            currency="usd",
            reason="r",
            idempotency_key=f"run-{n}:credit",
        )

    found = await billing.find_credit(account_key=account_id, idempotency_key="run-0:credit")

    assert found is not None and found.credit_id == "CM00000001"
    pages = zuora.requests_to("/v1/creditmemos", "GET")
    assert len(pages) == 3
    assert all(p.param("accountId") == account_id for p in pages)


async def test_a_key_that_cannot_head_a_comment_never_reaches_zuora(
    billing: ZuoraBilling, zuora: FakeZuora
) -> None:
    with pytest.raises(InvalidRequestError):
        await billing.create_credit(
            account_key=ACME,
            amount=Decimal("1.00"),
            currency="usd",
            reason="r",
            idempotency_key="run 1] credit",
        )
    with pytest.raises(InvalidRequestError):
        await billing.find_credit(account_key=ACME, idempotency_key="")
    assert zuora.requests == []


# The sandbox: keys never expire


async def test_sandbox_finds_refunds_and_credits_by_key(engine: AsyncEngine) -> None:
    ledger = SandboxLedger(engine)
    payments = SandboxPayments(dataset=DATASET, ledger=ledger)
    credits = SandboxBilling(dataset=DATASET, ledger=ledger)

    made = await payments.refund(
        charge_id=FRESH,
        amount=Decimal("20.00"),
        currency="usd",
        reason="r",
        idempotency_key="run-1:refund",
    )
    credited = await credits.create_credit(
        account_key=ACME,
        amount=Decimal("5.00"),
        currency="usd",
        reason="r",
        idempotency_key="run-2:credit",
    )

    assert await payments.find_refund(charge_id=FRESH, idempotency_key="run-1:refund") == made
    assert await payments.get_refund(refund_id=made.refund_id) == made
    assert await payments.find_refund(charge_id=PARTLY, idempotency_key="run-1:refund") is None
    assert await payments.find_refund(charge_id=FRESH, idempotency_key="run-2:credit") is None
    assert await credits.find_credit(account_key=ACME, idempotency_key="run-2:credit") == credited
    assert await credits.find_credit(account_key=ACME, idempotency_key="run-1:refund") is None
    again = await payments.refund(
        charge_id=FRESH,
        amount=Decimal("20.00"),
        currency="usd",
        reason="r",
        idempotency_key="run-1:refund",
    )
    assert again == made
    assert (await payments.get_charge(charge_id=FRESH)).refundable == Decimal("29.99")
    with pytest.raises(NotFoundError):
        await payments.get_refund(refund_id="re_missing")
    with pytest.raises(NotFoundError):
        await payments.get_refund(refund_id=f"re_sandbox_{int(credited.credit_id[3:]):08d}")
