"""Reviewer API keys: random, shown once, stored only as a SHA-256 hash.

A key looks like `pa_` followed by 32 URL-safe characters (192 random bits); the log filter
masks that shape. The first characters (`key_prefix`) are kept in clear so an operator can
tell keys apart and revoke one without ever seeing the key again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from models.tables import reviewer_api_keys
from services.errors import InvalidRequestError

KEY_PREFIX = "pa_"
KEY_RANDOM_BYTES = 24  # 32 URL-safe characters
KEY_LENGTH = len(KEY_PREFIX) + 32
SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 6
RESERVED_NAMES = frozenset({"system"})  # auto-approvals are recorded as "system"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


@dataclass(frozen=True)
class Reviewer:
    """An authenticated reviewer: the name decisions are recorded under."""

    name: str
    email: str | None
    key_id: int


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key. `key` is shown once and never stored."""

    key: str
    prefix: str
    reviewer: str
    email: str | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(value: str) -> bool:
    return (
        len(value) == KEY_LENGTH
        and value.startswith(KEY_PREFIX)
        and re.fullmatch(r"[A-Za-z0-9_\-]+", value[len(KEY_PREFIX) :]) is not None
    )


def normalise_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidRequestError(f"not an e-mail address: {email[:100]}")
    return email


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or any(ch.isspace() and ch != " " for ch in name):
        raise InvalidRequestError("a reviewer name is 1-200 characters on one line")
    if name.lower() in RESERVED_NAMES:
        raise InvalidRequestError(f"'{name}' is reserved")
    if name.startswith(KEY_PREFIX):
        raise InvalidRequestError(f"a reviewer name may not start with {KEY_PREFIX}")
    return name


class ReviewerKeys:
    """Create, revoke, list and verify reviewer API keys (table `reviewer_api_keys`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, name: str, *, email: str | None = None) -> IssuedKey:
        """Issue a new key for `name`; the plaintext is returned here and nowhere else."""
        name = check_name(name)
        email = normalise_email(email)
        key = KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
        prefix = key[:SHOWN_PREFIX_LENGTH]
        async with self.engine.begin() as conn:
            await conn.execute(
                reviewer_api_keys.insert().values(
                    reviewer=name, email=email, key_prefix=prefix, key_hash=hash_key(key)
                )
            )
        return IssuedKey(key=key, prefix=prefix, reviewer=name, email=email)

    async def rotate(self, name: str, *, email: str | None = None) -> IssuedKey:
        """Revoke `name`'s active keys and issue a fresh one (e.g. the demo's reviewer)."""
        await self.revoke(check_name(name))
        return await self.create(name, email=email)

    async def revoke(self, selector: str) -> int:
        """Revoke by full key, shown prefix (`pa_xxxxxx`) or reviewer name; the count revoked."""
        selector = selector.strip()
        column = reviewer_api_keys.c
        if looks_like_key(selector):
            condition = column.key_hash == hash_key(selector)
        elif selector.startswith(KEY_PREFIX):
            condition = column.key_prefix == selector
        else:
            condition = column.reviewer == selector
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(reviewer_api_keys)
                .where(condition, column.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
            return int(result.rowcount)

    async def verify(self, key: str) -> Reviewer | None:
        """The reviewer holding this active key, or None."""
        if not looks_like_key(key):
            return None
        digest = hash_key(key)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(reviewer_api_keys).where(
                        reviewer_api_keys.c.key_hash == digest,
                        reviewer_api_keys.c.revoked_at.is_(None),
                    )
                )
            ).first()
        if row is None or not secrets.compare_digest(row.key_hash, digest):
            return None
        return Reviewer(name=row.reviewer, email=row.email, key_id=row.id)

    async def active(self, key_id: int) -> Reviewer | None:
        """The reviewer of key `key_id` while that key is not revoked (dashboard sessions)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(reviewer_api_keys).where(
                        reviewer_api_keys.c.id == key_id,
                        reviewer_api_keys.c.revoked_at.is_(None),
                    )
                )
            ).first()
        return Reviewer(name=row.reviewer, email=row.email, key_id=row.id) if row else None

    async def reviewer_for_email(self, email: str) -> str | None:
        """The registered reviewer name for an e-mail address (newest active key), if any."""
        try:
            address = normalise_email(email)
        except InvalidRequestError:
            return None
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(reviewer_api_keys.c.reviewer)
                    .where(
                        reviewer_api_keys.c.email == address,
                        reviewer_api_keys.c.revoked_at.is_(None),
                    )
                    .order_by(reviewer_api_keys.c.created_at.desc())
                    .limit(1)
                )
            ).scalar()

    async def list(self) -> list[dict[str, Any]]:
        """Every key without its secret: prefix, reviewer, e-mail, created, revoked."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    reviewer_api_keys.c.key_prefix,
                    reviewer_api_keys.c.reviewer,
                    reviewer_api_keys.c.email,
                    reviewer_api_keys.c.created_at,
                    reviewer_api_keys.c.revoked_at,
                ).order_by(reviewer_api_keys.c.id)
            )
            return [dict(r._mapping) for r in rows]


async def reviewer_identity(keys: ReviewerKeys, email: str) -> str:
    """The name a decision made by `email` is recorded under.

    The registered reviewer's name when a key carries that address, else the address:
    so one person deciding by link and by API is one reviewer for dual control.
    """
    return await keys.reviewer_for_email(email) or email
