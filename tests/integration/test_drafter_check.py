"""The drafter is checked at start: one authenticated GET /models through the OpenAI SDK,
against the fake OpenAI server. A failing drafter is a warning (runs fall back to the
rules, flagged), and /health/ready says which drafter is active and whether it answered,
without URLs or keys."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.deps import ApiServices
from cli.compose import DrafterStatus, check_drafter, open_core
from services.persistence.store import WorkflowStore
from services.review.reviewers import ReviewerKeys
from services.settings import Settings
from tests.e2e.conftest import free_port
from tests.fakes.openai_server import FakeOpenAIServer

RIGHT_KEY = "sk-right-key-0123456789"
WRONG_KEY = "sk-wrong-key-0123456789"


class ModelsServer(FakeOpenAIServer):
    """The fake OpenAI server, also answering GET /v1/models as OpenAI does: the model
    list to the one key it knows, 401 to any other."""

    def __init__(self, key: str = RIGHT_KEY) -> None:
        super().__init__()
        self.key = key
        self.model_listings: list[str | None] = []

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self
        base: Any = super()._handler_class()

        class Handler(base):  # type: ignore[misc]
            def do_GET(self) -> None:
                auth = self.headers.get("authorization")
                fake.model_listings.append(auth)
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, {"error": {"message": "unknown path"}}, {})
                elif auth != f"Bearer {fake.key}":
                    self._send(401, {"error": {"message": "Incorrect API key provided"}}, {})
                else:
                    models = [{"id": "gpt-4o-mini", "object": "model", "owned_by": "openai"}]
                    self._send(200, {"object": "list", "data": models}, {})

        return Handler


@pytest.fixture
def openai_server() -> Iterator[ModelsServer]:
    with ModelsServer() as server:
        yield server


def drafter_settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


async def test_a_reachable_drafter_is_checked_with_its_key(openai_server: ModelsServer) -> None:
    settings = drafter_settings(openai_api_key=RIGHT_KEY, openai_base_url=openai_server.base_url)

    status = await check_drafter(settings)

    assert status == DrafterStatus("openai:gpt-4o-mini", True)
    assert status.describe() == "openai:gpt-4o-mini (reachable)"
    assert openai_server.model_listings == [f"Bearer {RIGHT_KEY}"]
    assert openai_server.completions == []  # nothing billed


async def test_a_refused_key_is_unreachable_and_says_which_setting(
    openai_server: ModelsServer,
) -> None:
    settings = drafter_settings(openai_api_key=WRONG_KEY, openai_base_url=openai_server.base_url)

    status = await check_drafter(settings)

    assert status.reachable is False
    assert status.problem == "OPENAI_API_KEY was refused (401)"
    assert WRONG_KEY not in status.describe()


async def test_an_unreachable_url_is_unreachable() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    settings = drafter_settings(openai_api_key=RIGHT_KEY, openai_base_url=base_url)

    status = await check_drafter(settings)

    assert status.reachable is False
    assert status.problem == "cannot connect to OPENAI_BASE_URL"
    assert "127.0.0.1" not in status.describe()


async def test_without_a_key_the_rules_drafter_needs_no_check() -> None:
    status = await check_drafter(drafter_settings())

    assert status == DrafterStatus("rules", True)


async def test_open_core_warns_of_a_failing_drafter(
    openai_server: ModelsServer, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = drafter_settings(
        postgres_url=postgres_url,
        openai_api_key=WRONG_KEY,
        openai_base_url=openai_server.base_url,
    )

    with caplog.at_level(logging.WARNING, logger="payments_agent"):
        async with open_core(settings) as core:
            status = core.drafter_status

    assert status.reachable is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "drafter openai:gpt-4o-mini is not reachable: OPENAI_API_KEY was refused (401)" in w
        for w in warnings
    ), warnings


@pytest.fixture
async def reviewer_key(engine: AsyncEngine) -> str:
    return (await ReviewerKeys(engine).create("ops")).key


async def ready(
    engine: AsyncEngine, *, reachable: bool | None, headers: dict[str, str]
) -> httpx.Response:
    services = ApiServices(
        store=WorkflowStore(engine),
        backends={"database": "external", "drafter": "openai:gpt-4o-mini"},
        drafter_reachable=reachable,
    )
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/health/ready", headers=headers)


@pytest.mark.parametrize("reachable", [True, False])
async def test_health_ready_says_which_drafter_and_whether_it_answered(
    engine: AsyncEngine, reviewer_key: str, reachable: bool
) -> None:
    response = await ready(engine, reachable=reachable, headers={"X-API-Key": reviewer_key})

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "drafter": "openai:gpt-4o-mini",
        "drafter_reachable": reachable,
    }


async def test_health_ready_needs_a_reviewer_key(engine: AsyncEngine) -> None:
    response = await ready(engine, reachable=False, headers={})

    assert response.status_code == 401
    assert "openai" not in response.text


async def test_health_stays_as_it_was(engine: AsyncEngine) -> None:
    services = ApiServices(
        store=WorkflowStore(engine),
        backends={"drafter": "openai:gpt-4o-mini"},
        drafter_reachable=False,
    )
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health")

    assert response.json() == {"status": "ok"}
