"""The sandbox dataset's shape: customers, subscriptions, charges, cases, card disputes
and early fraud warnings by id."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.domain import BillingData, Charge, CRMAccount, CRMCase, Dispute, EarlyFraudWarning


@dataclass(frozen=True)
class SandboxDataset:
    """Customers, subscriptions, charges and dispute cases, keyed by their ids."""

    accounts: dict[str, CRMAccount]
    cases: dict[str, CRMCase]
    billing: dict[str, BillingData]
    charges: dict[str, Charge]
    # Cases of the dataset that must fail validation, with the rule that fails them.
    expected_invalid: dict[str, str] = field(default_factory=dict)
    # Card disputes (chargebacks) as opened by the issuers; what this system answers is
    # kept in the sandbox ledger (services/sandbox/backends.py).
    disputes: dict[str, Dispute] = field(default_factory=dict)
    early_fraud_warnings: dict[str, EarlyFraudWarning] = field(default_factory=dict)

    def open_cases(self) -> list[CRMCase]:
        """Open dispute cases, the ones the demo publishes."""
        return [c for c in self.cases.values() if c.status not in ("Closed", "Resolved")]
