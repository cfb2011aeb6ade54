"""Zuora billing over its REST API: account summary, subscriptions and credit memos.

A credit memo carries its idempotency key twice: as the `Idempotency-Key` header, which
Zuora remembers for 24 hours only, and at the head of the memo's `comment`
(`[idempotency-key:<key>] <reason>`), which stays. `find_credit` lists the account's
memos (`GET /v1/creditmemos?accountNumber=…`, or `accountId=…`) and matches that head, so
a retry after the key has expired finds the credit already made.

Why the comment: it is a standard field of every credit memo (255 characters), written
on create and returned by the list, on every tenant. Zuora also documents custom fields
on Credit Memo (e.g. an `IdempotencyKey__c`), but each tenant must define one first, and
a memo posted with an undefined custom field is refused: every credit would fail on a
tenant that has not. The list cannot filter on either field, so the account's memos are
read page by page and matched here. The reason follows the key, cut to fit; each memo
charge keeps the full reason in its own comment.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from models.domain import BillingData, CreditResult, Subscription, quantize_money
from services.errors import (
    AuthenticationError,
    ConflictError,
    IntegrationError,
    InvalidRequestError,
    NotFoundError,
    PaymentsAgentError,
)
from services.retry import error_for_status, parse_retry_after

logger = logging.getLogger(__name__)

SYSTEM = "zuora"
SUBSCRIPTIONS_PAGE_SIZE = 40  # the largest page Zuora serves for this endpoint
COMMENT_MAX_CHARS = 255
CANCELLATION_REQUESTED_FIELD = "CancellationRequestedAt__c"
DEFAULT_CURRENCY = "usd"
# Where a subscription's start is read, in order. The first two are the subscription's own
# start; the others are later or looser and are noted when used (termStartDate is the
# current term's start, after any renewal).
START_DATE_FIELDS = (
    "subscriptionStartDate",
    "contractEffectiveDate",
    "serviceActivationDate",
    "customerAcceptanceDate",
    "termStartDate",
    "orderDate",
)
# A subscription with no date at all is taken to have started before any charge.
UNKNOWN_START = datetime(1970, 1, 1, tzinfo=UTC)

BILLING_PERIODS = {
    "month": "month",
    "quarter": "quarter",
    "semi-annual": "half_year",
    "annual": "year",
    "eighteen months": "18_months",
    "two years": "2_years",
    "three years": "3_years",
    "five years": "5_years",
    "week": "week",
}
# The last two digits of a Zuora error code name its category.
AUTH_CATEGORIES = {10, 11}
NOT_FOUND_CATEGORIES = {40}
RETRYABLE_CATEGORIES = {50, 60, 61, 70}
ZUORA_ID = re.compile(r"[0-9a-f]{32}")
CREDIT_MEMOS_PAGE_SIZE = 40  # the largest page Zuora serves for this endpoint
# Keys are written into the memo's comment; this alphabet keeps the head unambiguous.
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CANCELLED_MEMO_STATUSES = frozenset({"Cancelled", "CancelInProgress"})


def dumps_json(value: Any) -> bytes:
    """Serialise a request body, writing Decimals as exact JSON numbers (never via float)."""

    def encode(item: Any) -> str:
        if isinstance(item, Decimal):
            if not item.is_finite():
                raise ValueError("non-finite amount")
            return format(item, "f")
        if isinstance(item, float):
            raise TypeError("float in a request body; use Decimal")
        if isinstance(item, dict):
            members = (f"{json.dumps(str(k))}:{encode(v)}" for k, v in item.items())
            return "{" + ",".join(members) + "}"
        if isinstance(item, list | tuple):
            return "[" + ",".join(encode(v) for v in item) + "]"
        return json.dumps(item)

    return encode(value).encode()


class ZuoraBilling:
    """BillingClient backed by Zuora REST (`/v1`) with an OAuth bearer token."""

    backend = "zuora"

    def __init__(
        self,
        *,
        http_client: httpx.AsyncClient,
        base_url: str,
        access_token: str,
        timeout: float | None = None,
        credit_charge_id: str | None = None,
    ) -> None:
        self._http = http_client
        self._base = base_url.rstrip("/")
        self._origin = urlsplit(self._base)[:2]
        self._token = access_token
        self._timeout = timeout
        # The product rate plan charge a credit memo is booked against (tenant-specific).
        self._credit_charge_id = credit_charge_id

    async def get_billing(self, *, account_key: str) -> BillingData:
        """Account balance from the summary, and every subscription of the account."""
        key = _path_key(account_key)
        summary = await self._request(
            "GET", f"/v1/accounts/{key}/summary", subject=f"account {account_key}"
        )
        info = summary.get("basicInfo") or {}
        notes: list[str] = []
        currency = str(info.get("currency") or "").lower()
        if not currency:
            currency = DEFAULT_CURRENCY
            notes.append(f"account currency missing: {currency} assumed")
        balance = info.get("balance")
        if balance is None:
            notes.append("account balance missing: 0.00 shown")
        subscriptions: list[Subscription] = []
        page = await self._request(
            "GET",
            f"/v1/subscriptions/accounts/{key}",
            params={"pageSize": str(SUBSCRIPTIONS_PAGE_SIZE)},
            subject=f"subscriptions of {account_key}",
        )
        while True:
            for raw in page.get("subscriptions", []):
                subscriptions.append(_subscription(raw, currency, notes))
            next_page = page.get("nextPage")
            if not next_page:
                break
            page = await self._request(
                "GET", self._same_origin_path(next_page), subject="next subscriptions page"
            )
        return BillingData(
            account_key=account_key,
            balance=quantize_money(_decimal(balance or 0, "balance")),
            currency=currency,
            subscriptions=subscriptions,
            data_quality=notes,
        )

    async def create_credit(
        self, *, account_key: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> CreditResult:
        """Post a credit memo; Zuora replays the first response for a repeated key."""
        amount = quantize_money(amount)
        if amount <= 0:
            raise InvalidRequestError("credit amount must be positive")
        head = _key_head(idempotency_key)
        charge: dict[str, Any] = {"amount": amount, "comment": reason[:COMMENT_MAX_CHARS]}
        if self._credit_charge_id:
            charge["productRatePlanChargeId"] = self._credit_charge_id
        body = {
            _account_field(account_key): account_key,
            "autoPost": True,
            "comment": f"{head} {reason}"[:COMMENT_MAX_CHARS],
            "charges": [charge],
        }
        memo = await self._request(
            "POST",
            "/v1/creditmemos",
            body=body,
            idempotency_key=idempotency_key,
            subject=f"credit memo for {account_key}",
        )
        result = _credit(
            memo,
            account_key=account_key,
            idempotency_key=idempotency_key,
            amount=amount,
            currency=currency,
        )
        if result.currency != currency.lower():
            logger.warning(
                "credit memo %s is in %s, requested %s", result.credit_id, result.currency, currency
            )
        return result

    async def find_credit(self, *, account_key: str, idempotency_key: str) -> CreditResult | None:
        """The account's credit memo whose comment starts with this key, reading every page.

        Should several carry it (a key reused after it expired at Zuora), one not
        cancelled wins: that credit stands. Otherwise the first listed.
        """
        head = _key_head(idempotency_key)
        matches: list[dict[str, Any]] = []
        page = await self._request(
            "GET",
            "/v1/creditmemos",
            params={
                _account_field(account_key): account_key,
                "pageSize": str(CREDIT_MEMOS_PAGE_SIZE),
            },
            subject=f"credit memos of {account_key}",
        )
        while True:
            for memo in page.get("creditmemos") or []:
                comment = str(memo.get("comment") or "")
                if comment == head or comment.startswith(head + " "):
                    matches.append(memo)
            next_page = page.get("nextPage")
            if not next_page:
                break
            page = await self._request(
                "GET", self._same_origin_path(next_page), subject="next credit memos page"
            )
        if not matches:
            return None
        standing = [m for m in matches if m.get("status") not in CANCELLED_MEMO_STATUSES]
        memo = (standing or matches)[0]
        return _credit(memo, account_key=account_key, idempotency_key=idempotency_key)

    def _same_origin_path(self, url: str) -> str:
        # nextPage is an absolute URL; the token is only ever sent to the configured host.
        parts = urlsplit(url)
        if parts.scheme and (parts.scheme, parts.netloc) != self._origin:
            raise IntegrationError(
                "nextPage points outside the tenant", system=SYSTEM, retryable=False
            )
        return parts.path + (f"?{parts.query}" if parts.query else "")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        subject: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        content: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = dumps_json(body)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
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
            raise IntegrationError(f"{subject} timed out", system=SYSTEM, retryable=True) from exc
        except httpx.TransportError as exc:
            raise IntegrationError(
                f"{subject}: {type(exc).__name__}", system=SYSTEM, retryable=True
            ) from exc
        try:
            parsed = response.json(parse_float=Decimal)
        except ValueError:
            parsed = None
        data = parsed if isinstance(parsed, dict) else {}
        if response.is_success and data.get("success") is not False:
            if parsed is None:
                raise IntegrationError(
                    f"{subject}: unreadable response", system=SYSTEM, retryable=False
                )
            return data
        raise _error(response, data, subject=subject, idempotent=idempotency_key is not None)


def _error(
    response: httpx.Response, body: dict[str, Any], *, subject: str, idempotent: bool
) -> PaymentsAgentError:
    """Translate an HTTP error or a `success: false` body, by status and reason category."""
    reasons = [r for r in body.get("reasons") or [] if isinstance(r, dict)]
    detail = "; ".join(f"{r.get('code')}: {r.get('message')}" for r in reasons)
    detail = detail or str(body.get("message") or f"HTTP {response.status_code}")
    categories = {_category(r.get("code")) for r in reasons}
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 404:
        return NotFoundError(f"{SYSTEM}: {subject} not found ({detail})")
    if status == 409 or (status == 422 and idempotent):
        # 409: a request with this Idempotency-Key is still in flight; 422: the key was
        # used before with a different body.
        return ConflictError(f"{SYSTEM}: {subject}: {detail}")
    if status in (401, 403, 408, 429) or status >= 500:
        return error_for_status(
            system=SYSTEM, status=status, detail=f"{subject}: {detail}", retry_after=retry_after
        )
    if categories & AUTH_CATEGORIES:
        return AuthenticationError(f"{SYSTEM}: credentials rejected")
    if categories & NOT_FOUND_CATEGORIES:
        return NotFoundError(f"{SYSTEM}: {subject} not found ({detail})")
    retryable = bool(categories & RETRYABLE_CATEGORIES)
    return IntegrationError(
        f"{subject}: {detail}",
        system=SYSTEM,
        retryable=retryable,
        retry_after=retry_after if retryable else None,
        status=status,
    )


def _account_field(account_key: str) -> str:
    # Zuora ids are 32 hex characters; any other key is an account number.
    return "accountId" if ZUORA_ID.fullmatch(account_key) else "accountNumber"


def _key_head(idempotency_key: str) -> str:
    """The head of a memo comment that names its idempotency key."""
    if not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise InvalidRequestError(
            "idempotency key must be 1 to 128 letters, digits or . _ : - characters"
        )
    return f"[idempotency-key:{idempotency_key}]"


def _credit(
    memo: dict[str, Any],
    *,
    account_key: str,
    idempotency_key: str,
    amount: Decimal | None = None,
    currency: str | None = None,
) -> CreditResult:
    memo_amount = memo.get("amount", amount)
    memo_currency = memo.get("currency") or currency
    if memo_amount is None or not memo_currency:
        raise IntegrationError(
            f"credit memo {memo.get('number')} has no amount or currency",
            system=SYSTEM,
            retryable=False,
        )
    return CreditResult(
        credit_id=str(memo.get("number") or memo["id"]),
        account_key=account_key,
        amount=quantize_money(_decimal(memo_amount, "amount")),
        currency=str(memo_currency).lower(),
        idempotency_key=idempotency_key,
    )


def _category(code: Any) -> int | None:
    text = str(code or "")
    return int(text[-2:]) if len(text) >= 2 and text[-2:].isdigit() else None


def _path_key(value: str) -> str:
    if value in ("", ".", ".."):
        raise NotFoundError(f"{SYSTEM}: {value!r} is not an account key")
    return quote(value, safe="")


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str) and not isinstance(value, bool):
        return Decimal(value)
    raise IntegrationError(f"unexpected {name} {value!r}", system=SYSTEM, retryable=False)


def _moment(value: Any) -> datetime | None:
    """Zuora dates are `YYYY-MM-DD` (midnight UTC here); custom fields may be datetimes."""
    if not value:
        return None
    text = str(value)
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _optional_moment(
    raw: dict[str, Any], field: str, name: str, notes: list[str]
) -> datetime | None:
    """An optional date of the subscription; one that cannot be read is noted, not fatal."""
    try:
        return _moment(raw.get(field))
    except ValueError:
        notes.append(
            f"subscription {name}: {field} {str(raw.get(field))[:40]!r} unreadable, ignored"
        )
        return None


def _start_date(raw: dict[str, Any], name: str, notes: list[str]) -> datetime:
    """The subscription's start: its own start date, else the next best date, noted."""
    for field in START_DATE_FIELDS:
        start = _optional_moment(raw, field, name, notes)
        if start is None:
            continue
        if field not in START_DATE_FIELDS[:2]:
            notes.append(
                f"subscription {name}: no subscriptionStartDate or contractEffectiveDate; "
                f"start taken from {field} ({start.date()})"
            )
        return start
    notes.append(f"subscription {name}: no start date; taken as started before any charge")
    return UNKNOWN_START


def _subscription(raw: dict[str, Any], account_currency: str, notes: list[str]) -> Subscription:
    plans = [p for p in raw.get("ratePlans") or [] if p.get("lastChangeType") != "Remove"]
    recurring = [
        charge
        for plan in plans
        for charge in plan.get("ratePlanCharges") or []
        if charge.get("type", "Recurring") == "Recurring"
    ]
    amount = sum((_decimal(c.get("price") or 0, "price") for c in recurring), Decimal("0"))
    period = str(recurring[0].get("billingPeriod") or "Month") if recurring else "Month"
    currency = (recurring[0].get("currency") if recurring else None) or raw.get("currency")
    name = str(raw.get("subscriptionNumber") or raw["id"])
    if CANCELLATION_REQUESTED_FIELD not in raw:
        # The custom field is not defined on this tenant: a request cannot be seen.
        notes.append(
            f"subscription {name}: custom field {CANCELLATION_REQUESTED_FIELD} absent; "
            "no cancellation request read"
        )
    return Subscription(
        subscription_id=name,
        plan=str(plans[0].get("ratePlanName") or plans[0].get("productName")) if plans else "",
        status=str(raw.get("status") or ""),  # Zuora's own values: Active, Cancelled, ...
        amount=quantize_money(amount),
        currency=str(currency or account_currency).lower(),
        billing_period=BILLING_PERIODS.get(period.strip().lower(), period.strip().lower()),
        start_date=_start_date(raw, name, notes),
        cancellation_requested_at=_optional_moment(raw, CANCELLATION_REQUESTED_FIELD, name, notes),
        cancelled_at=_optional_moment(raw, "cancelledDate", name, notes),
    )


__all__ = ["ZuoraBilling", "dumps_json"]
