"""SalesforceCRM against a local server speaking Salesforce REST: exact requests, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import parse_qs

import httpx
import pytest

from services.errors import AuthenticationError, IntegrationError, NotFoundError
from services.integrations.backends import build_integrations
from services.integrations.salesforce import CASE_FIELDS, SalesforceCRM
from services.retry import RetryPolicy
from services.sandbox.data import load_dataset
from services.sandbox.dataset import SandboxDataset
from services.settings import ConfigurationError, Settings
from tests.fakes.vendor_servers import (
    CONTRACT_NOW,
    FakeSalesforce,
    VendorServers,
    contract_dataset,
    vendor_servers,
)

DATASET = contract_dataset()
ACME = "001A00000000001AAA"
CASE = "500A00000000001AAA"
API = "/services/data/v60.0"


@pytest.fixture
def salesforce() -> Iterator[FakeSalesforce]:
    with FakeSalesforce(dataset=DATASET) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def crm(salesforce: FakeSalesforce, http: httpx.AsyncClient) -> SalesforceCRM:
    return SalesforceCRM(
        http_client=http,
        base_url=salesforce.url,
        access_token=salesforce.token,
        api_version="v60.0",
        timeout=2.0,
    )


async def test_get_case_reads_the_named_fields_with_the_bearer_token(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    case = await crm.get_case(case_id=CASE)

    assert case == DATASET.cases[CASE]
    (request,) = salesforce.requests
    assert request.method == "GET"
    assert request.path == f"{API}/sobjects/Case/{CASE}"
    assert request.params == {"fields": [",".join(CASE_FIELDS)]}
    assert request.header("Authorization") == f"Bearer {salesforce.token}"


async def test_case_amounts_and_outage_hours_are_exact_decimals(crm: SalesforceCRM) -> None:
    case = await crm.get_case(case_id="500A00000000002AAA")

    assert case.amount == Decimal("12.34") and str(case.amount) == "12.34"
    assert case.outage_hours == Decimal("6.5")
    assert case.currency == "usd"


async def test_multi_currency_org_reads_currency_iso_code(http: httpx.AsyncClient) -> None:
    with FakeSalesforce(dataset=DATASET, multi_currency=True) as server:
        server.cases[CASE]["CurrencyIsoCode"] = "EUR"
        crm = SalesforceCRM(
            http_client=http, base_url=server.url, access_token=server.token, multi_currency=True
        )
        case = await crm.get_case(case_id=CASE)

    assert case.currency == "eur"
    assert "CurrencyIsoCode" in server.requests[0].param("fields").split(",")  # type: ignore[union-attr]


async def test_picklist_labels_become_dispute_type_values(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    salesforce.cases[CASE]["Dispute_Type__c"] = "Duplicate Charge"

    case = await crm.get_case(case_id=CASE)

    assert case.dispute_type == "duplicate_charge"
    assert case.dispute_label == "Duplicate Charge"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Unauthorized Charge", "unrecognized_charge"),
        ("Unauthorised charge", "unrecognized_charge"),
        ("Fraud", "unrecognized_charge"),
        ("Double Billing", "duplicate_charge"),
        ("Overcharge", "incorrect_amount"),
        ("Service Interruption", "service_outage"),
        ("Charged After Cancellation", "cancellation_not_processed"),
        ("Refund Not Received", "refund_not_processed"),
    ],
)
async def test_real_org_picklist_labels_map_to_project_types(
    crm: SalesforceCRM, salesforce: FakeSalesforce, label: str, expected: str
) -> None:
    salesforce.cases[CASE]["Dispute_Type__c"] = label

    case = await crm.get_case(case_id=CASE)

    assert (case.dispute_type, case.dispute_label) == (expected, label)


async def test_an_unmapped_picklist_label_is_unknown_and_kept(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    salesforce.cases[CASE]["Dispute_Type__c"] = "Chargeback Inquiry"

    case = await crm.get_case(case_id=CASE)
    [listed] = [
        c
        for c in await crm.list_account_disputes(
            account_id=ACME, since=CONTRACT_NOW - timedelta(days=3650)
        )
        if c.case_id == CASE
    ]

    assert (case.dispute_type, case.dispute_label) == ("unknown", "Chargeback Inquiry")
    assert listed == case


async def test_the_configured_labels_reach_the_salesforce_adapter(http: httpx.AsyncClient) -> None:
    with vendor_servers(DATASET) as servers:
        servers.salesforce.cases[CASE]["Dispute_Type__c"] = "Chargeback Inquiry"
        settings = Settings.model_validate(
            {
                **{name.lower(): value for name, value in servers.environment().items()},
                "dispute_type_labels": "Chargeback Inquiry=unrecognized_charge",
            }
        )
        integrations = build_integrations(settings, sandbox=None, http_client=http)
        try:
            case = await integrations.crm.get_case(case_id=CASE)
        finally:
            await integrations.aclose()

    assert (case.dispute_type, case.dispute_label) == ("unrecognized_charge", "Chargeback Inquiry")


async def test_get_account_maps_segment_and_external_ids(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    account = await crm.get_account(account_id=ACME)

    assert account == DATASET.accounts[ACME]
    assert salesforce.requests[0].path == f"{API}/sobjects/Account/{ACME}"
    assert salesforce.requests[0].param("fields") == (
        "Id,Name,Type,Customer_Segment__c,Email__c,BillingCountry,BillingState,"
        "Stripe_Customer_Id__c,Zuora_Account_Id__c"
    )


@pytest.mark.parametrize(
    ("raw", "note"),
    [
        ("Platinum", "account segment (Customer_Segment__c) 'Platinum' unknown: standard assumed"),
        (None, "account segment (Customer_Segment__c) missing: standard assumed"),
    ],
)
async def test_a_missing_or_unknown_segment_is_defaulted_and_noted(
    crm: SalesforceCRM, salesforce: FakeSalesforce, raw: str | None, note: str
) -> None:
    salesforce.accounts[ACME]["Customer_Segment__c"] = raw

    account = await crm.get_account(account_id=ACME)

    assert (account.segment, account.data_quality) == ("standard", [note])
    # A known segment is read as it is, with nothing to note.
    salesforce.accounts[ACME]["Customer_Segment__c"] = "Enterprise"
    account = await crm.get_account(account_id=ACME)
    assert (account.segment, account.data_quality) == ("enterprise", [])


async def test_list_account_disputes_sends_soql_and_follows_next_records_url(
    http: httpx.AsyncClient,
) -> None:
    with FakeSalesforce(dataset=DATASET, page_size=1) as server:
        server.cases["500A00000000009AAA"] = {
            **server.cases[CASE],
            "Id": "500A00000000009AAA",
            "Dispute_Type__c": None,  # a non-dispute case of the same account
        }
        crm = SalesforceCRM(http_client=http, base_url=server.url, access_token=server.token)
        disputes = await crm.list_account_disputes(
            account_id=ACME, since=CONTRACT_NOW - timedelta(days=90)
        )

    # Cases 1-3 are Acme's disputes within 90 days, newest first; 4 is older, 5 is Finch's.
    assert [c.case_id for c in disputes] == [
        "500A00000000001AAA",
        "500A00000000002AAA",
        "500A00000000003AAA",
    ]
    assert disputes[1] == DATASET.cases["500A00000000002AAA"]
    first, *pages = server.requests
    assert first.path == f"{API}/query"
    assert first.params["q"] == [
        f"SELECT {', '.join(CASE_FIELDS)} FROM Case"
        f" WHERE AccountId = '{ACME}' AND CreatedDate >= 2025-03-04T12:00:00Z"
        " AND Dispute_Type__c != null ORDER BY CreatedDate DESC"
    ]
    assert len(pages) == 2
    assert all(p.path.startswith(f"{API}/query/01g") and not p.query for p in pages)
    assert all(p.header("Authorization") == f"Bearer {server.token}" for p in server.requests)


async def test_soql_literal_cannot_be_broken_out_of(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    hostile = f"{ACME}' OR AccountId != '"

    disputes = await crm.list_account_disputes(
        account_id=hostile, since=CONTRACT_NOW - timedelta(days=365)
    )

    assert disputes == []
    (q,) = parse_qs(salesforce.requests[0].query)["q"]
    assert f"AccountId = '{ACME}\\' OR AccountId != \\''" in q


async def test_next_records_url_on_another_host_is_refused(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    salesforce.fail(
        200,
        body={
            "totalSize": 2,
            "done": False,
            "records": [],
            "nextRecordsUrl": "https://attacker.example/services/data/v60.0/query/01g-1",
        },
        path=f"{API}/query",
    )

    with pytest.raises(IntegrationError, match="outside the instance"):
        await crm.list_account_disputes(account_id=ACME, since=CONTRACT_NOW)
    assert len(salesforce.requests) == 1


async def test_record_outcome_patches_the_case_once_per_key(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    await crm.record_outcome(
        case_id=CASE, status="Closed", summary="Refunded 49.99", idempotency_key="run-1:case"
    )
    await crm.record_outcome(
        case_id=CASE, status="Closed", summary="Refunded 49.99", idempotency_key="run-1:case"
    )

    patches = salesforce.requests_to(f"{API}/sobjects/Case/{CASE}", method="PATCH")
    assert len(patches) == 1
    assert patches[0].header("Content-Type") == "application/json"
    assert patches[0].json() == {
        "Status": "Closed",
        "Resolution_Summary__c": "Refunded 49.99",
        "Resolution_Key__c": "run-1:case",
    }
    reads = salesforce.requests_to(f"{API}/sobjects/Case/{CASE}", method="GET")
    assert [r.param("fields") for r in reads] == ["Id,Resolution_Key__c"] * 2
    row = salesforce.cases[CASE]
    assert (row["Status"], row["Resolution_Key__c"]) == ("Closed", "run-1:case")


async def test_replayed_outcome_does_not_undo_a_later_manual_edit(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    await crm.record_outcome(case_id=CASE, status="Closed", summary="s", idempotency_key="k1")
    salesforce.cases[CASE]["Status"] = "Escalated"  # an agent reopened it by hand

    await crm.record_outcome(case_id=CASE, status="Closed", summary="s", idempotency_key="k1")

    assert salesforce.cases[CASE]["Status"] == "Escalated"


async def test_a_new_key_writes_a_new_outcome(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    await crm.record_outcome(case_id=CASE, status="Pending", summary="a", idempotency_key="k1")
    await crm.record_outcome(case_id=CASE, status="Closed", summary="b", idempotency_key="k2")

    assert salesforce.cases[CASE]["Status"] == "Closed"
    assert salesforce.cases[CASE]["Resolution_Summary__c"] == "b"


async def test_unauthorized_is_an_authentication_error_without_the_token(
    salesforce: FakeSalesforce, http: httpx.AsyncClient
) -> None:
    crm = SalesforceCRM(http_client=http, base_url=salesforce.url, access_token="expired-secret")

    with pytest.raises(AuthenticationError) as caught:
        await crm.get_case(case_id=CASE)

    assert not caught.value.retryable
    assert "expired-secret" not in str(caught.value)
    assert salesforce.requests[0].header("Authorization") == "Bearer expired-secret"


async def test_unknown_case_is_not_found(crm: SalesforceCRM) -> None:
    with pytest.raises(NotFoundError, match="500A0000000000XAAA"):
        await crm.get_case(case_id="500A0000000000XAAA")


async def test_ids_cannot_walk_the_path(crm: SalesforceCRM, salesforce: FakeSalesforce) -> None:
    with pytest.raises(NotFoundError):
        await crm.get_case(case_id="../Account/001A00000000001AAA")
    assert salesforce.requests[0].path.endswith("/sobjects/Case/..%2FAccount%2F001A00000000001AAA")


async def test_rate_limit_is_retryable_with_retry_after(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    salesforce.fail(429, headers={"Retry-After": "7"})

    with pytest.raises(IntegrationError) as caught:
        await crm.get_case(case_id=CASE)

    assert caught.value.retryable
    assert caught.value.retry_after == 7.0
    assert caught.value.status == 429


async def test_daily_api_limit_is_not_retried(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    salesforce.fail(
        403,
        body=[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    )

    with pytest.raises(IntegrationError, match="REQUEST_LIMIT_EXCEEDED") as caught:
        await crm.get_case(case_id=CASE)
    assert not caught.value.retryable


async def test_server_error_is_retryable(crm: SalesforceCRM, salesforce: FakeSalesforce) -> None:
    salesforce.fail(500)

    with pytest.raises(IntegrationError) as caught:
        await crm.get_account(account_id=ACME)

    assert caught.value.retryable and caught.value.status == 500


async def test_timeout_is_retryable(salesforce: FakeSalesforce, http: httpx.AsyncClient) -> None:
    crm = SalesforceCRM(
        http_client=http, base_url=salesforce.url, access_token=salesforce.token, timeout=0.2
    )
    salesforce.stall(2.0)

    with pytest.raises(IntegrationError, match="timed out") as caught:
        await crm.get_case(case_id=CASE)
    assert caught.value.retryable


async def test_retry_policy_rides_out_a_rate_limit_and_an_outage(
    crm: SalesforceCRM, salesforce: FakeSalesforce
) -> None:
    salesforce.fail(429, headers={"Retry-After": "3"})
    salesforce.fail(503)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(max_attempts=3, base_delay=0.1, sleep=sleep, random_fraction=lambda: 0)
    case = await policy(lambda: crm.get_case(case_id=CASE), operation="crm.case")

    assert case.case_id == CASE
    assert len(salesforce.requests) == 3
    assert slept[0] >= 3.0  # Retry-After honoured
    assert len(slept) == 2


# All three real backends, built from settings, over the built-in sandbox dataset.

SANDBOX_NOW = datetime.now(UTC)


def at_vendor_precision(dataset: SandboxDataset) -> SandboxDataset:
    """The dataset as the vendors can carry it: Salesforce keeps milliseconds, Stripe
    seconds, and Zuora dates only (read back as midnight UTC)."""

    def millis(moment: datetime) -> datetime:
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def day(moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        return datetime.combine(moment.astimezone(UTC).date(), time(), tzinfo=UTC)

    return SandboxDataset(
        accounts=dataset.accounts,
        cases={
            k: c.model_copy(update={"created_at": millis(c.created_at)})
            for k, c in dataset.cases.items()
        },
        billing={
            k: b.model_copy(
                update={
                    "subscriptions": [
                        s.model_copy(
                            update={
                                "start_date": day(s.start_date),
                                "cancelled_at": day(s.cancelled_at),
                            }
                        )
                        for s in b.subscriptions
                    ]
                }
            )
            for k, b in dataset.billing.items()
        },
        charges={
            k: c.model_copy(update={"created_at": c.created_at.replace(microsecond=0)})
            for k, c in dataset.charges.items()
        },
    )


def real_backend_settings(servers: VendorServers) -> Settings:
    values = {name.lower(): value for name, value in servers.environment().items()}
    return Settings.model_validate(values)  # explicit values win over the environment


async def test_real_backends_see_the_sandbox_dataset(http: httpx.AsyncClient) -> None:
    dataset = load_dataset(SANDBOX_NOW)
    expected = at_vendor_precision(dataset)
    with vendor_servers(dataset) as servers:
        integrations = build_integrations(
            real_backend_settings(servers), sandbox=None, http_client=http
        )
        try:
            assert integrations.backends() == {
                "crm": "salesforce",
                "billing": "zuora",
                "payments": "stripe",
            }
            for case_id, case in expected.cases.items():
                assert await integrations.crm.get_case(case_id=case_id) == case
            since = SANDBOX_NOW - timedelta(days=90)
            for account_id, account in expected.accounts.items():
                assert await integrations.crm.get_account(account_id=account_id) == account
                disputes = await integrations.crm.list_account_disputes(
                    account_id=account_id, since=since
                )
                assert {c.case_id for c in disputes} == {
                    c.case_id
                    for c in expected.cases.values()
                    if c.account_id == account_id and c.created_at >= since
                }
                assert account.stripe_customer_id and account.zuora_account_id
                charges = await integrations.payments.list_charges(
                    customer_id=account.stripe_customer_id, limit=100
                )
                assert charges == sorted(
                    (
                        c
                        for c in expected.charges.values()
                        if c.customer_id == account.stripe_customer_id
                    ),
                    key=lambda c: c.created_at,
                    reverse=True,
                )
                billing = await integrations.billing.get_billing(
                    account_key=account.zuora_account_id
                )
                assert billing == expected.billing[account.zuora_account_id]
            for charge_id, charge in expected.charges.items():
                assert await integrations.payments.get_charge(charge_id=charge_id) == charge
        finally:
            await integrations.aclose()
    assert not (servers.salesforce.errors or servers.zuora.errors or servers.stripe.errors)


async def test_build_integrations_needs_the_dataset_for_sandbox_backends(
    http: httpx.AsyncClient,
) -> None:
    with pytest.raises(ConfigurationError, match="sandbox dataset"):
        build_integrations(
            Settings.model_validate(
                {
                    "crm_backend": "sandbox",
                    "billing_backend": "sandbox",
                    "payment_backend": "sandbox",
                }
            ),
            sandbox=None,
            http_client=http,
        )


async def test_build_integrations_fails_fast_without_credentials(http: httpx.AsyncClient) -> None:
    settings = Settings.model_validate(
        {
            "crm_backend": "sandbox",
            "billing_backend": "sandbox",
            "payment_backend": "stripe",
            "payment_secret_key": None,
        }
    )

    with pytest.raises(ConfigurationError, match="PAYMENT_SECRET_KEY"):
        build_integrations(settings, sandbox=None, http_client=http)


async def test_build_integrations_uses_the_configured_attempts(http: httpx.AsyncClient) -> None:
    with vendor_servers() as servers:
        settings = real_backend_settings(servers).model_copy(update={"integration_max_attempts": 2})
        integrations = build_integrations(settings, sandbox=None, http_client=http)
        await integrations.aclose()

    assert integrations.retry.max_attempts == 2
