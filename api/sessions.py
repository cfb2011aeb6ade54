"""Dashboard session cookies: signed, expiring, holding only an API key's id."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from services.review.links import Signer
from services.review.reviewers import Reviewer

SESSION_COOKIE = "pa_session"
SESSION_TTL = timedelta(hours=8)


class SessionSigner:
    """Signs and reads dashboard session cookies, and derives their CSRF tokens."""

    def __init__(self, secret: bytes) -> None:
        self._signer = Signer(secret, purpose="dashboard-session")
        self._csrf_key = hmac.new(secret, b"payments-agent:csrf", hashlib.sha256).digest()

    def issue(self, reviewer: Reviewer, *, now: datetime) -> str:
        return self._signer.sign(
            {"kid": reviewer.key_id, "exp": int((now + SESSION_TTL).timestamp())}
        )

    def key_id(self, cookie: str, *, now: datetime) -> int | None:
        """The API key id a valid, unexpired cookie stands for."""
        payload = self._signer.unsign(cookie)
        if payload is None:
            return None
        try:
            key_id, expires = int(payload["kid"]), int(payload["exp"])
        except (KeyError, TypeError, ValueError):
            return None
        return key_id if now.timestamp() < expires else None

    def csrf(self, cookie: str) -> str:
        return hmac.new(self._csrf_key, cookie.encode(), hashlib.sha256).hexdigest()[:40]

    def check_csrf(self, cookie: str, token: str) -> bool:
        return hmac.compare_digest(self.csrf(cookie).encode(), token.encode())
