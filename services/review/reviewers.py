"""Reviewers and their API keys. Keys are random, shown once, stored only as a SHA-256 hash.

A reviewer is an identity (table `reviewers`: id, name, e-mail, active). API keys, dashboard
sessions and e-mailed links all resolve to that id, and dual control compares ids, so one
person is one reviewer on every channel. Revoking a reviewer (by name) deactivates them:
their keys, sessions and outstanding links stop working at once, because each of those is
checked against the reviewer's active flag when used.

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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from models.tables import reviewer_api_keys, reviewers
from services.errors import InvalidRequestError

KEY_PREFIX = "pa_"
KEY_RANDOM_BYTES = 24  # 32 URL-safe characters
KEY_LENGTH = len(KEY_PREFIX) + 32
SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 6
RESERVED_NAMES = frozenset({"system"})  # auto-approvals are recorded as "system"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


@dataclass(frozen=True)
class Reviewer:
    """An authenticated, active reviewer. `reviewer_id` is who decided; `key_id` is the API
    key they came with (None for an e-mailed link)."""

    reviewer_id: int
    name: str
    email: str | None
    key_id: int | None = None


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
            reviewer_id = await self._register(conn, name, email)
            await conn.execute(
                reviewer_api_keys.insert().values(
                    reviewer=name,
                    email=email,
                    reviewer_id=reviewer_id,
                    key_prefix=prefix,
                    key_hash=hash_key(key),
                )
            )
        return IssuedKey(key=key, prefix=prefix, reviewer=name, email=email)

    @staticmethod
    async def _register(conn: AsyncConnection, name: str, email: str | None) -> int:
        """The reviewer named `name`, created or made active again, with `email` if given."""
        row = (
            await conn.execute(
                select(reviewers.c.id, reviewers.c.email)
                .where(func.lower(reviewers.c.name) == name.lower())
                .with_for_update()
            )
        ).first()
        if email is not None:
            holder = (
                await conn.execute(select(reviewers.c.id).where(reviewers.c.email == email))
            ).scalar()
            if holder is not None and (row is None or holder != row.id):
                raise InvalidRequestError(f"{email} belongs to another reviewer")
        if row is None:
            return int(
                (
                    await conn.execute(
                        reviewers.insert().values(name=name, email=email).returning(reviewers.c.id)
                    )
                ).scalar_one()
            )
        values: dict[str, Any] = {"active": True, "deactivated_at": None}
        if email is not None:
            values["email"] = email
        await conn.execute(update(reviewers).where(reviewers.c.id == row.id).values(**values))
        return int(row.id)

    async def rotate(self, name: str, *, email: str | None = None) -> IssuedKey:
        """Revoke `name`'s active keys and issue a fresh one (e.g. the demo's reviewer)."""
        await self.revoke(check_name(name))
        return await self.create(name, email=email)

    async def revoke(self, selector: str) -> int:
        """Revoke by full key or shown prefix (`pa_xxxxxx`): that key. By reviewer name: the
        reviewer, with every key, session and outstanding link of theirs. The keys revoked."""
        selector = selector.strip()
        column = reviewer_api_keys.c
        by_name = not selector.startswith(KEY_PREFIX)
        if looks_like_key(selector):
            condition = column.key_hash == hash_key(selector)
        elif not by_name:
            condition = column.key_prefix == selector
        else:
            condition = func.lower(column.reviewer) == selector.lower()
        async with self.engine.begin() as conn:
            if by_name:
                await conn.execute(
                    update(reviewers)
                    .where(func.lower(reviewers.c.name) == selector.lower(), reviewers.c.active)
                    .values(active=False, deactivated_at=func.now())
                )
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
        row = await self._key_row(reviewer_api_keys.c.key_hash == digest)
        if row is None or not secrets.compare_digest(row.key_hash, digest):
            return None
        return Reviewer(row.reviewer_id, row.name, row.email, key_id=row.key_id)

    async def active(self, key_id: int) -> Reviewer | None:
        """The reviewer of key `key_id` while the key and the reviewer are active (sessions)."""
        row = await self._key_row(reviewer_api_keys.c.id == key_id)
        return Reviewer(row.reviewer_id, row.name, row.email, key_id=row.key_id) if row else None

    async def _key_row(self, condition: Any) -> Any:
        keys = reviewer_api_keys.c
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(
                        keys.id.label("key_id"),
                        keys.key_hash,
                        reviewers.c.id.label("reviewer_id"),
                        reviewers.c.name,
                        reviewers.c.email,
                    )
                    .join(reviewers, reviewers.c.id == keys.reviewer_id)
                    .where(condition, keys.revoked_at.is_(None), reviewers.c.active)
                )
            ).first()

    async def reviewer(self, reviewer_id: int) -> Reviewer | None:
        """The reviewer with this id, while active (review links carry the id)."""
        return await self._reviewer(reviewers.c.id == reviewer_id)

    async def reviewer_for_email(self, email: str) -> Reviewer | None:
        """The active reviewer registered with this e-mail address, if any."""
        try:
            address = normalise_email(email)
        except InvalidRequestError:
            return None
        return await self._reviewer(reviewers.c.email == address) if address else None

    async def _reviewer(self, condition: Any) -> Reviewer | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(reviewers.c.id, reviewers.c.name, reviewers.c.email).where(
                        condition, reviewers.c.active
                    )
                )
            ).first()
        return Reviewer(row.id, row.name, row.email) if row else None

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
