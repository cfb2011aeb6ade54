"""Settings: the one place configuration is read (environment and `.env`)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.dispute_types import parse_dispute_type
from models.domain import DisputeType

PROJECT_ROOT = Path(__file__).resolve().parent.parent

CRMBackend = Literal["sandbox", "salesforce"]
BillingBackend = Literal["sandbox", "zuora"]
PaymentBackend = Literal["sandbox", "stripe"]


class ConfigurationError(Exception):
    """A setting is missing or inconsistent; raised at start-up, never mid-run."""


class StartupError(ConfigurationError):
    """The process cannot start as configured (a port in use, PostgreSQL unreachable, a
    demo already running); the message names the fix."""


class Settings(BaseSettings):
    """Every setting of PaymentsAgent; each one is listed in `.env.example`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    # Storage
    postgres_url: SecretStr | None = None
    data_dir: Path = Path(".data")

    # Queue
    aws_region: str = "us-east-1"
    sqs_queue_url: str | None = None
    sqs_endpoint_url: str | None = None
    sqs_queue_name: str = "dispute-events"
    sqs_max_receive_count: int = Field(default=5, ge=1)
    embedded_sqs_port: int = Field(default=9324, ge=0, le=65535)
    worker_max_in_flight: int = Field(default=4, ge=1, le=64)
    worker_visibility_timeout_seconds: int = Field(default=60, ge=10)
    worker_wait_time_seconds: int = Field(default=10, ge=0, le=20)
    # Runs (docs/architecture.md, "The run lifecycle")
    run_max_attempts: int = Field(default=8, ge=1)
    run_retry_base_seconds: float = Field(default=5.0, gt=0)
    run_retry_max_seconds: float = Field(default=300.0, gt=0)
    run_reconcile_interval_seconds: float = Field(default=15.0, gt=0)
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    worker_stalled_after_seconds: float = Field(default=30.0, gt=0)
    checkpoint_retention_days: float = Field(default=30.0, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8003
    public_base_url: str = "http://127.0.0.1:8003"
    # Links from the review desk to the case in the CRM and the charge in the payment
    # system: a URL with {case_id} / {charge_id} in it; no link when unset.
    crm_case_url_template: str | None = None
    payment_charge_url_template: str | None = None

    # Integrations
    crm_backend: CRMBackend = "sandbox"
    crm_base_url: str | None = None
    crm_access_token: SecretStr | None = None
    crm_api_version: str = "v60.0"
    crm_multi_currency: bool = False
    billing_backend: BillingBackend = "sandbox"
    billing_base_url: str | None = None
    billing_access_token: SecretStr | None = None
    billing_credit_charge_id: str | None = None
    payment_backend: PaymentBackend = "sandbox"
    payment_secret_key: SecretStr | None = None
    payment_api_base: str = "https://api.stripe.com"
    # The signing secret of the Stripe webhook endpoint (whsec_...): POST /webhooks/stripe
    # verifies every event with it and is off without it.
    stripe_webhook_secret: SecretStr | None = None
    # Early fraud warnings: refunds up to this amount are made without a reviewer (0: off).
    fraud_warning_auto_refund_max_amount: Decimal = Field(default=Decimal("0"), ge=0)
    # Some systems on the sandbox and others real is refused unless this is true: a
    # proposal checked against sandbox data would move real money, or the reverse.
    allow_mixed_backends: bool = False
    integration_timeout_seconds: float = Field(default=10.0, gt=0)
    integration_max_attempts: int = Field(default=4, ge=1)
    dispute_window_days: int = Field(default=120, ge=1)
    # The org's own CRM dispute-type labels, beyond models/dispute_types.py's defaults.
    dispute_type_labels: Annotated[dict[str, DisputeType], NoDecode] = Field(default_factory=dict)

    # Drafting
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    openai_timeout_seconds: float = Field(default=30.0, gt=0)
    openai_max_attempts: int = Field(default=3, ge=1)
    llm_max_output_tokens: int = Field(default=1000, ge=1, le=1000)
    llm_price_input_per_1m: Decimal = Decimal("0.15")
    llm_price_cached_input_per_1m: Decimal = Decimal("0.075")
    llm_price_output_per_1m: Decimal = Decimal("0.60")
    draft_cache_ttl_hours: float = Field(default=24.0, ge=0)

    # Knowledge
    chroma_db_path: Path = Path("chroma_db")
    chroma_url: str | None = None
    policies_dir: Path = PROJECT_ROOT / "policies"

    # Review
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    gmail_email: str | None = None
    gmail_app_password: SecretStr | None = None
    approver_email: Annotated[list[str], NoDecode] = Field(default_factory=list)
    escalation_email: str | None = None
    review_link_secret: SecretStr | None = None
    review_link_previous_secrets: SecretStr | None = None
    review_link_ttl_hours: float = Field(default=72.0, gt=0)
    auto_approve_max_amount: Decimal = Decimal("0")
    auto_approve_min_confidence: float = Field(default=0.9, ge=0, le=1)
    max_disputes_90d: int = Field(default=3, ge=0)
    dual_approval_min_amount: Decimal = Decimal("500")
    review_reminder_hours: float = Field(default=24.0, gt=0)
    review_escalation_hours: float = Field(default=48.0, gt=0)

    # Logging
    log_dir: Path = Path("logs")
    log_level: str = "INFO"
    # text: readable lines on the console; json: the log file's JSON lines on stdout.
    log_format: Literal["text", "json"] = "text"

    # Observability (services/tracing.py, services/metrics.py). Traces go to the OTLP/HTTP
    # endpoint when set; none are made otherwise. A worker exposes its Prometheus metrics
    # on METRICS_PORT (on API_HOST) when set; the API serves them at /metrics.
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_headers: SecretStr | None = None
    otel_service_name: str = "payments-agent"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("approver_email", mode="before")
    @classmethod
    def _split_emails(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("crm_case_url_template", "payment_charge_url_template")
    @classmethod
    def _check_url_template(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        placeholder = "{case_id}" if info.field_name == "crm_case_url_template" else "{charge_id}"
        if not value.startswith(("https://", "http://")) or placeholder not in value:
            raise ValueError(f"expected an http(s) URL containing {placeholder}")
        return value

    @field_validator("dispute_type_labels", mode="before")
    @classmethod
    def _parse_dispute_type_labels(cls, value: object) -> object:
        # JSON ({"label": "type"}) or `label=type,label=type`; a type may be written
        # as its value or its words ("Duplicate Charge").
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                value = json.loads(text)
            else:
                pairs = [part.rsplit("=", 1) for part in text.split(",") if part.strip()]
                if any(len(pair) != 2 for pair in pairs):
                    raise ValueError("expected label=type pairs separated by commas")
                value = {label.strip(): kind for label, kind in pairs}
        if isinstance(value, dict):
            return {
                str(label).strip(): parse_dispute_type(str(kind)) for label, kind in value.items()
            }
        return value

    def require(self, *names: str) -> None:
        """Raise ConfigurationError naming every listed setting that is unset."""
        missing = [name.upper() for name in names if getattr(self, name) in (None, "", [])]
        if missing:
            raise ConfigurationError(f"missing setting(s): {', '.join(missing)}")

    def backend_kinds(self) -> dict[str, str]:
        """The backend chosen for each external system: `sandbox` or the vendor's name."""
        return {
            "crm": self.crm_backend,
            "billing": self.billing_backend,
            "payments": self.payment_backend,
        }

    def check_backends(self) -> None:
        """Fail fast when a real backend is chosen without its credentials, or when some
        systems are sandbox and others real without ALLOW_MIXED_BACKENDS."""
        if self.crm_backend == "salesforce":
            self.require("crm_base_url", "crm_access_token")
        if self.billing_backend == "zuora":
            self.require("billing_base_url", "billing_access_token")
        if self.payment_backend == "stripe":
            self.require("payment_secret_key")
        kinds = self.backend_kinds()
        sandbox = [name for name, kind in kinds.items() if kind == "sandbox"]
        real = [f"{name} ({kind})" for name, kind in kinds.items() if kind != "sandbox"]
        if sandbox and real and not self.allow_mixed_backends:
            raise ConfigurationError(
                f"mixed backends: sandbox {', '.join(sandbox)}; real {', '.join(real)}; "
                "set ALLOW_MIXED_BACKENDS=true to allow it"
            )
