"""Choose and build the CRM, billing and payment backends named by the settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import stripe

from models.dispute_types import DEFAULT_DISPUTE_TYPE_LABELS
from services.integrations.protocols import (
    Backends,
    BillingClient,
    CRMClient,
    DisputeGateway,
    PaymentGateway,
)
from services.integrations.salesforce import SalesforceCRM
from services.integrations.stripe_gateway import StripeGateway, new_stripe_client
from services.integrations.zuora import ZuoraBilling
from services.retry import RetryPolicy
from services.settings import ConfigurationError, Settings


@dataclass(frozen=True)
class Integrations:
    """The three external systems, plus the retry policy their calls run under."""

    crm: CRMClient
    billing: BillingClient
    payments: PaymentGateway
    retry: RetryPolicy
    # Disputes and early fraud warnings, from the same system as `payments`; None only
    # when a sandbox set of backends handed in has none.
    disputes: DisputeGateway | None = None
    _closers: tuple[Callable[[], Awaitable[None]], ...] = field(default=(), repr=False)

    def backends(self) -> dict[str, str]:
        """Which backend each integration uses (kinds only, never a URL or an account)."""
        return {
            "crm": self.crm.backend,
            "billing": self.billing.backend,
            "payments": self.payments.backend,
        }

    def sandbox_systems(self) -> list[str]:
        """The systems served by the sandbox (e.g. `["payments"]`), for proposals and the
        dashboard to say which side of a mixed configuration is not real."""
        return [name for name, kind in self.backends().items() if kind == "sandbox"]

    async def aclose(self) -> None:
        """Close the clients built here (the injected httpx client stays the caller's)."""
        for close in self._closers:
            await close()


def build_integrations(
    settings: Settings,
    *,
    sandbox: Backends | None,
    http_client: httpx.AsyncClient,
    retry: RetryPolicy | None = None,
) -> Integrations:
    """Build the backends chosen by CRM_BACKEND, BILLING_BACKEND and PAYMENT_BACKEND;
    `sandbox` supplies the ones set to `sandbox` (services/sandbox/backends.py).

    Raises ConfigurationError for missing credentials, and for sandbox and real systems
    mixed without ALLOW_MIXED_BACKENDS (`Settings.check_backends`).
    """
    settings.check_backends()
    timeout = settings.integration_timeout_seconds
    closers: list[Callable[[], Awaitable[None]]] = []

    def fallback() -> Backends:
        if sandbox is None:
            raise ConfigurationError("a sandbox backend needs the sandbox dataset and ledger")
        return sandbox

    crm: CRMClient
    if settings.crm_backend == "salesforce":
        assert settings.crm_base_url and settings.crm_access_token  # check_backends
        crm = SalesforceCRM(
            http_client=http_client,
            base_url=settings.crm_base_url,
            access_token=settings.crm_access_token.get_secret_value(),
            api_version=settings.crm_api_version,
            timeout=timeout,
            multi_currency=settings.crm_multi_currency,
            dispute_types=DEFAULT_DISPUTE_TYPE_LABELS.extended(settings.dispute_type_labels),
        )
    else:
        crm = fallback().crm

    billing: BillingClient
    if settings.billing_backend == "zuora":
        assert settings.billing_base_url and settings.billing_access_token
        billing = ZuoraBilling(
            http_client=http_client,
            base_url=settings.billing_base_url,
            access_token=settings.billing_access_token.get_secret_value(),
            timeout=timeout,
            credit_charge_id=settings.billing_credit_charge_id,
        )
    else:
        billing = fallback().billing

    payments: PaymentGateway
    disputes: DisputeGateway | None
    if settings.payment_backend == "stripe":
        assert settings.payment_secret_key
        stripe_http = stripe.HTTPXClient(timeout=timeout)
        closers.append(stripe_http.close_async)
        gateway = StripeGateway(
            client=new_stripe_client(
                secret_key=settings.payment_secret_key.get_secret_value(),
                api_base=settings.payment_api_base,
                http_client=stripe_http,
            )
        )
        payments, disputes = gateway, gateway
    else:
        payments, disputes = fallback().payments, fallback().disputes

    return Integrations(
        crm=crm,
        billing=billing,
        payments=payments,
        disputes=disputes,
        retry=retry or RetryPolicy(max_attempts=settings.integration_max_attempts),
        _closers=tuple(closers),
    )


__all__ = ["Integrations", "build_integrations"]
