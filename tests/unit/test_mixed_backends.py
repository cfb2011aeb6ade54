"""Sandbox and real systems mixed: refused in one line unless ALLOW_MIXED_BACKENDS is true."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.integrations.backends import build_integrations
from services.integrations.protocols import Backends
from services.settings import ConfigurationError, Settings
from tests.fakes.services import FakeBilling, FakeCRM, FakePayments, FakeWorld

REAL: dict[str, dict[str, Any]] = {
    "crm": {
        "crm_backend": "salesforce",
        "crm_base_url": "https://acme.my.salesforce.com",
        "crm_access_token": "sf-token",
    },
    "billing": {
        "billing_backend": "zuora",
        "billing_base_url": "https://rest.zuora.com",
        "billing_access_token": "zuora-token",
    },
    "payments": {"payment_backend": "stripe", "payment_secret_key": "sk_test_123"},
}
SANDBOX: dict[str, dict[str, Any]] = {
    "crm": {"crm_backend": "sandbox"},
    "billing": {"billing_backend": "sandbox"},
    "payments": {"payment_backend": "sandbox"},
}


def settings(*real: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {}
    for system in ("crm", "billing", "payments"):
        values |= REAL[system] if system in real else SANDBOX[system]
    return Settings(_env_file=None, **values, **extra)


def sandbox() -> Backends:
    world = FakeWorld.default()
    backends = Backends(
        crm=FakeCRM(world), billing=FakeBilling(world), payments=FakePayments(world)
    )
    for backend in (backends.crm, backends.billing, backends.payments):
        backend.backend = "sandbox"
    return backends


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.mark.parametrize(
    ("real", "message"),
    [
        (
            ("payments",),
            "mixed backends: sandbox crm, billing; real payments (stripe); "
            "set ALLOW_MIXED_BACKENDS=true to allow it",
        ),
        (
            ("crm", "billing"),
            "mixed backends: sandbox payments; real crm (salesforce), billing (zuora); "
            "set ALLOW_MIXED_BACKENDS=true to allow it",
        ),
    ],
)
async def test_mixed_backends_are_refused_in_one_line(
    http: httpx.AsyncClient, real: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_integrations(settings(*real), sandbox=sandbox(), http_client=http)

    assert str(caught.value) == message
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="ALLOW_MIXED_BACKENDS"):
        settings(*real).check_backends()  # at start-up, before anything is built


async def test_mixed_backends_are_built_when_allowed(http: httpx.AsyncClient) -> None:
    integrations = build_integrations(
        settings("payments", allow_mixed_backends=True), sandbox=sandbox(), http_client=http
    )
    try:
        assert integrations.backends() == {
            "crm": "sandbox",
            "billing": "sandbox",
            "payments": "stripe",
        }
        assert integrations.sandbox_systems() == ["crm", "billing"]
    finally:
        await integrations.aclose()


async def test_all_sandbox_is_fine(http: httpx.AsyncClient) -> None:
    integrations = build_integrations(settings(), sandbox=sandbox(), http_client=http)

    assert integrations.sandbox_systems() == ["crm", "billing", "payments"]


async def test_all_real_is_fine(http: httpx.AsyncClient) -> None:
    integrations = build_integrations(
        settings("crm", "billing", "payments"), sandbox=None, http_client=http
    )
    try:
        assert integrations.sandbox_systems() == []
        assert set(integrations.backends().values()) == {"salesforce", "zuora", "stripe"}
    finally:
        await integrations.aclose()


def test_allow_mixed_backends_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(_env_file=None).allow_mixed_backends is False
    monkeypatch.setenv("ALLOW_MIXED_BACKENDS", "true")
    monkeypatch.setenv("PAYMENT_BACKEND", "stripe")
    monkeypatch.setenv("PAYMENT_SECRET_KEY", "sk_test_123")

    configured = Settings(_env_file=None)

    assert configured.allow_mixed_backends is True
    configured.check_backends()
