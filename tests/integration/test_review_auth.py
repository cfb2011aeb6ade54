"""Who may do what: API keys on REST, sessions on the dashboard, the key CLI, no secrets in logs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.deps import ApiServices
from api.sessions import SESSION_COOKIE
from services.logs import redact
from services.review.reviewers import IssuedKey, ReviewerKeys
from tests.integration.conftest import Harness

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN_RUN = "0b7f6a3e-4a7e-4d55-9a45-1c8a2d1f0c11"


@pytest.fixture
async def keys(harness: Harness) -> ReviewerKeys:
    return ReviewerKeys(harness.store.engine)


@pytest.fixture
async def alice(keys: ReviewerKeys) -> IssuedKey:
    return await keys.create("alice", email="Alice@Example.com")


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiServices(store=harness.store, backends={"crm": "fake"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def bearer(key: IssuedKey | str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key if isinstance(key, IssuedKey) else key}"}


PROTECTED = [
    ("GET", "/human-review/pending"),
    ("POST", "/human-review/decision"),
    ("GET", f"/workflow/{UNKNOWN_RUN}/status"),
    ("GET", f"/costs/workflow/{UNKNOWN_RUN}"),
    ("GET", "/costs/case/500A"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_protected_endpoints_are_401_without_a_valid_key(
    client: httpx.AsyncClient, keys: ReviewerKeys, alice: IssuedKey, method: str, path: str
) -> None:
    body = {"run_id": UNKNOWN_RUN, "decision": "approved"} if method == "POST" else None
    revoked = await keys.create("mallory")
    await keys.revoke(revoked.prefix)
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWxpY2U6cGFzcw=="},
        bearer("pa_" + "x" * 32),  # well-formed, unknown
        bearer("not-a-key"),
        bearer(revoked),
        {"X-API-Key": alice.key[:-1] + ("A" if alice.key[-1] != "A" else "B")},
    ):
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["status"] == 401
        assert response.json()["error"]
        assert response.headers["www-authenticate"] == "Bearer"
    # The same request with alice's key gets past authentication (404: no such run/case).
    authorised = await client.request(method, path, json=body, headers=bearer(alice))
    assert authorised.status_code in (200, 404), authorised.text


async def test_health_is_open(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_bearer_and_x_api_key_both_authenticate(
    client: httpx.AsyncClient, harness: Harness, alice: IssuedKey
) -> None:
    started = await harness.runner.start(case_id="500A")
    for headers in (bearer(alice), {"X-API-Key": alice.key}):
        response = await client.get("/human-review/pending", headers=headers)
        assert response.status_code == 200
        assert [i["run_id"] for i in response.json()["items"]] == [started.run_id]


async def test_decision_records_the_authenticated_reviewer_not_the_body(
    client: httpx.AsyncClient, harness: Harness, alice: IssuedKey
) -> None:
    started = await harness.runner.start(case_id="500A")
    impersonating = await client.post(
        "/human-review/decision",
        json={"run_id": started.run_id, "decision": "approved", "reviewer_name": "bob"},
        headers=bearer(alice),
    )
    assert impersonating.status_code == 403
    assert "alice" in impersonating.json()["error"]
    assert await harness.store.decisions_for_run(started.run_id) == []

    anonymous_body = await client.post(
        "/human-review/decision",
        json={"run_id": started.run_id, "decision": "approved", "comments": "ok"},
        headers=bearer(alice),
    )
    assert anonymous_body.status_code == 202, anonymous_body.text
    assert anonymous_body.json()["reviewer"] == "alice"
    [decision] = await harness.store.decisions_for_run(started.run_id)
    assert (decision["reviewer"], decision["channel"]) == ("alice", "api")


async def test_revoked_key_stops_working_at_once(
    client: httpx.AsyncClient, keys: ReviewerKeys, alice: IssuedKey
) -> None:
    assert (await client.get("/human-review/pending", headers=bearer(alice))).status_code == 200
    assert await keys.revoke("alice") == 1
    assert (await client.get("/human-review/pending", headers=bearer(alice))).status_code == 401


async def test_rotating_a_reviewer_key_revokes_the_old_one(
    keys: ReviewerKeys, alice: IssuedKey
) -> None:
    fresh = await keys.rotate("alice", email="alice@example.com")
    assert await keys.verify(alice.key) is None
    reviewer = await keys.verify(fresh.key)
    assert reviewer is not None and reviewer.name == "alice"


async def test_keys_are_stored_hashed_and_shown_by_prefix_only(
    keys: ReviewerKeys, alice: IssuedKey, harness: Harness
) -> None:
    assert alice.key.startswith("pa_") and len(alice.key) == 35
    async with harness.store.engine.connect() as conn:
        dump = str((await conn.exec_driver_sql("SELECT * FROM reviewer_api_keys")).all())
    assert alice.key not in dump and alice.key[9:] not in dump
    assert alice.prefix in dump
    [listed] = await keys.list()
    assert listed["key_prefix"] == alice.prefix and listed["email"] == "alice@example.com"
    assert alice.key not in str(listed)
    with pytest.raises(Exception, match="reserved"):
        await keys.create("system")


# Dashboard sessions


async def sign_in(client: httpx.AsyncClient, key: str, next_: str = "/") -> httpx.Response:
    return await client.post("/login", data={"api_key": key, "next": next_})


@pytest.mark.parametrize("path", ["/", f"/runs/{UNKNOWN_RUN}", f"/review/{UNKNOWN_RUN}"])
async def test_dashboard_pages_redirect_to_sign_in(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2F")


async def test_sign_in_sets_an_httponly_session_and_shows_the_dashboard(
    client: httpx.AsyncClient, harness: Harness, alice: IssuedKey
) -> None:
    await harness.runner.start(case_id="500A")
    wrong = await sign_in(client, "pa_" + "y" * 32)
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    assert SESSION_COOKIE not in wrong.cookies

    signed_in = await sign_in(client, alice.key, next_="//evil.example/")
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/"  # never an off-site redirect
    cookie_header = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie_header and "SameSite=lax" in cookie_header
    assert alice.key not in cookie_header

    page = await client.get("/")
    assert page.status_code == 200
    assert "500A" in page.text and ">alice<" in page.text

    # A tampered cookie is no session.
    client.cookies.set(SESSION_COOKIE, client.cookies[SESSION_COOKIE][:-2] + "xx")
    assert (await client.get("/")).status_code == 303


async def test_revoking_the_key_ends_its_dashboard_session(
    client: httpx.AsyncClient, keys: ReviewerKeys, alice: IssuedKey
) -> None:
    await sign_in(client, alice.key)
    assert (await client.get("/")).status_code == 200
    await keys.revoke(alice.prefix)
    assert (await client.get("/")).status_code == 303


async def test_page_decision_needs_the_csrf_token_and_is_audited_as_page(
    client: httpx.AsyncClient, harness: Harness, alice: IssuedKey
) -> None:
    started = await harness.runner.start(case_id="500A")
    await sign_in(client, alice.key)
    page = await client.get(f"/review/{started.run_id}")
    assert page.status_code == 200
    assert 'name="csrf"' in page.text and 'name="token"' not in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]

    modify = {
        "decision": "modify",
        "action": "partial_refund",
        "amount": "45.00",
        "reason": "prorated",
        "comments": "half the month was used",
    }
    forged = await client.post(f"/review/{started.run_id}", data=modify)
    assert forged.status_code == 403
    assert await harness.store.decisions_for_run(started.run_id) == []

    decided = await client.post(f"/review/{started.run_id}", data={**modify, "csrf": csrf})
    assert decided.status_code == 303
    assert decided.headers["location"] == f"/runs/{started.run_id}"

    status = (await client.get(f"/workflow/{started.run_id}/status", headers=bearer(alice))).json()
    [decision] = status["decisions"]
    assert decision["reviewer"] == "alice" and decision["channel"] == "page"
    assert decision["before"]["amount"] == "99.00" and decision["before"]["action"] == "full_refund"
    after = {"action": "partial_refund", "amount": "45.00", "reason": "prorated"}
    assert decision["after"] == after
    run_page = await client.get(f"/runs/{started.run_id}")
    assert "partial_refund 45.00" in run_page.text and "page" in run_page.text


async def test_link_without_a_secret_configured_is_refused(
    client: httpx.AsyncClient, harness: Harness
) -> None:
    started = await harness.runner.start(case_id="500A")
    response = await client.get(f"/review/{started.run_id}?token=abc.def")
    assert response.status_code == 403


# Secrets never logged


async def test_keys_never_reach_the_logs(
    client: httpx.AsyncClient,
    harness: Harness,
    alice: IssuedKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    started = await harness.runner.start(case_id="500A")
    bogus = "pa_" + "z" * 32
    await client.get("/human-review/pending", headers=bearer(bogus))
    await client.get("/human-review/pending", headers=bearer(alice))
    await sign_in(client, bogus)
    await sign_in(client, alice.key)
    await client.post(
        "/human-review/decision",
        json={"run_id": started.run_id, "decision": "approved"},
        headers=bearer(alice),
    )
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert alice.key not in logged and bogus not in logged
    assert client.cookies[SESSION_COOKIE] not in logged
    # And should one be written by accident, the log filter masks the key format.
    assert alice.key not in redact(f"Authorization: Bearer {alice.key}")
    assert alice.key not in redact(f"got key {alice.key} from a client")


# The CLI


def manage(*args: str, postgres_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POSTGRES_URL": postgres_url, "DATA_DIR": str(cwd / "data")}
    return subprocess.run(
        [sys.executable, str(ROOT / "utils" / "manage_reviewers.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


async def test_cli_creates_lists_and_revokes_keys(
    postgres_url: str, tmp_path: Path, keys: ReviewerKeys
) -> None:
    created = manage(
        "create", "dana", "--email", "dana@example.com", postgres_url=postgres_url, cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    [key] = [line for line in created.stdout.splitlines() if line.startswith("pa_")]
    reviewer = await keys.verify(key)
    assert reviewer is not None and reviewer.name == "dana"
    assert reviewer.email == "dana@example.com"

    listed = manage("list", postgres_url=postgres_url, cwd=tmp_path)
    assert listed.returncode == 0
    assert "dana" in listed.stdout and key[:9] in listed.stdout and key not in listed.stdout

    revoked = manage("revoke", key[:9], postgres_url=postgres_url, cwd=tmp_path)
    assert revoked.returncode == 0 and "revoked 1" in revoked.stdout
    assert await keys.verify(key) is None
    assert "revoked" in manage("list", postgres_url=postgres_url, cwd=tmp_path).stdout

    again = manage("revoke", key[:9], postgres_url=postgres_url, cwd=tmp_path)
    assert again.returncode == 1
    reserved = manage("create", "system", postgres_url=postgres_url, cwd=tmp_path)
    assert reserved.returncode == 2 and "reserved" in reserved.stderr


# The OpenAPI document (what /docs "Authorize" works from)


async def test_openapi_declares_the_api_key_schemes_on_protected_operations(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert {name: scheme["type"] for name, scheme in schemes.items()} == {
        "ReviewerKeyBearer": "http",
        "ReviewerKeyHeader": "apiKey",
    }
    assert schemes["ReviewerKeyBearer"]["scheme"] == "bearer"
    assert (schemes["ReviewerKeyHeader"]["in"], schemes["ReviewerKeyHeader"]["name"]) == (
        "header",
        "X-API-Key",
    )
    paths = document["paths"]
    for method, path in [
        ("get", "/human-review/pending"),
        ("post", "/human-review/decision"),
        ("get", "/workflow/{run_id}/status"),
        ("get", "/costs/workflow/{run_id}"),
        ("get", "/costs/case/{case_id}"),
    ]:
        # One requirement per scheme: either key alone authorises the call.
        assert paths[path][method].get("security") == [
            {"ReviewerKeyBearer": []},
            {"ReviewerKeyHeader": []},
        ], path
    assert "security" not in paths["/health"]["get"]
