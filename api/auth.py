"""Who is asking: reviewer API keys for REST, a signed session cookie for the dashboard.

REST clients send `Authorization: Bearer <key>` or `X-API-Key: <key>`; both are declared as
security schemes, so /docs can authorise with either. A missing or wrong key is our own 401
with a message, never FastAPI's default error. The dashboard's login form takes the same
key once and sets an HttpOnly, SameSite=Lax cookie holding only the key's id, signed and
expiring; every request re-checks that the key has not been revoked since. Forms posted
from a session also carry a CSRF token bound to the cookie. Keys and cookies are never
logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.deps import Services
from api.sessions import SESSION_COOKIE
from services.errors import AuthenticationError
from services.review.reviewers import Reviewer

bearer_key = HTTPBearer(
    scheme_name="ReviewerKeyBearer",
    description="A reviewer API key (`utils/manage_reviewers.py create`), as a Bearer token.",
    auto_error=False,
)
header_key = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ReviewerKeyHeader",
    description="A reviewer API key, in the X-API-Key header.",
    auto_error=False,
)

BearerKey = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_key)]
HeaderKey = Annotated[str | None, Depends(header_key)]


async def require_api_reviewer(
    services: Services, bearer: BearerKey, header: HeaderKey
) -> Reviewer:
    """The reviewer behind the request's API key; 401 without a valid, unrevoked key."""
    key = bearer.credentials.strip() if bearer is not None else (header or "").strip()
    if not key:
        raise AuthenticationError(
            "authentication required: send 'Authorization: Bearer <reviewer key>' "
            "or 'X-API-Key: <reviewer key>'"
        )
    reviewer = await services.reviewer_keys.verify(key)
    if reviewer is None:
        raise AuthenticationError("invalid or revoked API key")
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
