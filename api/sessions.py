"""Dashboard session cookies: signed, expiring, holding only an API key's id.

Cookies are itsdangerous tokens signed with the review-link secrets under a salt of their
own (so a cookie never passes for a review link, nor a link for a cookie), verified against
the current and previous secrets. A form's CSRF token is the cookie's signature under
another salt: it binds the form to the session it was rendered for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from itsdangerous import BadData, Signer

from services.review.links import signing_keys, timed_serializer
from services.review.reviewers import Reviewer

SESSION_COOKIE = "pa_session"
SESSION_TTL = timedelta(hours=8)
SESSION_SALT = "payments-agent.dashboard-session"
CSRF_SALT = "payments-agent.csrf"


class SessionSigner:
    """Signs and reads dashboard session cookies, and derives their CSRF tokens."""

    def __init__(self, secret: bytes | Sequence[bytes]) -> None:
        self._keys = signing_keys(secret)
        self._csrf = Signer(self._keys, salt=CSRF_SALT, digest_method=hashlib.sha256)

    def issue(self, reviewer: Reviewer, *, now: datetime) -> str:
        return timed_serializer(self._keys, salt=SESSION_SALT, now=now).dumps(
            {"kid": reviewer.key_id}
        )

    def key_id(self, cookie: str, *, now: datetime) -> int | None:
        """The API key id a valid, unexpired cookie stands for."""
        serializer = timed_serializer(self._keys, salt=SESSION_SALT, now=now)
        try:
            payload = serializer.loads(cookie, max_age=int(SESSION_TTL.total_seconds()))
            return int(payload["kid"])
        except (BadData, KeyError, TypeError, ValueError):
            return None

    def csrf(self, cookie: str) -> str:
        return self._csrf.get_signature(cookie).decode("ascii")

    def check_csrf(self, cookie: str, token: str) -> bool:
        return self._csrf.verify_signature(cookie, token)
