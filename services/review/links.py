"""Signed review links: expiring, single-use tokens bound to one run and one reviewer.

A token names the reviewer by id (table `reviewers`); the page that takes it checks that
the reviewer is still active, so revoking a reviewer ends their outstanding links at once.

Tokens are itsdangerous `URLSafeTimedSerializer` tokens (JSON claims, the signing time and
an HMAC-SHA256 signature). Each purpose has its own salt, so a review token can never pass
for a dashboard session signed with the same secrets. Tokens are signed with the newest
secret and verified against every configured one, so rotating REVIEW_LINK_SECRET (the old
one moved to REVIEW_LINK_PREVIOUS_SECRETS) does not break links already sent. Single use is
enforced in PostgreSQL: a token's nonce is inserted into `used_review_tokens` when the
decision is recorded, and a second insert is a conflict.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from models.tables import used_review_tokens
from services.errors import ConflictError, ForbiddenError
from services.settings import ConfigurationError, Settings

REVIEW_SALT = "payments-agent.review-link"
MIN_SECRET_BYTES = 16


class InvalidTokenError(ForbiddenError):
    """A token that was tampered with, has expired, or belongs to another run (403)."""


def signing_keys(secret: bytes | Sequence[bytes]) -> list[bytes]:
    """One secret, or several oldest first, as itsdangerous takes them (newest last)."""
    keys = [secret] if isinstance(secret, bytes) else list(secret)
    if not keys or any(len(key) < MIN_SECRET_BYTES for key in keys):
        raise ValueError(f"every signing secret must be at least {MIN_SECRET_BYTES} bytes")
    return keys


class _ClockSigner(TimestampSigner):
    """itsdangerous' timestamp signer, on the caller's clock rather than time.time()."""

    def __init__(self, *args: Any, now: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timestamp = int(now.timestamp())

    def get_timestamp(self) -> int:
        return self._timestamp


def timed_serializer(keys: list[bytes], *, salt: str, now: datetime) -> URLSafeTimedSerializer:
    """A serializer for one purpose (`salt`) that signs and checks ages as of `now`."""
    return URLSafeTimedSerializer(
        keys,
        salt=salt,
        signer=_ClockSigner,
        signer_kwargs={"digest_method": hashlib.sha256, "now": now},
    )


def review_link_secrets(settings: Settings) -> list[bytes] | None:
    """REVIEW_LINK_PREVIOUS_SECRETS then REVIEW_LINK_SECRET (newest last); None when unset."""
    previous = settings.review_link_previous_secrets
    if settings.review_link_secret is None:
        if previous is not None:
            raise ConfigurationError(
                "REVIEW_LINK_PREVIOUS_SECRETS is set without REVIEW_LINK_SECRET"
            )
        return None
    keys = [
        part.strip().encode()
        for part in (previous.get_secret_value().split(",") if previous is not None else [])
        if part.strip()
    ]
    keys.append(settings.review_link_secret.get_secret_value().encode())
    if any(len(key) < MIN_SECRET_BYTES for key in keys):
        raise ConfigurationError(
            "REVIEW_LINK_SECRET and each of REVIEW_LINK_PREVIOUS_SECRETS must be at least "
            f"{MIN_SECRET_BYTES} characters"
        )
    return keys


@dataclass(frozen=True)
class ReviewClaims:
    """What a valid review token says: who may decide which run, until when."""

    run_id: str
    reviewer_id: int
    nonce: str
    expires_at: datetime


class ReviewLinkSigner:
    """Issues review-link tokens with the newest secret and verifies them with any."""

    def __init__(self, secret: bytes | Sequence[bytes], *, ttl: timedelta) -> None:
        self._keys = signing_keys(secret)
        self.ttl = ttl

    def issue(self, *, run_id: str, reviewer_id: int, now: datetime) -> str:
        """A fresh token letting reviewer `reviewer_id` decide `run_id` once, before now + ttl."""
        claims = {"run": run_id, "rid": int(reviewer_id), "nonce": secrets.token_hex(16)}
        return timed_serializer(self._keys, salt=REVIEW_SALT, now=now).dumps(claims)

    def verify(self, token: str, *, run_id: str, now: datetime) -> ReviewClaims:
        """The token's claims; InvalidTokenError (403) when forged, expired or for another run."""
        serializer = timed_serializer(self._keys, salt=REVIEW_SALT, now=now)
        try:
            payload, signed_at = serializer.loads(
                token, max_age=int(self.ttl.total_seconds()), return_timestamp=True
            )
        except SignatureExpired:
            raise InvalidTokenError("review link has expired; ask for a new one") from None
        except BadData:
            raise InvalidTokenError("review link is invalid") from None
        try:
            claims = ReviewClaims(
                run_id=str(payload["run"]),
                reviewer_id=int(payload["rid"]),
                nonce=str(payload["nonce"]),
                expires_at=signed_at + self.ttl,
            )
        except (KeyError, TypeError, ValueError):
            # Links issued before reviewers had ids name an e-mail address instead.
            raise InvalidTokenError(
                "review link is invalid or outdated; ask for a new one"
            ) from None
        if claims.run_id != run_id:
            raise InvalidTokenError("review link is for another run")
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
            .values(nonce=claims.nonce, run_id=claims.run_id, reviewer=str(claims.reviewer_id))
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
