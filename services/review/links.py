"""Signed review links: expiring, single-use tokens bound to one run and one reviewer.

A token is `base64url(claims).base64url(HMAC-SHA256(key, claims))`. The key is derived
from REVIEW_LINK_SECRET and a purpose label, so a review token can never pass for a
dashboard session (which is signed by the same primitive with another purpose). Signatures
are compared in constant time. Single use is enforced in PostgreSQL: a token's nonce is
inserted into `used_review_tokens` when the decision is recorded, and a second insert is a
conflict.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from models.tables import used_review_tokens
from services.errors import ConflictError, ForbiddenError

REVIEW_PURPOSE = "review-link"


class InvalidTokenError(ForbiddenError):
    """A token that was tampered with, has expired, or belongs to another run (403)."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """HMAC-SHA256 signing of small JSON payloads for one purpose."""

    def __init__(self, secret: bytes, *, purpose: str) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._key = hmac.new(secret, f"payments-agent:{purpose}".encode(), hashlib.sha256).digest()

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()

    def sign(self, payload: dict[str, Any]) -> str:
        """Serialise and sign `payload`."""
        body = _b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{_b64encode(self._mac(body))}"

    def unsign(self, token: str) -> dict[str, Any] | None:
        """The payload, or None when the token is malformed or its signature is wrong."""
        if not isinstance(token, str) or len(token) > 4096 or token.count(".") != 1:
            return None
        body, signature = token.split(".")
        try:
            given = _b64decode(signature)
            body.encode("ascii")
        except (binascii.Error, ValueError, UnicodeEncodeError):
            return None
        if not hmac.compare_digest(given, self._mac(body)):
            return None
        try:
            payload = json.loads(_b64decode(body))
        except (binascii.Error, ValueError):
            return None
        return payload if isinstance(payload, dict) else None


@dataclass(frozen=True)
class ReviewClaims:
    """What a valid review token says: who may decide which run, until when."""

    run_id: str
    reviewer: str
    nonce: str
    expires_at: datetime


class ReviewLinkSigner:
    """Issues and verifies review-link tokens."""

    def __init__(self, secret: bytes, *, ttl: timedelta) -> None:
        self._signer = Signer(secret, purpose=REVIEW_PURPOSE)
        self.ttl = ttl

    def issue(self, *, run_id: str, reviewer: str, now: datetime) -> str:
        """A fresh token letting `reviewer` decide `run_id` once, before now + ttl."""
        expires = int((now + self.ttl).timestamp())
        return self._signer.sign(
            {"run": run_id, "rev": reviewer, "nonce": secrets.token_hex(16), "exp": expires}
        )

    def verify(self, token: str, *, run_id: str, now: datetime) -> ReviewClaims:
        """The token's claims; InvalidTokenError (403) when forged, expired or for another run."""
        payload = self._signer.unsign(token)
        if payload is None:
            raise InvalidTokenError("review link is invalid")
        try:
            claims = ReviewClaims(
                run_id=str(payload["run"]),
                reviewer=str(payload["rev"]),
                nonce=str(payload["nonce"]),
                expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            raise InvalidTokenError("review link is invalid") from None
        if not hmac.compare_digest(claims.run_id.encode(), run_id.encode()):
            raise InvalidTokenError("review link is for another run")
        if now >= claims.expires_at:
            raise InvalidTokenError("review link has expired; ask for a new one")
        return claims


class UsedReviewTokens:
    """The single-use ledger of review tokens (table `used_review_tokens`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def is_used(self, claims: ReviewClaims) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(used_review_tokens.c.nonce).where(used_review_tokens.c.nonce == claims.nonce)
            )
            return found.first() is not None

    async def ensure_unused(self, claims: ReviewClaims) -> None:
        """Raise ConflictError (409) when the token has already been used."""
        if await self.is_used(claims):
            raise ConflictError("this review link has already been used")

    async def consume(self, claims: ReviewClaims) -> None:
        """Mark the token used; ConflictError (409) when it already was (atomic)."""
        statement = (
            insert(used_review_tokens)
            .values(nonce=claims.nonce, run_id=claims.run_id, reviewer=claims.reviewer)
            .on_conflict_do_nothing(index_elements=["nonce"])
            .returning(used_review_tokens.c.nonce)
        )
        async with self.engine.begin() as conn:
            inserted = (await conn.execute(statement)).scalar()
        if inserted is None:
            raise ConflictError("this review link has already been used")

    async def release(self, claims: ReviewClaims) -> None:
        """Undo `consume` when the decision it was reserved for could not be recorded."""
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(used_review_tokens).where(used_review_tokens.c.nonce == claims.nonce)
            )
