"""Chargebacks at the wire: webhook signatures, disputes, evidence files and submissions,
acceptance, early fraud warnings and refunds refused on a disputed charge, with the real
`stripe` SDK against the local Stripe stand-in; the CRM account found by Stripe customer
over SOQL; and the sandbox holding to the same contract."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine

from models.domain import Dispute
from services.errors import ConflictError, InvalidRequestError, NotFoundError
from services.integrations.evidence_files import render_evidence_pdf
from services.integrations.protocols import ChargeDisputedError
from services.integrations.salesforce import SalesforceCRM
from services.integrations.stripe_gateway import StripeGateway, new_stripe_client
from services.integrations.stripe_webhooks import (
    WebhookSignatureError,
    sign_payload,
    verify_webhook,
)
from services.sandbox.backends import SandboxCRM, SandboxPayments
from services.sandbox.data import build_dataset
from services.sandbox.ledger import SandboxLedger
from tests.fakes.vendor_servers import FakeSalesforce, FakeStripe, contract_dataset

DATASET = contract_dataset()
CHARGE = "ch_Acme001"  # 49.99, nothing refunded
OTHER_CHARGE = "ch_Finch001"
SECRET = "whsec_test_contract"
DUE = datetime(2031, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def stripe_server() -> Iterator[FakeStripe]:
    with FakeStripe(dataset=DATASET) as server:
        yield server


@pytest.fixture
async def stripe_http() -> AsyncIterator[stripe.HTTPXClient]:
    client = stripe.HTTPXClient(timeout=2.0)
    yield client
    await client.close_async()


@pytest.fixture
def gateway(stripe_server: FakeStripe, stripe_http: stripe.HTTPXClient) -> StripeGateway:
    return StripeGateway(
        client=new_stripe_client(
            secret_key=stripe_server.token, api_base=stripe_server.url, http_client=stripe_http
        )
    )


@pytest.fixture
def dispute(stripe_server: FakeStripe) -> dict[str, Any]:
    return stripe_server.add_dispute(
        CHARGE,
        reason="subscription_canceled",
        due_by=DUE,
        created=datetime(2031, 1, 2, 9, 0, tzinfo=UTC),
        dispute_id="du_contract001",
    )


def pdf() -> bytes:
    return render_evidence_pdf(
        "Cancellation policy", [("Section 2", "Cancel any time; the month paid stays.")]
    )


# Webhook signatures


def signed(event: Mapping[str, Any], *, secret: str = SECRET, age: int = 0) -> tuple[bytes, str]:
    body, headers = FakeStripe.signed_event(event, secret, timestamp=int(time.time()) - age)
    return body, headers["Stripe-Signature"]


def test_a_valid_signature_gives_the_event(
    stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    event = stripe_server.dispute_event("charge.dispute.created", dispute["id"])
    body, header = signed(event)

    verified = verify_webhook(body, header, SECRET)

    assert verified == event
    assert verified["id"].startswith("evt_") and verified["livemode"] is False
    assert verified["api_version"] == stripe.api_version
    assert verified["data"]["object"]["id"] == "du_contract001"
    assert verified["data"]["object"]["evidence_details"]["due_by"] == int(DUE.timestamp())
    # The SDK's own parser takes the same event: the stand-in shapes events as Stripe.
    constructed = stripe.Webhook.construct_event(body, header, SECRET)
    assert constructed.type == "charge.dispute.created"


def test_sign_payload_follows_stripes_scheme() -> None:
    body = b'{"id": "evt_1", "object": "event"}'
    now = int(time.time())

    assert sign_payload(body, SECRET, timestamp=now) == (
        stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, timestamp=now)
    )


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda body, header: (body, None), "missing"),
        (lambda body, header: (body, ""), "missing"),
        (lambda body, header: (body.replace(b"du_", b"du_X"), header), "invalid"),
        (lambda body, header: (body, header.replace("v1=", "v1=0")), "invalid"),
        (lambda body, header: (body, "t=12,v0=abc"), "invalid"),
        (lambda body, header: (body, "garbage"), "invalid"),
        (lambda body, header: (b"\xff" + body, header), "invalid"),
    ],
)
def test_a_missing_or_wrong_signature_is_refused(
    stripe_server: FakeStripe, dispute: dict[str, Any], mangle: Any, reason: str
) -> None:
    body, header = signed(stripe_server.dispute_event("charge.dispute.created", dispute["id"]))
    body, header = mangle(body, header)

    with pytest.raises(WebhookSignatureError) as refused:
        verify_webhook(body, header, SECRET)

    assert refused.value.reason == reason
    assert isinstance(refused.value, InvalidRequestError) and refused.value.status_code == 400
    assert "du_" not in refused.value.message  # the body is never echoed


def test_a_signature_with_another_secret_is_invalid(
    stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    body, header = signed(
        stripe_server.dispute_event("charge.dispute.created", dispute["id"]), secret="whsec_x"
    )

    with pytest.raises(WebhookSignatureError) as refused:
        verify_webhook(body, header, SECRET)

    assert refused.value.reason == "invalid"


def test_a_signature_older_than_300_seconds_is_stale(stripe_server: FakeStripe) -> None:
    warning = stripe_server.add_early_fraud_warning(CHARGE)
    event = stripe_server.early_fraud_warning_event(warning["id"])

    assert verify_webhook(*signed(event, age=290), SECRET)["id"] == event["id"]
    with pytest.raises(WebhookSignatureError) as refused:
        verify_webhook(*signed(event, age=301), SECRET)
    assert refused.value.reason == "stale"
    # A stale signature that is also wrong is invalid, not stale.
    body, header = signed(event, age=301, secret="whsec_x")
    with pytest.raises(WebhookSignatureError) as refused:
        verify_webhook(body, header, SECRET)
    assert refused.value.reason == "invalid"


def test_a_signed_body_that_is_no_event_is_malformed() -> None:
    for body in (b"not json", b"[1, 2]", json.dumps({"id": "evt_1"}).encode()):
        header = sign_payload(body, SECRET, timestamp=int(time.time()))
        with pytest.raises(WebhookSignatureError) as refused:
            verify_webhook(body, header, SECRET)
        assert refused.value.reason == "malformed"


def test_events_are_shaped_as_stripe_sends_them(
    stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    stripe_server.settle_dispute(dispute["id"], "won")
    closed = stripe_server.dispute_event("charge.dispute.closed", dispute["id"], event_id="evt_1")
    warning = stripe_server.add_early_fraud_warning(OTHER_CHARGE, fraud_type="made_with_lost_card")
    efw = stripe_server.early_fraud_warning_event(warning["id"])

    assert (closed["id"], closed["type"], closed["object"]) == (
        "evt_1",
        "charge.dispute.closed",
        "event",
    )
    assert closed["data"]["object"]["status"] == "won"
    assert closed["data"]["object"]["charge"] == CHARGE
    assert efw["type"] == "radar.early_fraud_warning.created"
    assert efw["data"]["object"] == {
        "id": warning["id"],
        "object": "radar.early_fraud_warning",
        "actionable": True,
        "charge": OTHER_CHARGE,
        "created": warning["created"],
        "fraud_type": "made_with_lost_card",
        "livemode": False,
        "payment_intent": None,
    }
    with pytest.raises(ValueError):
        stripe_server.dispute_event("charge.refunded", dispute["id"])


# Disputes


async def test_get_dispute_reads_the_deadline_and_the_state(
    gateway: StripeGateway, stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    got = await gateway.get_dispute(dispute_id="du_contract001")

    assert got == Dispute(
        dispute_id="du_contract001",
        charge_id=CHARGE,
        amount=Decimal("49.99"),
        currency="usd",
        reason="subscription_canceled",
        status="needs_response",
        evidence_due_by=DUE,
        is_charge_refundable=False,
        created_at=datetime(2031, 1, 2, 9, 0, tzinfo=UTC),
    )
    assert got.is_open and got.accepts_response
    (request,) = stripe_server.requests
    assert (request.method, request.path) == ("GET", "/v1/disputes/du_contract001")


async def test_an_unknown_dispute_is_not_found(gateway: StripeGateway) -> None:
    with pytest.raises(NotFoundError):
        await gateway.get_dispute(dispute_id="du_missing")


async def test_dispute_of_charge_is_the_newest_or_none(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    assert await gateway.dispute_of_charge(charge_id=CHARGE) is None
    assert stripe_server.charges[CHARGE]["disputed"] is False

    stripe_server.add_dispute(
        CHARGE, status="warning_closed", created=datetime(2031, 1, 1, tzinfo=UTC)
    )
    newest = stripe_server.add_dispute(CHARGE, created=datetime(2031, 1, 3, tzinfo=UTC))
    stripe_server.add_dispute(OTHER_CHARGE, created=datetime(2031, 1, 4, tzinfo=UTC))

    found = await gateway.dispute_of_charge(charge_id=CHARGE)

    assert found is not None and found.dispute_id == newest["id"]
    request = stripe_server.requests[-1]
    assert (request.method, request.path) == ("GET", "/v1/disputes")
    assert request.param("charge") == CHARGE
    assert stripe_server.charges[CHARGE]["disputed"] is True


async def test_evidence_is_submitted_form_encoded_with_submit_and_the_key(
    gateway: StripeGateway, stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    evidence = {
        "cancellation_rebuttal": "No cancellation request reached us before the renewal.",
        "service_date": "2031-01-01",
        "customer_email_address": "billing@acme.example",
    }

    answered = await gateway.submit_evidence(
        dispute_id="du_contract001", evidence=evidence, idempotency_key="run-7:evidence"
    )

    (request,) = stripe_server.requests_to("/v1/disputes/du_contract001", "POST")
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert request.header("Idempotency-Key") == "run-7:evidence"
    assert request.form() == {
        "evidence[cancellation_rebuttal]": evidence["cancellation_rebuttal"],
        "evidence[service_date]": "2031-01-01",
        "evidence[customer_email_address]": "billing@acme.example",
        "submit": "true",
    }
    assert (answered.status, answered.submission_count, answered.has_evidence) == (
        "under_review",
        1,
        True,
    )
    assert not answered.accepts_response and answered.is_open and not answered.past_due
    assert stripe_server.disputes["du_contract001"]["evidence"]["service_date"] == "2031-01-01"
    (submission,) = stripe_server.submitted("du_contract001")
    assert (submission.idempotency_key, submission.evidence, submission.submit) == (
        "run-7:evidence",
        evidence,
        True,
    )


async def test_a_repeated_key_submits_once(
    gateway: StripeGateway, stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    evidence = {"uncategorized_text": "Usage logs attached."}
    first = await gateway.submit_evidence(
        dispute_id="du_contract001", evidence=evidence, idempotency_key="run-7:evidence"
    )
    again = await gateway.submit_evidence(
        dispute_id="du_contract001", evidence=evidence, idempotency_key="run-7:evidence"
    )

    assert again == first and again.submission_count == 1
    assert len(stripe_server.submitted("du_contract001")) == 1
    assert [s.replayed for s in stripe_server.dispute_submissions] == [False, True]
    with pytest.raises(ConflictError):  # the same key for other evidence
        await gateway.submit_evidence(
            dispute_id="du_contract001",
            evidence={"uncategorized_text": "Something else."},
            idempotency_key="run-7:evidence",
        )
    with pytest.raises(InvalidRequestError, match="under_review"):  # a second submission
        await gateway.submit_evidence(
            dispute_id="du_contract001", evidence=evidence, idempotency_key="run-7:evidence:2"
        )
    assert len(stripe_server.submitted("du_contract001")) == 1


async def test_a_file_is_uploaded_then_named_in_a_file_field(
    gateway: StripeGateway, stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    content = pdf()

    file_id = await gateway.upload_evidence_file(
        filename="cancellation_policy.pdf", content=content, idempotency_key="run-7:file:1"
    )
    answered = await gateway.submit_evidence(
        dispute_id="du_contract001",
        evidence={"cancellation_policy": file_id, "cancellation_rebuttal": "See the policy."},
        idempotency_key="run-7:evidence",
    )

    assert file_id.startswith("file_")
    (upload,) = stripe_server.requests_to("/v1/files", "POST")
    assert (upload.header("Content-Type") or "").startswith("multipart/form-data; boundary=")
    assert upload.header("Idempotency-Key") == "run-7:file:1"
    assert stripe_server.files[file_id]["purpose"] == "dispute_evidence"
    assert stripe_server.files[file_id]["filename"] == "cancellation_policy.pdf"
    assert stripe_server.files[file_id]["type"] == "pdf"
    assert stripe_server.file_contents[file_id] == content
    assert answered.status == "under_review"
    assert stripe_server.disputes["du_contract001"]["evidence"]["cancellation_policy"] == file_id
    # A repeated key gives the same file, not a second one.
    again = await gateway.upload_evidence_file(
        filename="cancellation_policy.pdf", content=content, idempotency_key="run-7:file:1"
    )
    assert again == file_id and len(stripe_server.files) == 1


async def test_text_in_a_file_field_is_refused_naming_the_field(
    gateway: StripeGateway, stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRequestError, match=r"evidence\[receipt\]") as refused:
        await gateway.submit_evidence(
            dispute_id="du_contract001",
            evidence={"receipt": "Receipt #1042 was e-mailed on 2 January."},
            idempotency_key="run-7:evidence",
        )

    assert not refused.value.retryable
    (request,) = stripe_server.requests_to("/v1/disputes/du_contract001", "POST")
    assert request.form()["evidence[receipt]"].startswith("Receipt #1042")
    assert stripe_server.disputes["du_contract001"]["status"] == "needs_response"
    assert stripe_server.disputes["du_contract001"]["evidence"]["receipt"] is None
    assert stripe_server.submitted() == []


async def test_unknown_fields_and_files_of_other_kinds_are_refused(
    gateway: StripeGateway, stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRequestError, match=r"evidence\[customer_mood\]"):
        await gateway.submit_evidence(
            dispute_id="du_contract001",
            evidence={"customer_mood": "cheerful"},
            idempotency_key="k1",
        )
    with pytest.raises(InvalidRequestError, match="PDF, JPEG or PNG"):
        await gateway.upload_evidence_file(
            filename="notes.txt", content=b"plain text", idempotency_key="k2"
        )
    with pytest.raises(InvalidRequestError):
        await gateway.submit_evidence(
            dispute_id="du_contract001", evidence={}, idempotency_key="k3"
        )
    assert stripe_server.files == {} and stripe_server.submitted() == []


async def test_a_late_submission_is_taken_but_marked_past_due(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    late = stripe_server.add_dispute(CHARGE, due_by=datetime.now(UTC) - timedelta(hours=1))

    answered = await gateway.submit_evidence(
        dispute_id=late["id"], evidence={"uncategorized_text": "x"}, idempotency_key="k"
    )

    assert answered.past_due and answered.status == "under_review"


async def test_accepting_closes_the_dispute_as_lost_once(
    gateway: StripeGateway, stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    closed = await gateway.accept_dispute(
        dispute_id="du_contract001", idempotency_key="run-7:accept"
    )
    again = await gateway.accept_dispute(
        dispute_id="du_contract001", idempotency_key="run-7:accept"
    )

    assert closed.status == "lost" and not closed.is_open and again == closed
    requests = stripe_server.requests_to("/v1/disputes/du_contract001/close", "POST")
    assert [r.header("Idempotency-Key") for r in requests] == ["run-7:accept"] * 2
    with pytest.raises(InvalidRequestError, match="lost"):
        await gateway.accept_dispute(dispute_id="du_contract001", idempotency_key="other")
    with pytest.raises(InvalidRequestError, match="lost"):
        await gateway.submit_evidence(
            dispute_id="du_contract001", evidence={"uncategorized_text": "x"}, idempotency_key="k"
        )


async def test_an_inquiry_closes_as_warning_closed(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    inquiry = stripe_server.add_dispute(CHARGE, status="warning_needs_response")

    closed = await gateway.accept_dispute(dispute_id=inquiry["id"], idempotency_key="k")

    assert closed.status == "warning_closed" and closed.is_charge_refundable


# Early fraud warnings


async def test_an_early_fraud_warning_is_actionable_until_the_charge_is_disputed(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    created = stripe_server.add_early_fraud_warning(
        OTHER_CHARGE, created=datetime(2031, 1, 5, tzinfo=UTC), warning_id="issfr_contract1"
    )

    warning = await gateway.get_early_fraud_warning(warning_id="issfr_contract1")

    assert created["actionable"] is True
    assert (warning.warning_id, warning.charge_id, warning.actionable, warning.fraud_type) == (
        "issfr_contract1",
        OTHER_CHARGE,
        True,
        "unauthorized_use_of_card",
    )
    assert warning.created_at == datetime(2031, 1, 5, tzinfo=UTC)
    request = stripe_server.requests[-1]
    assert request.path == "/v1/radar/early_fraud_warnings/issfr_contract1"

    stripe_server.add_dispute(OTHER_CHARGE)
    assert not (await gateway.get_early_fraud_warning(warning_id="issfr_contract1")).actionable
    with pytest.raises(NotFoundError):
        await gateway.get_early_fraud_warning(warning_id="issfr_missing")


async def test_a_refunded_charge_has_no_actionable_warning(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.add_early_fraud_warning(OTHER_CHARGE, warning_id="issfr_contract2")
    await gateway.refund(
        charge_id=OTHER_CHARGE,
        amount=Decimal("29.00"),
        currency="usd",
        reason="early fraud warning",
        idempotency_key="run-9:refund",
    )

    warning = await gateway.get_early_fraud_warning(warning_id="issfr_contract2")

    assert not warning.actionable


# Refunds around disputes


async def test_a_refund_of_a_disputed_charge_is_refused_and_never_retried(
    gateway: StripeGateway, stripe_server: FakeStripe, dispute: dict[str, Any]
) -> None:
    with pytest.raises(ChargeDisputedError) as refused:
        await gateway.refund(
            charge_id=CHARGE,
            amount=Decimal("10.00"),
            currency="usd",
            reason="duplicate",
            idempotency_key="run-8:refund",
        )

    assert isinstance(refused.value, ConflictError) and not refused.value.retryable
    assert "disputed" in refused.value.message and "cannot be refunded" in refused.value.message
    assert stripe_server.refunds == {}
    assert stripe_server.charges[CHARGE]["amount_refunded"] == 0


async def test_an_inquiry_or_a_won_dispute_leaves_the_charge_refundable(
    gateway: StripeGateway, stripe_server: FakeStripe
) -> None:
    stripe_server.add_dispute(CHARGE, status="warning_needs_response")
    won = stripe_server.add_dispute(OTHER_CHARGE)
    stripe_server.settle_dispute(won["id"], "won")

    for charge_id, key in ((CHARGE, "a"), (OTHER_CHARGE, "b")):
        refund = await gateway.refund(
            charge_id=charge_id,
            amount=Decimal("1.00"),
            currency="usd",
            reason="r",
            idempotency_key=key,
        )
        assert refund.status == "succeeded"


# Where the SDK sends uploads


class _RecordingHTTP(stripe.HTTPClient):
    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        self.urls.append(url)
        body = {"id": "file_1", "object": "file", "purpose": "dispute_evidence"}
        return json.dumps(body).encode(), 200, {}

    async def close_async(self) -> None:
        pass


async def test_uploads_go_to_stripes_files_host_in_production() -> None:
    http = _RecordingHTTP()
    gateway = StripeGateway(
        client=new_stripe_client(
            secret_key="sk_test_x", api_base="https://api.stripe.com", http_client=http
        )
    )

    await gateway.upload_evidence_file(filename="a.pdf", content=pdf(), idempotency_key="k")

    assert http.urls == ["https://files.stripe.com/v1/files"]


# The CRM account of a Stripe customer, by SOQL


@pytest.fixture
def salesforce_server() -> Iterator[FakeSalesforce]:
    with FakeSalesforce(dataset=DATASET) as server:
        yield server


@pytest.fixture
async def crm(salesforce_server: FakeSalesforce) -> AsyncIterator[SalesforceCRM]:
    async with httpx.AsyncClient() as http:
        yield SalesforceCRM(
            http_client=http, base_url=salesforce_server.url, access_token=salesforce_server.token
        )


async def test_the_account_is_found_by_its_stripe_customer(
    crm: SalesforceCRM, salesforce_server: FakeSalesforce
) -> None:
    account = await crm.find_account_by_stripe_customer(customer_id="cus_Acme001")

    assert account == DATASET.accounts["001A00000000001AAA"]
    (request,) = salesforce_server.requests
    assert request.path == "/services/data/v60.0/query"
    soql = request.param("q") or ""
    assert "FROM Account WHERE Stripe_Customer_Id__c = 'cus_Acme001'" in soql
    assert await crm.find_account_by_stripe_customer(customer_id="cus_Nobody") is None


async def test_the_customer_id_is_quoted_so_it_cannot_bend_the_query(
    crm: SalesforceCRM, salesforce_server: FakeSalesforce
) -> None:
    hostile = "x' OR Stripe_Customer_Id__c != 'x"

    assert await crm.find_account_by_stripe_customer(customer_id=hostile) is None
    soql = salesforce_server.requests[0].param("q") or ""
    assert "= 'x\\' OR Stripe_Customer_Id__c != \\'x'" in soql


async def test_two_accounts_with_one_customer_id_is_an_error(
    crm: SalesforceCRM, salesforce_server: FakeSalesforce
) -> None:
    salesforce_server.accounts["001A00000000002AAA"]["Stripe_Customer_Id__c"] = "cus_Acme001"

    with pytest.raises(Exception, match="several accounts"):
        await crm.find_account_by_stripe_customer(customer_id="cus_Acme001")


# The sandbox keeps the same contract, its answers in the ledger


SANDBOX = build_dataset(datetime.now(UTC))


def sandbox_dispute(reason: str) -> Dispute:
    return next(d for d in SANDBOX.disputes.values() if d.reason == reason)


async def test_sandbox_chargebacks_refuse_refunds_and_leave_crm_cases_refundable(
    engine: AsyncEngine,
) -> None:
    payments = SandboxPayments(dataset=SANDBOX, ledger=SandboxLedger(engine))
    refunded_by_cases = {c.charge_id for c in SANDBOX.open_cases()}

    assert {d.reason for d in SANDBOX.disputes.values()} == {
        "subscription_canceled",
        "fraudulent",
        "product_not_received",
    }
    for dispute in SANDBOX.disputes.values():
        assert dispute.charge_id not in refunded_by_cases
        assert await payments.dispute_of_charge(charge_id=dispute.charge_id) == dispute
        assert dispute.evidence_due_by is not None
        assert timedelta(days=1) < dispute.evidence_due_by - datetime.now(UTC) < timedelta(10)
        with pytest.raises(ChargeDisputedError):
            await payments.refund(
                charge_id=dispute.charge_id,
                amount=Decimal("1.00"),
                currency="usd",
                reason="r",
                idempotency_key=f"{dispute.dispute_id}:refund",
            )
    for case in SANDBOX.open_cases():
        assert await payments.dispute_of_charge(charge_id=case.charge_id or "") is None


async def test_sandbox_evidence_survives_a_restart_and_submits_once(
    engine: AsyncEngine,
) -> None:
    dispute = sandbox_dispute("subscription_canceled")
    payments = SandboxPayments(dataset=SANDBOX, ledger=SandboxLedger(engine))
    file_id = await payments.upload_evidence_file(
        filename="policy.pdf", content=pdf(), idempotency_key="run-1:file:1"
    )
    with pytest.raises(InvalidRequestError, match=r"evidence\[receipt\]"):
        await payments.submit_evidence(
            dispute_id=dispute.dispute_id,
            evidence={"receipt": "a receipt, as text"},
            idempotency_key="run-1:evidence:0",
        )
    evidence = {"cancellation_policy": file_id, "cancellation_rebuttal": "Honoured late."}

    answered = await payments.submit_evidence(
        dispute_id=dispute.dispute_id, evidence=evidence, idempotency_key="run-1:evidence"
    )
    restarted = SandboxPayments(dataset=SANDBOX, ledger=SandboxLedger(engine))
    again = await restarted.submit_evidence(
        dispute_id=dispute.dispute_id, evidence=evidence, idempotency_key="run-1:evidence"
    )

    assert (answered.status, answered.submission_count, answered.has_evidence) == (
        "under_review",
        1,
        True,
    )
    assert again == answered
    assert await restarted.get_dispute(dispute_id=dispute.dispute_id) == answered
    with pytest.raises(ConflictError):
        await restarted.submit_evidence(
            dispute_id=dispute.dispute_id, evidence=evidence, idempotency_key="run-2:evidence"
        )
    with pytest.raises(InvalidRequestError):
        await payments.upload_evidence_file(
            filename="notes.txt", content=b"text", idempotency_key="run-1:file:2"
        )


async def test_sandbox_accepting_closes_the_dispute_lost(engine: AsyncEngine) -> None:
    dispute = sandbox_dispute("fraudulent")
    payments = SandboxPayments(dataset=SANDBOX, ledger=SandboxLedger(engine))

    closed = await payments.accept_dispute(
        dispute_id=dispute.dispute_id, idempotency_key="run-3:accept"
    )

    assert closed.status == "lost" and not closed.is_open
    assert (
        await payments.accept_dispute(dispute_id=dispute.dispute_id, idempotency_key="run-3:accept")
        == closed
    )
    with pytest.raises(ConflictError):
        await payments.accept_dispute(dispute_id=dispute.dispute_id, idempotency_key="other")


async def test_sandbox_early_fraud_warning_and_crm_account(engine: AsyncEngine) -> None:
    ledger = SandboxLedger(engine)
    payments = SandboxPayments(dataset=SANDBOX, ledger=ledger)
    crm = SandboxCRM(dataset=SANDBOX, ledger=ledger)
    (warning,) = SANDBOX.early_fraud_warnings.values()
    charge = SANDBOX.charges[warning.charge_id]

    got = await payments.get_early_fraud_warning(warning_id=warning.warning_id)
    account = await crm.find_account_by_stripe_customer(customer_id=charge.customer_id)

    assert got.actionable and await payments.dispute_of_charge(charge_id=charge.charge_id) is None
    assert account is not None and account.stripe_customer_id == charge.customer_id
    assert await crm.find_account_by_stripe_customer(customer_id="cus_nobody") is None
    await payments.refund(
        charge_id=charge.charge_id,
        amount=charge.amount,
        currency="usd",
        reason="early fraud warning",
        idempotency_key="run-4:refund",
    )
    refunded = await payments.get_early_fraud_warning(warning_id=warning.warning_id)
    assert not refunded.actionable
