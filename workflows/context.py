"""The runtime context every graph node receives (LangGraph `context_schema`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from services.drafting.protocols import ResolutionDrafter
from services.integrations.protocols import (
    BillingClient,
    CRMClient,
    DisputeGateway,
    PaymentGateway,
)
from services.knowledge.protocols import PolicyStore
from services.persistence.store import WorkflowStore
from services.review.protocols import ReviewNotifier


@dataclass(frozen=True)
class ReviewRules:
    """When a proposal may skip review, and when it needs two reviewers."""

    auto_approve_max_amount: Decimal = Decimal("0")
    auto_approve_min_confidence: float = 0.9
    max_disputes_90d: int = 3
    dual_approval_min_amount: Decimal = Decimal("500")
    # Early fraud warnings: refunded without a reviewer up to this amount (0: never).
    fraud_warning_auto_refund_max: Decimal = Decimal("0")


def utc_now() -> datetime:
    return datetime.now(UTC)


T = TypeVar("T")


class Retrier(Protocol):
    """Runs one external call under a retry policy (timeouts, 429, 5xx)."""

    async def __call__(self, call: Callable[[], Awaitable[T]], *, operation: str) -> T: ...


async def call_once(call: Callable[[], Awaitable[T]], *, operation: str) -> T:
    """The retrier that does not retry."""
    return await call()


@dataclass(frozen=True)
class WorkflowContext:
    crm: CRMClient
    billing: BillingClient
    payments: PaymentGateway
    knowledge: PolicyStore
    drafter: ResolutionDrafter
    notifier: ReviewNotifier
    store: WorkflowStore
    review_rules: ReviewRules
    dispute_window_days: int = 120
    clock: Callable[[], datetime] = utc_now
    retry: Retrier = call_once
    # Stripe's disputes and fraud warnings (the payment backend): chargebacks, and the
    # check that a charge is not under dispute before any refund.
    disputes: DisputeGateway | None = None
    # The integrations served by the sandbox (ALLOW_MIXED_BACKENDS): said on every review.
    sandbox_systems: tuple[str, ...] = ()
    # Told when a resolution is stored, so caches keyed on similar cases can be dropped.
    on_resolution_stored: Callable[[str], Awaitable[None]] | None = None
