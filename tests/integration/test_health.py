"""/health says only that the service is up; /health/backends names kinds, to reviewers only.

The backends shown come from `Core.backends()`, the composition root's own summary, built
from settings full of URLs, tokens and an AWS account id that must not come out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.deps import ApiServices
from cli.compose import Core
from services.persistence.database import Database, create_engine
from services.persistence.store import WorkflowStore
from services.review.reviewers import ReviewerKeys
from services.settings import Settings

AWS_ACCOUNT = "123456789012"
SECRETS = ("sf-secret-token", "zuora-secret-token", "sk_live_secret", "sk-openai-secret")
REAL_SETTINGS: dict[str, Any] = {
    "crm_backend": "salesforce",
    "crm_base_url": "https://acme.my.salesforce.com",
    "crm_access_token": SECRETS[0],
    "billing_backend": "zuora",
    "billing_base_url": "https://rest.zuora.com",
    "billing_access_token": SECRETS[1],
    "payment_backend": "stripe",
    "payment_secret_key": SECRETS[2],
    "openai_api_key": SECRETS[3],
    "sqs_queue_url": f"https://sqs.us-east-1.amazonaws.com/{AWS_ACCOUNT}/dispute-events",
    "chroma_url": "http://chroma.internal:8000",
    "smtp_host": "smtp.acme.example",
}


def core_backends(**overrides: Any) -> dict[str, str]:
    """What the composition root hands the API for these settings."""
    settings = Settings(_env_file=None, **(REAL_SETTINGS | overrides))
    database = Database(url="postgresql://pa:db-password@db.internal:5432/payments")
    core = Core(settings, database, store=None, dataset=None, jobs=None)  # type: ignore[arg-type]
    return core.backends()


async def client_for(services: ApiServices) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(services))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    services = ApiServices(store=WorkflowStore(engine), backends=core_backends())
    async with await client_for(services) as client:
        yield client


@pytest.fixture
async def reviewer_key(engine: AsyncEngine) -> str:
    return (await ReviewerKeys(engine).create("alice")).key


def assert_reveals_nothing(text: str) -> None:
    lowered = text.lower()
    for secret in (*SECRETS, AWS_ACCOUNT, "db-password", "db.internal", "acme", "chroma.internal"):
        assert secret.lower() not in lowered, secret
    assert "http" not in lowered
    assert "://" not in lowered


async def test_health_says_only_that_the_service_is_up(api: httpx.AsyncClient) -> None:
    response = await api.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert_reveals_nothing(response.text)
    for name in ("salesforce", "zuora", "stripe", "sandbox", "openai", "chroma", "sqs", "smtp"):
        assert name not in response.text.lower(), name


async def test_health_is_503_when_postgresql_is_down() -> None:
    engine = create_engine(Database(url="postgresql://postgres@127.0.0.1:1/none"))
    services = ApiServices(store=WorkflowStore(engine), backends=core_backends())
    try:
        async with await client_for(services) as client:
            response = await client.get("/health")
    finally:
        await engine.dispose()

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert_reveals_nothing(response.text)


async def test_health_backends_needs_a_reviewer_key(api: httpx.AsyncClient) -> None:
    for headers in ({}, {"X-API-Key": "pa_" + "x" * 32}, {"Authorization": "Bearer nope"}):
        response = await api.get("/health/backends", headers=headers)
        assert response.status_code == 401, headers
        assert_reveals_nothing(response.text)
        assert "salesforce" not in response.text


async def test_health_backends_names_kinds_and_nothing_else(
    api: httpx.AsyncClient, reviewer_key: str
) -> None:
    response = await api.get("/health/backends", headers={"X-API-Key": reviewer_key})

    assert response.status_code == 200
    assert response.json() == {
        "backends": {
            "database": "external",
            "crm": "salesforce",
            "billing": "zuora",
            "payments": "stripe",
            "drafter": "openai:gpt-4o-mini",
            "knowledge": "chroma-server",
            "email": "smtp",
            "queue": "sqs",
        },
        "sandbox_systems": [],
    }
    assert_reveals_nothing(response.text)


async def test_health_backends_says_which_systems_are_sandbox(
    engine: AsyncEngine, reviewer_key: str
) -> None:
    backends = core_backends(payment_backend="sandbox", allow_mixed_backends=True)
    services = ApiServices(store=WorkflowStore(engine), backends=backends)
    async with await client_for(services) as client:
        response = await client.get(
            "/health/backends", headers={"Authorization": f"Bearer {reviewer_key}"}
        )

    assert response.status_code == 200
    assert response.json()["sandbox_systems"] == ["payments"]
    assert response.json()["backends"]["payments"] == "sandbox"


async def test_backends_holding_a_url_are_refused(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="knowledge"):
        ApiServices(
            store=WorkflowStore(engine),
            backends={"knowledge": "chroma-server:http://chroma.internal:8000"},
        )


async def test_openapi_marks_health_backends_as_needing_a_key(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]

    assert paths["/health/backends"]["get"]["security"] == [
        {"ReviewerKeyBearer": []},
        {"ReviewerKeyHeader": []},
    ]
    assert "security" not in paths["/health"]["get"]
