"""Review-link tokens and session cookies: bound, expiring, unforgeable, rotatable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer
from pydantic import SecretStr

from api.sessions import SessionSigner
from services.logs import redact
from services.review.links import (
    REVIEW_SALT,
    InvalidTokenError,
    ReviewLinkSigner,
    review_link_secrets,
    signing_keys,
    timed_serializer,
)
from services.review.reviewers import Reviewer
from services.settings import ConfigurationError, Settings

SECRET = b"a-long-enough-test-secret-0123456789"
OLD_SECRET = b"the-secret-before-the-rotation-0123"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RUN = "0b7f6a3e-4a7e-4d55-9a45-1c8a2d1f0c11"
OTHER_RUN = "6f1c1a52-6f64-4c3a-8a0e-0d5b8f7f5a11"


@pytest.fixture
def signer() -> ReviewLinkSigner:
    return ReviewLinkSigner(SECRET, ttl=timedelta(hours=72))


def test_token_round_trips_run_reviewer_and_expiry(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer_id=1, now=NOW)
    claims = signer.verify(token, run_id=RUN, now=NOW + timedelta(hours=71))
    assert claims.run_id == RUN
    assert claims.reviewer_id == 1
    assert claims.expires_at == NOW + timedelta(hours=72)


def test_each_token_has_its_own_nonce(signer: ReviewLinkSigner) -> None:
    first = signer.verify(signer.issue(run_id=RUN, reviewer_id=2, now=NOW), run_id=RUN, now=NOW)
    second = signer.verify(signer.issue(run_id=RUN, reviewer_id=2, now=NOW), run_id=RUN, now=NOW)
    assert first.nonce != second.nonce


def test_expired_token_is_refused(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer_id=1, now=NOW)
    signer.verify(token, run_id=RUN, now=NOW + timedelta(hours=72))
    with pytest.raises(InvalidTokenError, match="expired") as caught:
        signer.verify(token, run_id=RUN, now=NOW + timedelta(hours=72, seconds=1))
    assert caught.value.status_code == 403


def test_token_for_another_run_is_refused(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer_id=1, now=NOW)
    with pytest.raises(InvalidTokenError, match="another run"):
        signer.verify(token, run_id=OTHER_RUN, now=NOW)


def _forge(token: str, **changes: object) -> str:
    """The token with its claims changed and its timestamp and signature kept."""
    reader = URLSafeTimedSerializer(b"reads-claims-without-checking-them")
    _, claims = reader.loads_unsafe(token)
    body = reader.dump_payload({**claims, **changes}).decode()
    _, timestamp, signature = token.rsplit(".", 2)
    return f"{body}.{timestamp}.{signature}"


@pytest.mark.parametrize(
    "changes",
    [{"rid": 666}, {"run": OTHER_RUN}, {"nonce": "0" * 32}],
)
def test_changing_any_claim_breaks_the_signature(
    signer: ReviewLinkSigner, changes: dict[str, object]
) -> None:
    token = signer.issue(run_id=RUN, reviewer_id=1, now=NOW)
    assert signer.verify(_forge(token), run_id=RUN, now=NOW).reviewer_id == 1
    forged = _forge(token, **changes)
    with pytest.raises(InvalidTokenError, match="invalid"):
        signer.verify(forged, run_id=str(changes.get("run", RUN)), now=NOW)


def test_moving_the_signing_time_breaks_the_signature(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer_id=1, now=NOW)
    later = signer.issue(run_id=RUN, reviewer_id=1, now=NOW + timedelta(days=30))
    body, _, signature = token.rsplit(".", 2)
    extended = f"{body}.{later.rsplit('.', 2)[1]}.{signature}"
    with pytest.raises(InvalidTokenError, match="invalid"):
        signer.verify(extended, run_id=RUN, now=NOW + timedelta(days=30))


def test_flipped_signature_character_is_refused(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer_id=1, now=NOW)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidTokenError):
        signer.verify(flipped, run_id=RUN, now=NOW)


def test_token_signed_with_another_secret_is_refused(signer: ReviewLinkSigner) -> None:
    other = ReviewLinkSigner(b"another-secret-of-enough-length!", ttl=timedelta(hours=72))
    token = other.issue(run_id=RUN, reviewer_id=1, now=NOW)
    with pytest.raises(InvalidTokenError):
        signer.verify(token, run_id=RUN, now=NOW)


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "abc", "a.b.c", "%%%.###", "x" * 5000, "é.é"],
)
def test_malformed_tokens_are_refused_not_crashing(signer: ReviewLinkSigner, garbage: str) -> None:
    with pytest.raises(InvalidTokenError):
        signer.verify(garbage, run_id=RUN, now=NOW)


def test_validly_signed_payload_missing_claims_is_refused(signer: ReviewLinkSigner) -> None:
    raw = timed_serializer(signing_keys(SECRET), salt=REVIEW_SALT, now=NOW).dumps({"run": RUN})
    with pytest.raises(InvalidTokenError, match="invalid"):
        signer.verify(raw, run_id=RUN, now=NOW)


def test_session_cookie_and_review_token_are_not_interchangeable(
    signer: ReviewLinkSigner,
) -> None:
    sessions = SessionSigner(SECRET)
    cookie = sessions.issue(Reviewer(1, "alice", None, key_id=7), now=NOW)
    assert sessions.key_id(cookie, now=NOW) == 7
    with pytest.raises(InvalidTokenError):
        signer.verify(cookie, run_id=RUN, now=NOW)
    token = signer.issue(run_id=RUN, reviewer_id=1, now=NOW)
    assert sessions.key_id(token, now=NOW) is None


def test_session_cookie_expires(signer: ReviewLinkSigner) -> None:
    sessions = SessionSigner(SECRET)
    cookie = sessions.issue(Reviewer(1, "alice", None, key_id=7), now=NOW)
    assert sessions.key_id(cookie, now=NOW + timedelta(hours=9)) is None


def test_short_secrets_are_rejected() -> None:
    with pytest.raises(ValueError):
        ReviewLinkSigner(b"short", ttl=timedelta(hours=1))
    with pytest.raises(ValueError):
        ReviewLinkSigner([b"short", SECRET], ttl=timedelta(hours=1))
    with pytest.raises(ValueError):
        SessionSigner(b"short")


# Rotation: sign with the newest secret, verify with any configured one


def test_link_signed_with_a_previous_secret_verifies_after_rotation() -> None:
    before = ReviewLinkSigner(OLD_SECRET, ttl=timedelta(hours=72))
    after = ReviewLinkSigner([OLD_SECRET, SECRET], ttl=timedelta(hours=72))
    sent_before = before.issue(run_id=RUN, reviewer_id=1, now=NOW)
    claims = after.verify(sent_before, run_id=RUN, now=NOW + timedelta(hours=1))
    assert (claims.run_id, claims.reviewer_id) == (RUN, 1)
    # New links are signed with the new secret only: they fail where it is unknown.
    sent_after = after.issue(run_id=RUN, reviewer_id=1, now=NOW)
    with pytest.raises(InvalidTokenError, match="invalid"):
        before.verify(sent_after, run_id=RUN, now=NOW)
    # Dropping the old secret ends the links it signed.
    with pytest.raises(InvalidTokenError, match="invalid"):
        ReviewLinkSigner(SECRET, ttl=timedelta(hours=72)).verify(sent_before, run_id=RUN, now=NOW)


def test_link_signed_with_an_unknown_secret_is_refused_after_rotation() -> None:
    after = ReviewLinkSigner([OLD_SECRET, SECRET], ttl=timedelta(hours=72))
    stranger = ReviewLinkSigner(b"a-secret-this-server-never-had!!", ttl=timedelta(hours=72))
    token = stranger.issue(run_id=RUN, reviewer_id=1, now=NOW)
    with pytest.raises(InvalidTokenError, match="invalid") as caught:
        after.verify(token, run_id=RUN, now=NOW)
    assert caught.value.status_code == 403


def test_link_signed_with_a_previous_secret_still_expires() -> None:
    before = ReviewLinkSigner(OLD_SECRET, ttl=timedelta(hours=72))
    after = ReviewLinkSigner([OLD_SECRET, SECRET], ttl=timedelta(hours=72))
    token = before.issue(run_id=RUN, reviewer_id=1, now=NOW)
    with pytest.raises(InvalidTokenError, match="expired"):
        after.verify(token, run_id=RUN, now=NOW + timedelta(hours=73))


def test_session_and_csrf_survive_a_rotation_and_refuse_unknown_secrets() -> None:
    before = SessionSigner(OLD_SECRET)
    after = SessionSigner([OLD_SECRET, SECRET])
    cookie = before.issue(Reviewer(1, "alice", None, key_id=7), now=NOW)
    assert after.key_id(cookie, now=NOW + timedelta(hours=1)) == 7
    assert after.check_csrf(cookie, before.csrf(cookie))
    stranger = SessionSigner(b"a-secret-this-server-never-had!!")
    forged = stranger.issue(Reviewer(9, "mallory", None, key_id=7), now=NOW)
    assert after.key_id(forged, now=NOW) is None
    assert not after.check_csrf(cookie, stranger.csrf(cookie))


def test_csrf_token_belongs_to_one_session() -> None:
    sessions = SessionSigner(SECRET)
    alice = sessions.issue(Reviewer(1, "alice", None, key_id=7), now=NOW)
    bob = sessions.issue(Reviewer(2, "bob", None, key_id=8), now=NOW)
    assert sessions.check_csrf(alice, sessions.csrf(alice))
    assert not sessions.check_csrf(alice, sessions.csrf(bob))
    assert not sessions.check_csrf(alice, "")
    assert not sessions.check_csrf(alice, "é")


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_previous_secrets_come_before_the_current_one() -> None:
    keys = review_link_secrets(
        settings(
            review_link_secret=SECRET.decode(),
            review_link_previous_secrets=f" {OLD_SECRET.decode()} , ,second-old-secret-0123456",
        )
    )
    assert keys == [OLD_SECRET, b"second-old-secret-0123456", SECRET]
    assert review_link_secrets(settings()) is None
    shown = settings(review_link_previous_secrets=OLD_SECRET.decode())
    assert isinstance(shown.review_link_previous_secrets, SecretStr)
    assert OLD_SECRET.decode() not in repr(shown)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"review_link_previous_secrets": OLD_SECRET.decode()}, "without REVIEW_LINK_SECRET"),
        ({"review_link_secret": "short"}, "at least 16"),
        (
            {"review_link_secret": SECRET.decode(), "review_link_previous_secrets": "short"},
            "at least 16",
        ),
    ],
)
def test_unusable_link_secrets_fail_at_start_up(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        review_link_secrets(settings(**values))


def test_review_link_token_is_masked_in_logs(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer_id=1, now=NOW)
    line = redact(f"GET /review/{RUN}?token={token} 200")
    assert token not in line
    assert token[:12] not in line


def test_a_link_from_before_reviewer_ids_is_refused_as_outdated(signer: ReviewLinkSigner) -> None:
    # Correctly signed, but of the old shape: an e-mail address where the reviewer id goes.
    old = timed_serializer([SECRET], salt=REVIEW_SALT, now=NOW)
    legacy = old.dumps({"run": RUN, "rev": "alice@example.com", "nonce": "0" * 32})
    with pytest.raises(InvalidTokenError, match="outdated"):
        signer.verify(legacy, run_id=RUN, now=NOW)
