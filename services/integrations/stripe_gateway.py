"""Stripe payments through the official SDK's `StripeClient`, asynchronously.

Every refund carries its idempotency key twice: as the `Idempotency-Key` header, which
Stripe honours for 24 hours only, and in the refund's `metadata["idempotency_key"]`, which
stays. `find_refund` reads the metadata, so a retry after the key has expired finds the
refund already made instead of making a second one.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlsplit

import stripe
from stripe.params import DisputeUpdateParams, DisputeUpdateParamsEvidence, RefundListParams

from models.domain import (
    Charge,
    Dispute,
    EarlyFraudWarning,
    RefundResult,
    RiskLevel,
    from_minor_units,
    to_minor_units,
)
from services.errors import (
    AuthenticationError,
    ConflictError,
    IntegrationError,
    InvalidRequestError,
    NotFoundError,
    PaymentsAgentError,
)
from services.integrations.protocols import ChargeDisputedError
from services.retry import parse_retry_after

logger = logging.getLogger(__name__)

SYSTEM = "stripe"
STRIPE_API_HOST = "api.stripe.com"
STRIPE_FILES_BASE = "https://files.stripe.com"
MAX_LIST_LIMIT = 100
METADATA_VALUE_MAX_CHARS = 500
IDEMPOTENCY_KEY_MAX_CHARS = 255
# A charge has one dispute, rarely more (an inquiry, then a chargeback): one page is plenty.
DISPUTES_OF_CHARGE_LIMIT = 10
# Refund statuses in which no money left (or will leave) the account.
SETTLED_WITHOUT_MONEY = frozenset({"failed", "canceled"})
RISK_LEVELS: dict[str, RiskLevel] = {
    "normal": "normal",
    "elevated": "elevated",
    "highest": "highest",
}
# The domain converts amounts with two decimals; these currencies have zero or three.
NON_TWO_DECIMAL_CURRENCIES = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx"}
    | {"vnd", "vuv", "xaf", "xof", "xpf", "bhd", "jod", "kwd", "omr", "tnd"}
)


def new_stripe_client(
    *,
    secret_key: str,
    api_base: str,
    http_client: stripe.HTTPClient,
    files_base: str | None = None,
) -> stripe.StripeClient:
    """A StripeClient for `api_base` whose retries are left to the project's RetryPolicy.

    File uploads go to Stripe's own files host (files.stripe.com) when `api_base` is
    Stripe's API, and otherwise to `api_base` itself (a stand-in serves both), unless
    `files_base` says where.
    """
    api = api_base.rstrip("/")
    if files_base is None:
        files_base = STRIPE_FILES_BASE if urlsplit(api).netloc == STRIPE_API_HOST else api
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api, "files": files_base.rstrip("/")},
        http_client=http_client,
        max_network_retries=0,
    )


class StripeGateway:
    """PaymentGateway and DisputeGateway backed by Stripe: charges, refunds, disputes,
    evidence files and Radar early fraud warnings."""

    backend = "stripe"

    def __init__(self, *, client: stripe.StripeClient) -> None:
        self._stripe = client

    async def list_charges(self, *, customer_id: str, limit: int) -> list[Charge]:
        """The customer's most recent charges, newest first."""
        limit = max(1, min(limit, MAX_LIST_LIMIT))
        try:
            # The SDK's raw request: the same client, auth and errors, but the page stays
            # the JSON it was (read on every dispute: no StripeObject tree built and undone).
            page = await self._stripe.raw_request_async(
                "get", "/v1/charges", customer=customer_id, limit=limit
            )
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"charges of customer {customer_id}") from exc
        charges = [_charge(item) for item in page.data.get("data", [])]
        return sorted(charges, key=lambda c: c.created_at, reverse=True)

    async def get_charge(self, *, charge_id: str) -> Charge:
        """One charge with its refunded amount and Radar's risk assessment."""
        try:
            charge = await self._stripe.v1.charges.retrieve_async(charge_id)
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"charge {charge_id}") from exc
        return _charge(charge.to_dict())

    async def refund(
        self, *, charge_id: str, amount: Decimal, currency: str, reason: str, idempotency_key: str
    ) -> RefundResult:
        """Refund `amount` of the charge; Stripe replays the first result for a repeated key."""
        _require_two_decimals(currency)
        cents = to_minor_units(amount)
        if cents <= 0:
            raise InvalidRequestError("refund amount must be positive")
        _require_key(idempotency_key)
        try:
            refund = await self._stripe.v1.refunds.create_async(
                params={
                    "charge": charge_id,
                    "amount": cents,
                    "reason": "requested_by_customer",
                    "metadata": {
                        "resolution_reason": reason[:METADATA_VALUE_MAX_CHARS],
                        "idempotency_key": idempotency_key,
                    },
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"refund of charge {charge_id}") from exc
        result = _refund(refund.to_dict(), charge_id=charge_id, idempotency_key=idempotency_key)
        if result.currency != currency.lower():
            logger.warning(
                "refund %s is in %s, requested %s", result.refund_id, result.currency, currency
            )
        return result

    async def find_refund(self, *, charge_id: str, idempotency_key: str) -> RefundResult | None:
        """The charge's refund whose metadata carries this key, reading every page.

        Should several carry it (a key reused after it expired at Stripe), a live one
        (pending, requires_action, succeeded) wins, the oldest first: that is the money
        that moved or is moving. Otherwise the newest failed or canceled one.
        """
        matches: list[dict[str, Any]] = []
        params: RefundListParams = {"charge": charge_id, "limit": MAX_LIST_LIMIT}
        while True:
            try:
                page = await self._stripe.v1.refunds.list_async(params=params)
            except stripe.StripeError as exc:
                raise _translate(exc, subject=f"refunds of charge {charge_id}") from exc
            items = [item.to_dict() for item in page.data]
            matches.extend(
                item
                for item in items
                if (item.get("metadata") or {}).get("idempotency_key") == idempotency_key
            )
            if not page.has_more or not items:
                break
            params = {
                "charge": charge_id,
                "limit": MAX_LIST_LIMIT,
                "starting_after": items[-1]["id"],
            }
        if not matches:
            return None
        # Stripe lists newest first.
        live = [m for m in matches if m.get("status") not in SETTLED_WITHOUT_MONEY]
        chosen = live[-1] if live else matches[0]
        return _refund(chosen, charge_id=charge_id, idempotency_key=idempotency_key)

    async def get_refund(self, *, refund_id: str) -> RefundResult:
        """One refund as Stripe has it now: its status and, when failed, why."""
        try:
            refund = await self._stripe.v1.refunds.retrieve_async(refund_id)
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"refund {refund_id}") from exc
        data = refund.to_dict()
        key = (data.get("metadata") or {}).get("idempotency_key")
        return _refund(data, charge_id="", idempotency_key=str(key or ""))

    async def get_dispute(self, *, dispute_id: str) -> Dispute:
        """One dispute as Stripe has it now (`GET /v1/disputes/{id}`)."""
        try:
            dispute = await self._stripe.v1.disputes.retrieve_async(dispute_id)
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"dispute {dispute_id}") from exc
        return _dispute(dispute.to_dict())

    async def dispute_of_charge(self, *, charge_id: str) -> Dispute | None:
        """The charge's newest dispute (`GET /v1/disputes?charge=`), or None."""
        try:
            page = await self._stripe.v1.disputes.list_async(
                params={"charge": charge_id, "limit": DISPUTES_OF_CHARGE_LIMIT}
            )
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"disputes of charge {charge_id}") from exc
        disputes = [_dispute(item.to_dict()) for item in page.data]
        if not disputes:
            return None
        return max(disputes, key=lambda d: d.created_at)

    async def upload_evidence_file(
        self, *, filename: str, content: bytes, idempotency_key: str
    ) -> str:
        """Upload `content` through the Files API with purpose `dispute_evidence`."""
        _require_key(idempotency_key)
        upload = io.BytesIO(content)
        # The SDK names the multipart part after the object's `name`.
        upload.name = filename
        try:
            created = await self._stripe.v1.files.create_async(
                params={"purpose": "dispute_evidence", "file": upload},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"evidence file {filename}") from exc
        return str(created.id)

    async def submit_evidence(
        self, *, dispute_id: str, evidence: dict[str, str], idempotency_key: str
    ) -> Dispute:
        """Submit the evidence to the issuer (`POST /v1/disputes/{id}`, `submit=true`)."""
        _require_key(idempotency_key)
        if not evidence:
            raise InvalidRequestError("evidence must name at least one field")
        params: DisputeUpdateParams = {
            "evidence": cast(DisputeUpdateParamsEvidence, dict(evidence)),
            "submit": True,
        }
        try:
            dispute = await self._stripe.v1.disputes.update_async(
                dispute_id, params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"evidence of dispute {dispute_id}") from exc
        return _dispute(dispute.to_dict())

    async def accept_dispute(self, *, dispute_id: str, idempotency_key: str) -> Dispute:
        """Close the dispute, accepting it as lost (`POST /v1/disputes/{id}/close`)."""
        _require_key(idempotency_key)
        try:
            dispute = await self._stripe.v1.disputes.close_async(
                dispute_id, options={"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"close of dispute {dispute_id}") from exc
        return _dispute(dispute.to_dict())

    async def get_early_fraud_warning(self, *, warning_id: str) -> EarlyFraudWarning:
        """One Radar early fraud warning (`GET /v1/radar/early_fraud_warnings/{id}`)."""
        try:
            warning = await self._stripe.v1.radar.early_fraud_warnings.retrieve_async(warning_id)
        except stripe.StripeError as exc:
            raise _translate(exc, subject=f"early fraud warning {warning_id}") from exc
        return _early_fraud_warning(warning.to_dict())


def _id_of(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("id")
    return str(value or "")


def _dispute(data: Mapping[str, Any]) -> Dispute:
    currency = str(data["currency"]).lower()
    if currency in NON_TWO_DECIMAL_CURRENCIES:
        raise IntegrationError(
            f"dispute {data.get('id')} is in unsupported currency {currency}",
            system=SYSTEM,
            retryable=False,
        )
    details = data.get("evidence_details") or {}
    # Stripe reports 0 (older versions null) when the issuer allows no response.
    due_by = details.get("due_by")
    return Dispute(
        dispute_id=str(data["id"]),
        charge_id=_id_of(data.get("charge")),
        amount=from_minor_units(int(data["amount"])),
        currency=currency,
        reason=str(data.get("reason") or "general"),
        status=str(data["status"]),
        evidence_due_by=datetime.fromtimestamp(int(due_by), UTC) if due_by else None,
        is_charge_refundable=bool(data.get("is_charge_refundable", False)),
        created_at=datetime.fromtimestamp(int(data["created"]), UTC),
        submission_count=int(details.get("submission_count") or 0),
        has_evidence=bool(details.get("has_evidence", False)),
        past_due=bool(details.get("past_due", False)),
    )


def _early_fraud_warning(data: Mapping[str, Any]) -> EarlyFraudWarning:
    return EarlyFraudWarning(
        warning_id=str(data["id"]),
        charge_id=_id_of(data.get("charge")),
        actionable=bool(data.get("actionable", False)),
        fraud_type=str(data.get("fraud_type") or "misc"),
        created_at=datetime.fromtimestamp(int(data["created"]), UTC),
    )


def _require_key(idempotency_key: str) -> None:
    if not idempotency_key or len(idempotency_key) > IDEMPOTENCY_KEY_MAX_CHARS:
        raise InvalidRequestError("idempotency key must have 1 to 255 characters")


def _refund(data: Mapping[str, Any], *, charge_id: str, idempotency_key: str) -> RefundResult:
    refunded_charge = data.get("charge")
    if isinstance(refunded_charge, Mapping):
        refunded_charge = refunded_charge.get("id")
    failure = data.get("failure_reason")
    return RefundResult(
        refund_id=str(data["id"]),
        charge_id=str(refunded_charge or charge_id),
        amount=from_minor_units(int(data["amount"])),
        currency=str(data["currency"]).lower(),
        status=str(data.get("status") or "pending"),
        idempotency_key=idempotency_key,
        failure_reason=str(failure) if failure else None,
    )


def _require_two_decimals(currency: str) -> None:
    if currency.lower() in NON_TWO_DECIMAL_CURRENCIES:
        raise InvalidRequestError(f"currency {currency} is not supported (not two-decimal)")


def _charge(data: Mapping[str, Any]) -> Charge:
    currency = str(data["currency"]).lower()
    if currency in NON_TWO_DECIMAL_CURRENCIES:
        raise IntegrationError(
            f"charge {data.get('id')} is in unsupported currency {currency}",
            system=SYSTEM,
            retryable=False,
        )
    customer = data.get("customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    outcome = data.get("outcome") or {}
    risk_score = outcome.get("risk_score")
    return Charge(
        charge_id=str(data["id"]),
        customer_id=str(customer or ""),
        amount=from_minor_units(int(data["amount"])),
        amount_refunded=from_minor_units(int(data.get("amount_refunded") or 0)),
        currency=currency,
        refunded=bool(data.get("refunded", False)),
        status=str(data.get("status") or ""),
        description=str(data.get("description") or ""),
        created_at=datetime.fromtimestamp(int(data["created"]), UTC),
        risk_level=RISK_LEVELS.get(str(outcome.get("risk_level")), "unknown"),
        risk_score=int(risk_score) if risk_score is not None else None,
        disputed=bool(data["disputed"]) if "disputed" in data else None,
    )


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def _translate(exc: stripe.StripeError, *, subject: str) -> PaymentsAgentError:
    """Map an SDK error to the project's exception; the vendor's auth messages are dropped."""
    status = exc.http_status
    code = exc.code
    message = exc.user_message or type(exc).__name__
    headers = exc.headers
    if isinstance(exc, stripe.APIConnectionError):
        return IntegrationError(
            f"{subject}: network error or timeout", system=SYSTEM, retryable=True
        )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError) or status in (401, 403):
        return AuthenticationError(f"{SYSTEM}: credentials rejected (HTTP {status})")
    if isinstance(exc, stripe.IdempotencyError):
        # The key was used before with different parameters: not the same decision.
        return ConflictError(f"{SYSTEM}: {subject}: {message}")
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return IntegrationError(
            f"{subject}: rate limited",
            system=SYSTEM,
            retryable=True,
            retry_after=parse_retry_after(_header(headers, "retry-after")),
            status=status,
        )
    param = exc.error.param if exc.error is not None else None
    if param and param.startswith("evidence["):
        # A file field given text, an unknown field, a text over its limit: the draft's
        # fault, named so a reviewer can fix that field.
        return InvalidRequestError(f"{SYSTEM}: {subject}: {param}: {message}")
    if status == 404 or code == "resource_missing":
        return NotFoundError(f"{SYSTEM}: {subject}: {message}")
    if code == "charge_already_refunded":
        return ConflictError(f"{SYSTEM}: {subject}: {message}")
    if code == "charge_disputed":
        # Refunding a charge under dispute would pay the customer twice: never retried.
        return ChargeDisputedError(
            f"{SYSTEM}: {subject}: the charge is disputed (a chargeback) and cannot be "
            f"refunded; answer the dispute instead ({message})"
        )
    should_retry = _header(headers, "stripe-should-retry")
    if status is None or status >= 500 or status == 409:
        return IntegrationError(
            f"{subject}: HTTP {status}: {message}",
            system=SYSTEM,
            retryable=should_retry != "false",
            retry_after=parse_retry_after(_header(headers, "retry-after")),
            status=status,
        )
    if isinstance(exc, stripe.InvalidRequestError):
        return InvalidRequestError(f"{SYSTEM}: {subject}: {message}")
    return IntegrationError(
        f"{subject}: HTTP {status}: {message}", system=SYSTEM, retryable=False, status=status
    )


__all__ = ["StripeGateway", "new_stripe_client"]
