"""Salesforce CRM over its REST API: cases, accounts, dispute history, case outcomes."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from models.dispute_types import DEFAULT_DISPUTE_TYPE_LABELS, DisputeTypeLabels
from models.domain import CRMAccount, CRMCase, CustomerSegment, quantize_money
from services.errors import IntegrationError, NotFoundError, PaymentsAgentError
from services.retry import error_for_status, parse_retry_after

logger = logging.getLogger(__name__)

SYSTEM = "salesforce"

CASE_FIELDS = (
    "Id",
    "CaseNumber",
    "AccountId",
    "Subject",
    "Description",
    "Status",
    "Priority",
    "CreatedDate",
    "Dispute_Type__c",
    "Amount__c",
    "Charge_Id__c",
    "Outage_Hours__c",
)
ACCOUNT_FIELDS = (
    "Id",
    "Name",
    "Type",
    "Customer_Segment__c",
    "Email__c",
    "BillingCountry",
    "BillingState",
    "Stripe_Customer_Id__c",
    "Zuora_Account_Id__c",
)
# Written by record_outcome. Resolution_Key__c holds the idempotency key of the last
# outcome written, so a replay of the same key can be recognised and skipped.
RESOLUTION_SUMMARY_FIELD = "Resolution_Summary__c"
RESOLUTION_KEY_FIELD = "Resolution_Key__c"
SUMMARY_MAX_CHARS = 32_000

SEGMENTS: dict[str, CustomerSegment] = {
    "standard": "standard",
    "premium": "premium",
    "enterprise": "enterprise",
}
# The segment assumed when the account has none the project knows: the lowest tier.
DEFAULT_SEGMENT: CustomerSegment = "standard"


def soql_quote(value: str) -> str:
    """Quote a string as a SOQL literal, escaping what could end or bend it."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'{escaped}'"


def soql_datetime(value: datetime) -> str:
    """Render an aware datetime as a SOQL dateTime literal in UTC."""
    if value.tzinfo is None:
        raise ValueError("SOQL datetimes must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_datetime(value: str) -> datetime:
    # Salesforce renders "2024-05-01T12:00:00.000+0000"; fromisoformat reads it in 3.11.
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise IntegrationError(
            f"unexpected numeric value {value!r}", system=SYSTEM, retryable=False
        )
    return Decimal(value)


class SalesforceCRM:
    """CRMClient backed by Salesforce REST (`/services/data/{version}`) with a bearer token."""

    backend = "salesforce"

    def __init__(
        self,
        *,
        http_client: httpx.AsyncClient,
        base_url: str,
        access_token: str,
        api_version: str = "v60.0",
        timeout: float | None = None,
        multi_currency: bool = False,
        default_currency: str = "usd",
        dispute_types: DisputeTypeLabels = DEFAULT_DISPUTE_TYPE_LABELS,
    ) -> None:
        self._http = http_client
        self._base = base_url.rstrip("/")
        self._origin = urlsplit(self._base)[:2]
        self._api = f"/services/data/{api_version}"
        self._token = access_token
        self._timeout = timeout
        self._default_currency = default_currency
        self._dispute_types = dispute_types
        # CurrencyIsoCode only exists in multi-currency orgs; asking for it elsewhere fails.
        self._case_fields = (*CASE_FIELDS, "CurrencyIsoCode") if multi_currency else CASE_FIELDS

    async def get_case(self, *, case_id: str) -> CRMCase:
        """Read one case by its Id."""
        record = await self._get(
            f"{self._api}/sobjects/Case/{_path_id(case_id)}",
            params={"fields": ",".join(self._case_fields)},
            subject=f"case {case_id}",
        )
        return self._case(record)

    async def get_account(self, *, account_id: str) -> CRMAccount:
        """Read one account by its Id."""
        record = await self._get(
            f"{self._api}/sobjects/Account/{_path_id(account_id)}",
            params={"fields": ",".join(ACCOUNT_FIELDS)},
            subject=f"account {account_id}",
        )
        return _account(record)

    async def find_account_by_stripe_customer(self, *, customer_id: str) -> CRMAccount | None:
        """The Account whose Stripe_Customer_Id__c is `customer_id`, by SOQL; None if none.

        Two accounts sharing a customer id is a data error in the CRM, not a choice to make
        here: it is refused rather than guessed.
        """
        if not customer_id:
            return None
        soql = (
            f"SELECT {', '.join(ACCOUNT_FIELDS)} FROM Account"
            f" WHERE Stripe_Customer_Id__c = {soql_quote(customer_id)}"
            " LIMIT 2"
        )
        page = await self._get(
            f"{self._api}/query", params={"q": soql}, subject=f"account of {customer_id}"
        )
        records: list[dict[str, Any]] = list(page.get("records", []))
        if len(records) > 1:
            raise IntegrationError(
                f"several accounts have Stripe customer {customer_id}",
                system=SYSTEM,
                retryable=False,
            )
        return _account(records[0]) if records else None

    async def list_account_disputes(self, *, account_id: str, since: datetime) -> list[CRMCase]:
        """Dispute cases of the account created at or after `since`, newest first."""
        soql = (
            f"SELECT {', '.join(self._case_fields)} FROM Case"
            f" WHERE AccountId = {soql_quote(account_id)}"
            f" AND CreatedDate >= {soql_datetime(since)}"
            " AND Dispute_Type__c != null"
            " ORDER BY CreatedDate DESC"
        )
        page = await self._get(
            f"{self._api}/query", params={"q": soql}, subject=f"disputes of {account_id}"
        )
        records: list[dict[str, Any]] = list(page.get("records", []))
        while not page.get("done", True):
            next_url = page.get("nextRecordsUrl")
            if not isinstance(next_url, str):
                raise IntegrationError(
                    "query not done but no nextRecordsUrl", system=SYSTEM, retryable=False
                )
            page = await self._get(
                self._same_origin_path(next_url), params=None, subject="next query page"
            )
            records.extend(page.get("records", []))
        return [self._case(record) for record in records]

    async def record_outcome(
        self, *, case_id: str, status: str, summary: str, idempotency_key: str
    ) -> None:
        """Set the case's status and resolution summary, once per idempotency key."""
        path = f"{self._api}/sobjects/Case/{_path_id(case_id)}"
        current = await self._get(
            path, params={"fields": f"Id,{RESOLUTION_KEY_FIELD}"}, subject=f"case {case_id}"
        )
        # PATCH is idempotent by itself, but replaying it could undo a later manual edit
        # of the case; a key already recorded on the case means this outcome is written.
        if current.get(RESOLUTION_KEY_FIELD) == idempotency_key:
            logger.info("case %s already carries outcome %s", case_id, idempotency_key)
            return
        body = {
            "Status": status,
            RESOLUTION_SUMMARY_FIELD: summary[:SUMMARY_MAX_CHARS],
            RESOLUTION_KEY_FIELD: idempotency_key,
        }
        await self._send("PATCH", path, params=None, json_body=body, subject=f"case {case_id}")

    def _case(self, record: dict[str, Any]) -> CRMCase:
        amount = _decimal(record.get("Amount__c"))
        currency = record.get("CurrencyIsoCode") or self._default_currency
        label = str(record.get("Dispute_Type__c") or "").strip() or None
        # An unmapped label is not an error: the case goes to a human with the label shown.
        dispute_type = self._dispute_types.dispute_type(label)
        return CRMCase(
            case_id=record["Id"],
            case_number=record.get("CaseNumber") or "",
            account_id=record.get("AccountId") or "",
            subject=record.get("Subject") or "",
            description=record.get("Description") or "",
            status=record.get("Status") or "",
            priority=record.get("Priority") or "",
            created_at=_parse_datetime(record["CreatedDate"]),
            dispute_type=dispute_type,
            dispute_label=label if label != dispute_type else None,
            amount=quantize_money(amount) if amount is not None else Decimal("0.00"),
            currency=str(currency).lower(),
            charge_id=record.get("Charge_Id__c") or None,
            outage_hours=_decimal(record.get("Outage_Hours__c")),
        )

    def _same_origin_path(self, url: str) -> str:
        # nextRecordsUrl is a path; anything pointing elsewhere must not get our token.
        parts = urlsplit(url)
        if parts.scheme and (parts.scheme, parts.netloc) != self._origin:
            raise IntegrationError(
                "nextRecordsUrl points outside the instance", system=SYSTEM, retryable=False
            )
        return parts.path + (f"?{parts.query}" if parts.query else "")

    async def _get(
        self, path: str, *, params: dict[str, str] | None, subject: str
    ) -> dict[str, Any]:
        body = await self._send("GET", path, params=params, json_body=None, subject=subject)
        if not isinstance(body, dict):
            raise IntegrationError("expected a JSON object", system=SYSTEM, retryable=False)
        return body

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None,
        json_body: dict[str, Any] | None,
        subject: str,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        content: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(json_body).encode()
        try:
            response = await self._http.request(
                method,
                self._base + path,
                params=params,
                content=content,
                headers=headers,
                timeout=self._timeout if self._timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise IntegrationError(
                f"{method} {subject} timed out", system=SYSTEM, retryable=True
            ) from exc
        except httpx.TransportError as exc:
            raise IntegrationError(
                f"{method} {subject}: {type(exc).__name__}", system=SYSTEM, retryable=True
            ) from exc
        if response.is_success:
            if response.status_code == 204 or not response.content:
                return None
            return _json(response)
        raise _error(response, subject=subject)


def _path_id(value: str) -> str:
    # An id is one path segment: quoted, so no value can reach another resource.
    if value in ("", ".", ".."):
        raise NotFoundError(f"{SYSTEM}: {value!r} is not a record id")
    return quote(value, safe="")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json(parse_float=Decimal)
    except ValueError as exc:
        raise IntegrationError(
            f"unreadable response (HTTP {response.status_code})", system=SYSTEM, retryable=False
        ) from exc


def _error(response: httpx.Response, *, subject: str) -> PaymentsAgentError:
    """Translate Salesforce's `[{"errorCode", "message"}]` error bodies."""
    detail = f"{subject}: HTTP {response.status_code}"
    codes: list[str] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, list):
        for item in body:
            if isinstance(item, dict):
                codes.append(str(item.get("errorCode", "")))
                detail = f"{subject}: {item.get('errorCode')}: {item.get('message')}"
                break
    status = response.status_code
    if status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
        # The org's API allowance is spent; waiting seconds will not bring it back.
        return IntegrationError(detail, system=SYSTEM, retryable=False, status=status)
    if status == 404:
        return error_for_status(system=SYSTEM, status=status, detail=f"{subject} not found")
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return error_for_status(system=SYSTEM, status=status, detail=detail, retry_after=retry_after)


def _account(record: dict[str, Any]) -> CRMAccount:
    raw_segment = record.get("Customer_Segment__c")
    # A missing or unknown segment does not stop the run: the lowest tier's terms apply
    # and the run's data-quality notes say so.
    data_quality: list[str] = []
    segment = SEGMENTS.get(str(raw_segment or "").strip().lower())
    if segment is None:
        segment = DEFAULT_SEGMENT
        shown = "missing" if raw_segment in (None, "") else f"{str(raw_segment)[:40]!r} unknown"
        data_quality.append(f"account segment (Customer_Segment__c) {shown}: {segment} assumed")
    return CRMAccount(
        account_id=record["Id"],
        name=record.get("Name") or "",
        type=record.get("Type") or "",
        segment=segment,
        email=record.get("Email__c") or None,
        billing_country=record.get("BillingCountry") or None,
        billing_state=record.get("BillingState") or None,
        stripe_customer_id=record.get("Stripe_Customer_Id__c") or None,
        zuora_account_id=record.get("Zuora_Account_Id__c") or None,
        data_quality=data_quality,
    )


__all__ = ["ACCOUNT_FIELDS", "CASE_FIELDS", "SalesforceCRM", "soql_datetime", "soql_quote"]
