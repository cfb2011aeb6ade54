"""Sign and post a sample Stripe event to a running API's webhook, as Stripe would.

  python utils/send_stripe_event.py                        a chargeback from the sandbox
  python utils/send_stripe_event.py --type radar.early_fraud_warning.created
  python utils/send_stripe_event.py --type charge.dispute.closed --status lost
  python utils/send_stripe_event.py --object-id dp_... --charge ch_...

The event is signed with STRIPE_WEBHOOK_SECRET (the API's own setting) and posted to
`--url` (default http://127.0.0.1:API_PORT/webhooks/stripe). Each post gets a new event id
unless `--event-id` repeats one: the API then answers that it saw it already.
Exit codes: 0 accepted (2xx), 1 refused by the API, 2 a configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.integrations.stripe_webhooks import sign_payload  # noqa: E402
from services.sandbox.data import load_dataset  # noqa: E402
from services.settings import Settings  # noqa: E402

TYPES = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "radar.early_fraud_warning.created",
)


def sample_object(
    kind: str, object_id: str | None, charge: str | None, status: str
) -> dict[str, Any]:
    """The event's `data.object`: the given ids, else the sandbox's first sample."""
    data = load_dataset(datetime.now(UTC))
    if kind.startswith("radar."):
        warning = next(iter(data.early_fraud_warnings.values()), None)
        return {
            "id": object_id
            or (warning.warning_id if warning else f"issfr_{uuid.uuid4().hex[:14]}"),
            "object": "radar.early_fraud_warning",
            "charge": charge or (warning.charge_id if warning else None),
            "actionable": True,
            "fraud_type": warning.fraud_type if warning else "unauthorized_use_of_card",
            "created": int(time.time()),
            "livemode": False,
        }
    dispute = next(iter(data.disputes.values()), None)
    return {
        "id": object_id or (dispute.dispute_id if dispute else f"dp_{uuid.uuid4().hex[:14]}"),
        "object": "dispute",
        "charge": charge or (dispute.charge_id if dispute else None),
        "amount": int((dispute.amount if dispute else 0) * 100),
        "currency": dispute.currency if dispute else "usd",
        "reason": dispute.reason if dispute else "general",
        "status": status,
        "created": int(time.time()),
        "livemode": False,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="send_stripe_event.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--type", default=TYPES[0], choices=TYPES)
    parser.add_argument("--object-id", help="the dispute (dp_...) or warning (issfr_...) id")
    parser.add_argument("--charge", help="the charge id (default: the sample's)")
    parser.add_argument("--status", default="needs_response", help="the dispute's status")
    parser.add_argument("--event-id", help="reuse an event id (default: a new one)")
    parser.add_argument("--url", help="the webhook URL (default: this machine's API)")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except Exception as exc:  # a bad .env value: one line, no traceback
        print(f"configuration error: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 2
    if settings.stripe_webhook_secret is None:
        print("configuration error: set STRIPE_WEBHOOK_SECRET (the API's too)", file=sys.stderr)
        return 2
    url = args.url or f"http://127.0.0.1:{settings.api_port}/webhooks/stripe"
    event = {
        "id": args.event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": args.type,
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": sample_object(args.type, args.object_id, args.charge, args.status)},
    }
    payload = json.dumps(event).encode()
    secret = settings.stripe_webhook_secret.get_secret_value()
    headers = {
        "Stripe-Signature": sign_payload(payload, secret, timestamp=int(time.time())),
        "Content-Type": "application/json",
    }
    try:
        response = httpx.post(url, content=payload, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(
            f"configuration error: no API at {url} ({type(exc).__name__}); is it running?",
            file=sys.stderr,
        )
        return 2
    target = event["data"]["object"]["id"]
    print(f"{event['id']} {args.type} {target}: HTTP {response.status_code} {response.text}")
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
