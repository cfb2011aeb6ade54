"""Review-link tokens: bound to one run and one reviewer, expiring, unforgeable."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from api.sessions import SessionSigner
from services.logs import redact
from services.review.links import InvalidTokenError, ReviewLinkSigner, Signer
from services.review.reviewers import Reviewer

SECRET = b"a-long-enough-test-secret-0123456789"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RUN = "0b7f6a3e-4a7e-4d55-9a45-1c8a2d1f0c11"
OTHER_RUN = "6f1c1a52-6f64-4c3a-8a0e-0d5b8f7f5a11"


@pytest.fixture
def signer() -> ReviewLinkSigner:
    return ReviewLinkSigner(SECRET, ttl=timedelta(hours=72))


def test_token_round_trips_run_reviewer_and_expiry(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer="alice@example.com", now=NOW)
    claims = signer.verify(token, run_id=RUN, now=NOW + timedelta(hours=71))
    assert claims.run_id == RUN
    assert claims.reviewer == "alice@example.com"
    assert claims.expires_at == NOW + timedelta(hours=72)


def test_each_token_has_its_own_nonce(signer: ReviewLinkSigner) -> None:
    first = signer.verify(signer.issue(run_id=RUN, reviewer="a@x.io", now=NOW), run_id=RUN, now=NOW)
    second = signer.verify(
        signer.issue(run_id=RUN, reviewer="a@x.io", now=NOW), run_id=RUN, now=NOW
    )
    assert first.nonce != second.nonce


def test_expired_token_is_refused(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer="alice@example.com", now=NOW)
    with pytest.raises(InvalidTokenError, match="expired") as caught:
        signer.verify(token, run_id=RUN, now=NOW + timedelta(hours=72))
    assert caught.value.status_code == 403


def test_token_for_another_run_is_refused(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer="alice@example.com", now=NOW)
    with pytest.raises(InvalidTokenError, match="another run"):
        signer.verify(token, run_id=OTHER_RUN, now=NOW)


def _forge(token: str, **changes: object) -> str:
    body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{forged}.{signature}"


@pytest.mark.parametrize(
    "changes",
    [
        {"rev": "mallory@example.com"},
        {"exp": int((NOW + timedelta(days=365)).timestamp())},
        {"run": OTHER_RUN},
    ],
)
def test_changing_any_claim_breaks_the_signature(
    signer: ReviewLinkSigner, changes: dict[str, object]
) -> None:
    token = signer.issue(run_id=RUN, reviewer="alice@example.com", now=NOW)
    forged = _forge(token, **changes)
    with pytest.raises(InvalidTokenError, match="invalid"):
        signer.verify(forged, run_id=str(changes.get("run", RUN)), now=NOW)


def test_flipped_signature_character_is_refused(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer="alice@example.com", now=NOW)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidTokenError):
        signer.verify(flipped, run_id=RUN, now=NOW)


def test_token_signed_with_another_secret_is_refused(signer: ReviewLinkSigner) -> None:
    other = ReviewLinkSigner(b"another-secret-of-enough-length!", ttl=timedelta(hours=72))
    token = other.issue(run_id=RUN, reviewer="alice@example.com", now=NOW)
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
    raw = Signer(SECRET, purpose="review-link").sign({"run": RUN})
    with pytest.raises(InvalidTokenError, match="invalid"):
        signer.verify(raw, run_id=RUN, now=NOW)


def test_session_cookie_and_review_token_are_not_interchangeable(
    signer: ReviewLinkSigner,
) -> None:
    sessions = SessionSigner(SECRET)
    cookie = sessions.issue(Reviewer(name="alice", email=None, key_id=7), now=NOW)
    assert sessions.key_id(cookie, now=NOW) == 7
    with pytest.raises(InvalidTokenError):
        signer.verify(cookie, run_id=RUN, now=NOW)
    token = signer.issue(run_id=RUN, reviewer="alice@example.com", now=NOW)
    assert sessions.key_id(token, now=NOW) is None


def test_session_cookie_expires(signer: ReviewLinkSigner) -> None:
    sessions = SessionSigner(SECRET)
    cookie = sessions.issue(Reviewer(name="alice", email=None, key_id=7), now=NOW)
    assert sessions.key_id(cookie, now=NOW + timedelta(hours=9)) is None


def test_short_secrets_are_rejected() -> None:
    with pytest.raises(ValueError):
        ReviewLinkSigner(b"short", ttl=timedelta(hours=1))


def test_review_link_token_is_masked_in_logs(signer: ReviewLinkSigner) -> None:
    token = signer.issue(run_id=RUN, reviewer="alice@example.com", now=NOW)
    line = redact(f"GET /review/{RUN}?token={token} 200")
    assert token not in line
    assert token[:12] not in line
