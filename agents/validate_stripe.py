"""Validation rules about Stripe disputes: for chargebacks, fraud warnings, and refunds.

A charge under dispute is never refunded: the bank has already taken the money back, and a
refund would pay it a second time. Only a dispute the merchant won (or a warning closed
without a dispute) leaves the charge refundable again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from models.domain import Charge

Check = tuple[str, Callable[[], tuple[bool, str]]]

# Dispute statuses after which a refund no longer pays anything twice.
SETTLED_FOR_MERCHANT = ("won", "warning_closed")
# Statuses in which Stripe still takes the merchant's evidence.
AWAITING_RESPONSE = ("needs_response", "warning_needs_response")


def charge_refund_safe(dispute: dict[str, Any] | None) -> tuple[bool, str]:
    """True when no dispute stands against a refund of the charge, with the detail."""
    if dispute is None:
        return True, "no dispute on the charge"
    status = str(dispute.get("status") or "unknown")
    detail = f"charge is disputed: {dispute.get('dispute_id')} ({dispute.get('reason')}, {status})"
    return status in SETTLED_FOR_MERCHANT, detail


def chargeback_checks(dispute: dict[str, Any] | None, now: datetime) -> list[Check]:
    """A chargeback run answers a dispute that still takes evidence, before its deadline."""

    def due() -> datetime | None:
        raw = (dispute or {}).get("evidence_due_by")
        return datetime.fromisoformat(str(raw)) if raw else None

    return [
        ("dispute_exists", lambda: (dispute is not None, "dispute read from Stripe")),
        (
            "dispute_needs_response",
            lambda: (
                str((dispute or {}).get("status")) in AWAITING_RESPONSE,
                f"status {(dispute or {}).get('status')}",
            ),
        ),
        (
            "evidence_deadline_ahead",
            lambda: (
                (deadline := due()) is not None and deadline > now,
                f"evidence due by {due()}",
            ),
        ),
    ]


def fraud_warning_checks(
    warning: dict[str, Any] | None, dispute: dict[str, Any] | None, charge: Charge | None
) -> list[Check]:
    """A warning is refunded when it is actionable and the charge is not yet disputed."""
    return [
        (
            "warning_actionable",
            lambda: (
                bool((warning or {}).get("actionable")),
                f"actionable: {(warning or {}).get('actionable')}",
            ),
        ),
        ("charge_not_disputed", lambda: charge_refund_safe(dispute)),
        (
            "amount_within_refundable",
            lambda: (
                charge is not None and charge.refundable > Decimal("0"),
                f"refundable {charge.refundable if charge else 0}",
            ),
        ),
    ]
