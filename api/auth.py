"""Who is asking: reviewer API keys for REST, a signed session cookie for the dashboard.

REST clients send `Authorization: Bearer <key>` or `X-API-Key: <key>`. The dashboard's
login form takes the same key once and sets an HttpOnly, SameSite=Lax cookie holding
only the key's id and an expiry, HMAC-signed; every request re-checks that the key has not
been revoked since. Forms posted from a session also carry a CSRF token derived from the
cookie. Keys and cookies are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.deps import Services
from api.sessions import SESSION_COOKIE
from services.errors import AuthenticationError
from services.review.reviewers import Reviewer

API_KEY_HEADER = "x-api-key"


def presented_key(request: Request) -> str | None:
    """The API key in the Authorization (Bearer) or X-API-Key header, if any."""
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get(API_KEY_HEADER, "").strip()
    return key or None


async def require_api_reviewer(request: Request, services: Services) -> Reviewer:
    """The reviewer behind the request's API key; 401 without a valid, unrevoked key."""
    key = presented_key(request)
    if key is None:
        raise AuthenticationError(
            "authentication required: send 'Authorization: Bearer <reviewer key>' "
            "or 'X-API-Key: <reviewer key>'"
        )
    reviewer = await services.reviewer_keys.verify(key)
    if reviewer is None:
        raise AuthenticationError("invalid or revoked API key")
    request.state.reviewer = reviewer
    return reviewer


@dataclass(frozen=True)
class PageSession:
    reviewer: Reviewer
    cookie: str
    csrf: str


async def optional_session(request: Request, services: Services) -> PageSession | None:
    """The dashboard session, when the cookie is valid and its key still active."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    key_id = services.sessions.key_id(cookie, now=services.clock())
    if key_id is None:
        return None
    reviewer = await services.reviewer_keys.active(key_id)
    if reviewer is None:
        return None
    return PageSession(reviewer, cookie, services.sessions.csrf(cookie))


ApiReviewer = Annotated[Reviewer, Depends(require_api_reviewer)]
Session = Annotated[PageSession | None, Depends(optional_session)]
