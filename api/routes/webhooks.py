"""POST /webhooks/stripe: Stripe's events in, verified, recorded once, put on the queue.

Public (no reviewer key): the `Stripe-Signature` header, checked with STRIPE_WEBHOOK_SECRET
through the Stripe SDK (300 s tolerance), is the credential. A missing, invalid or stale
signature is a 400, logged without the body. An event id seen before is a 2xx that changes
nothing; a type this system does not handle is a 2xx, recorded as ignored. A handled event
goes on the dispute queue as a `stripe.event` message (models/events.py), so chargebacks
and early fraud warnings take the same intake and run model as CRM disputes. The endpoint
does nothing slow: the run reads the dispute, the charge and the warning from Stripe.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import Services
from api.schemas import WebhookReceipt, error_responses
from models.events import HANDLED_STRIPE_EVENTS, StripeEventMessage
from services.errors import InvalidRequestError
from services.integrations.stripe_webhooks import verify_webhook
from services.persistence.stripe_events import StripeEventLog

router = APIRouter(tags=["webhooks"])
log = logging.getLogger(__name__)

MAX_BODY_BYTES = 512 * 1024  # Stripe's events are a few kB


@router.post(
    "/webhooks/stripe",
    response_model=WebhookReceipt,
    responses=error_responses(
        400,
        404,
        413,
        503,
        descriptions={
            400: "Missing, invalid or stale Stripe-Signature",
            404: "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)",
            413: "Body too large",
            503: "The dispute queue is unavailable; Stripe retries",
        },
    ),
)
async def stripe_webhook(request: Request, services: Services) -> JSONResponse:
    """Verify and enqueue one Stripe event."""
    hook = services.stripe_webhook
    if hook is None:
        return _answer(404, "Stripe webhooks are not configured: set STRIPE_WEBHOOK_SECRET")
    payload = await request.body()
    if len(payload) > MAX_BODY_BYTES:
        return _answer(413, "body too large")
    try:
        event = verify_webhook(payload, request.headers.get("stripe-signature"), hook.secret)
    except InvalidRequestError as exc:
        log.warning("Stripe webhook refused: %s (%d bytes)", exc.message, len(payload))
        return _answer(400, exc.message)
    event_id, event_type = str(event.get("id") or ""), str(event.get("type") or "")
    obj = (event.get("data") or {}).get("object") or {}
    object_id = str(obj.get("id") or "") or None
    events = StripeEventLog(services.store.engine)
    if event_type not in HANDLED_STRIPE_EVENTS or object_id is None:
        await events.record(
            event_id=event_id, type_=event_type, object_id=object_id, outcome="ignored"
        )
        return JSONResponse({"received": True, "handled": False})
    message = StripeEventMessage(
        type="stripe.event",
        event_id=event_id,
        event_type=event_type,
        object_id=object_id,
        charge_id=_id_of(obj.get("charge")),
        status=obj.get("status") if isinstance(obj.get("status"), str) else None,
        amount=obj.get("amount") if isinstance(obj.get("amount"), int) else None,
        currency=obj.get("currency") if isinstance(obj.get("currency"), str) else None,
    )
    if not await events.record(
        event_id=event_id, type_=event_type, object_id=object_id, outcome="enqueued"
    ):
        return JSONResponse({"received": True, "duplicate": True})
    try:
        await hook.enqueue(message.model_dump_json(exclude_none=True))
    except Exception:  # the queue is down: forget the event so Stripe's retry enqueues it
        log.exception("Stripe event %s could not be enqueued", event_id)
        await events.forget(event_id)
        return _answer(503, "the dispute queue is unavailable; retry later")
    log.info("Stripe event %s (%s) enqueued for %s", event_id, event_type, object_id)
    return JSONResponse({"received": True, "handled": True})


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if isinstance(value, str) and value else None


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)
