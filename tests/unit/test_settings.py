"""Settings: every one documented in .env.example; real backends fail fast without credentials."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.settings import ConfigurationError, Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_every_setting_is_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M))
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert missing == set()


@pytest.mark.parametrize(
    ("backend", "missing"),
    [
        ({"crm_backend": "salesforce"}, "CRM_BASE_URL, CRM_ACCESS_TOKEN"),
        ({"billing_backend": "zuora", "billing_base_url": "https://z"}, "BILLING_ACCESS_TOKEN"),
        ({"payment_backend": "stripe"}, "PAYMENT_SECRET_KEY"),
    ],
)
def test_real_backend_without_credentials_names_the_missing_setting(
    backend: dict[str, str], missing: str
) -> None:
    settings = Settings(_env_file=None, **backend)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=missing):
        settings.check_backends()


def test_approver_emails_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVER_EMAIL", "alice@example.com, bob@example.com")
    assert Settings(_env_file=None).approver_email == [  # type: ignore[call-arg]
        "alice@example.com",
        "bob@example.com",
    ]
