"""Stripe webhook signatures: verified with the Stripe SDK, signed for tests and operators.

Stripe signs `f"{t}.{body}"` with HMAC-SHA256 under the endpoint's secret (`whsec_...`) and
sends `Stripe-Signature: t=<unix time>,v1=<hex digest>`. Verification goes through the SDK
(`stripe.WebhookSignature.verify_header`) with its default tolerance of 300 s: a signature
older than that is refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

import stripe

from services.errors import InvalidRequestError
from services.settings import ConfigurationError

DEFAULT_TOLERANCE_SECONDS: int = stripe.Webhook.DEFAULT_TOLERANCE
SIGNATURE_HEADER = "Stripe-Signature"

SignatureFailure = Literal["missing", "invalid", "stale", "malformed"]


class WebhookSignatureError(InvalidRequestError):
    """A webhook whose signature is missing, wrong or stale, or whose body is no event.

    `reason` is one of missing, invalid, stale, malformed; the message never holds the body.
    """

    status_code = 400

    def __init__(self, reason: SignatureFailure) -> None:
        what = "body is not a Stripe event" if reason == "malformed" else f"signature {reason}"
        super().__init__(f"stripe webhook: {what}")
        self.reason: SignatureFailure = reason


def verify_webhook(
    payload: bytes,
    signature_header: str | None,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """Verify the `Stripe-Signature` of a raw webhook body and return the event it holds.

    Raises WebhookSignatureError (an InvalidRequestError, HTTP 400) with reason
    `missing`, `invalid`, `stale` or `malformed`.
    """
    if not signature_header or not signature_header.strip():
        raise WebhookSignatureError("missing")
    if not secret:
        # The operator's error, not the sender's: never accept an event unverified.
        raise ConfigurationError("STRIPE_WEBHOOK_SECRET is required to verify Stripe webhooks")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookSignatureError("invalid") from None
    try:
        stripe.WebhookSignature.verify_header(text, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError:
        raise WebhookSignatureError(_failure(text, signature_header, secret)) from None
    try:
        event = json.loads(text)
    except ValueError:
        raise WebhookSignatureError("malformed") from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
    ):
        raise WebhookSignatureError("malformed")
    return event


def _failure(text: str, header: str, secret: str) -> SignatureFailure:
    # The SDK checks the signature before the age; without the age check (tolerance 0) a
    # header that passes was refused only for being too old.
    try:
        stripe.WebhookSignature.verify_header(text, header, secret, 0)
    except stripe.SignatureVerificationError:
        return "invalid"
    return "stale"


def sign_payload(payload: bytes, secret: str, *, timestamp: int) -> str:
    """A valid `Stripe-Signature` header value for `payload` signed at `timestamp`."""
    signed = str(timestamp).encode() + b"." + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "WebhookSignatureError",
    "sign_payload",
    "verify_webhook",
]
