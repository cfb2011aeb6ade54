"""FastAPI dependencies: everything a route needs, from the app's composed services."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from api.sessions import SessionSigner
from services.persistence.store import WorkflowStore
from services.review.links import ReviewLinkSigner, UsedReviewTokens
from services.review.notifications import build_review_links
from services.review.reviewers import ReviewerKeys
from services.settings import Settings


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _random_secret() -> bytes:
    return secrets.token_bytes(32)


@dataclass
class ApiServices:
    """What the composition root hands to the API.

    `review_links` is None when REVIEW_LINK_SECRET is unset: every review link is then
    refused (403). `session_secret` signs dashboard cookies; random by default, so that
    sessions end when the process does.
    """

    store: WorkflowStore
    backends: dict[str, str]
    clock: Callable[[], datetime] = _utc_now
    extras: dict[str, Any] = field(default_factory=dict)
    review_links: ReviewLinkSigner | None = None
    session_secret: bytes = field(default_factory=_random_secret, repr=False)
    secure_cookies: bool = False
    reviewer_keys: ReviewerKeys = field(init=False)
    used_tokens: UsedReviewTokens = field(init=False)
    sessions: SessionSigner = field(init=False)

    def __post_init__(self) -> None:
        self.reviewer_keys = ReviewerKeys(self.store.engine)
        self.used_tokens = UsedReviewTokens(self.store.engine)
        self.sessions = SessionSigner(self.session_secret)


def build_api_services(
    settings: Settings, *, store: WorkflowStore, backends: dict[str, str]
) -> ApiServices:
    """The API's services from the settings: review-link verification and session signing."""
    links = build_review_links(settings)
    session_secret = (
        hmac.new(
            settings.review_link_secret.get_secret_value().encode(),
            b"payments-agent:session-secret",
            hashlib.sha256,
        ).digest()
        if settings.review_link_secret is not None
        else _random_secret()
    )
    return ApiServices(
        store=store,
        backends=backends,
        review_links=links,
        session_secret=session_secret,
        secure_cookies=settings.public_base_url.startswith("https://"),
    )


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def get_store(services: Annotated[ApiServices, Depends(get_services)]) -> WorkflowStore:
    return services.store


Services = Annotated[ApiServices, Depends(get_services)]
Store = Annotated[WorkflowStore, Depends(get_store)]
