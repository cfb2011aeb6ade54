"""FastAPI dependencies: everything a route needs, from the app's composed services."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request

from api.sessions import SessionSigner
from services.persistence.store import WorkflowStore
from services.review.links import ReviewLinkSigner, UsedReviewTokens, review_link_secrets
from services.review.reviewers import ReviewerKeys
from services.settings import Settings


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _process_sessions() -> SessionSigner:
    return SessionSigner(secrets.token_bytes(32))


@dataclass(frozen=True)
class StripeWebhook:
    """The webhook's signing secret, and how a verified event reaches the dispute queue."""

    secret: str
    enqueue: Callable[[str], Awaitable[None]]


@dataclass
class ApiServices:
    """What the composition root hands to the API.

    `backends` holds the kind of each backend (`salesforce`, `sandbox`, ...), never a
    URL or a credential. `review_links` is None when REVIEW_LINK_SECRET is unset: every
    review link is then refused (403). `sessions` signs dashboard cookies; with a random
    secret by default, so that sessions end when the process does.
    """

    store: WorkflowStore
    backends: dict[str, str]
    clock: Callable[[], datetime] = _utc_now
    extras: dict[str, Any] = field(default_factory=dict)
    review_links: ReviewLinkSigner | None = None
    sessions: SessionSigner = field(default_factory=_process_sessions, repr=False)
    secure_cookies: bool = False
    # Whether the drafter (`backends["drafter"]`) answered its start-up check; None: unchecked.
    drafter_reachable: bool | None = None
    # Links to the case in the CRM and the charge in the payment system (Settings).
    crm_case_url_template: str | None = None
    payment_charge_url_template: str | None = None
    # POST /webhooks/stripe: off (404) without STRIPE_WEBHOOK_SECRET.
    stripe_webhook: StripeWebhook | None = None
    reviewer_keys: ReviewerKeys = field(init=False)
    used_tokens: UsedReviewTokens = field(init=False)

    def __post_init__(self) -> None:
        # `backends` is shown to reviewers (/health/backends, the dashboard): kinds only.
        leaking = [k for k, v in self.backends.items() if "://" in v or "@" in v]
        if leaking:
            raise ValueError(f"backends must name kinds, not locations: {', '.join(leaking)}")
        self.reviewer_keys = ReviewerKeys(self.store.engine)
        self.used_tokens = UsedReviewTokens(self.store.engine)


def build_api_services(
    settings: Settings, *, store: WorkflowStore, backends: dict[str, str]
) -> ApiServices:
    """The API's services from the settings: review-link verification and session signing."""
    keys = review_link_secrets(settings)
    ttl = timedelta(hours=settings.review_link_ttl_hours)
    return ApiServices(
        store=store,
        backends=backends,
        review_links=ReviewLinkSigner(keys, ttl=ttl) if keys is not None else None,
        # The link secrets under the sessions' own salt: sessions outlive a restart and a
        # rotation. Without a secret they end with the process.
        sessions=SessionSigner(keys) if keys is not None else _process_sessions(),
        secure_cookies=settings.public_base_url.startswith("https://"),
        crm_case_url_template=settings.crm_case_url_template,
        payment_charge_url_template=settings.payment_charge_url_template,
    )


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def get_store(services: Annotated[ApiServices, Depends(get_services)]) -> WorkflowStore:
    return services.store


Services = Annotated[ApiServices, Depends(get_services)]
Store = Annotated[WorkflowStore, Depends(get_store)]
