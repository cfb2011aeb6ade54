"""CRM (Salesforce) contract and its sandbox implementation."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from models.domain import CRMAccount, CRMCase
from services.errors import NotFoundError
from services.sandbox import SandboxDataset, SandboxLedger


class CRMClient(Protocol):
    backend: str

    async def get_case(self, *, case_id: str) -> CRMCase: ...

    async def get_account(self, *, account_id: str) -> CRMAccount: ...

    async def list_account_disputes(self, *, account_id: str, since: datetime) -> list[CRMCase]:
        """Dispute cases of the account created at or after `since` (all statuses)."""
        ...

    async def record_outcome(
        self, *, case_id: str, status: str, summary: str, idempotency_key: str
    ) -> None:
        """Write the resolution outcome to the case; repeating the same key changes nothing."""
        ...


class SandboxCRM:
    """The built-in dataset's cases and accounts; outcomes go to the sandbox ledger."""

    backend = "sandbox"

    def __init__(self, *, dataset: SandboxDataset, ledger: SandboxLedger) -> None:
        self._data = dataset
        self._ledger = ledger

    async def get_case(self, *, case_id: str) -> CRMCase:
        case = self._data.cases.get(case_id)
        if case is None:
            raise NotFoundError(f"case {case_id} not found in CRM")
        return case

    async def get_account(self, *, account_id: str) -> CRMAccount:
        account = self._data.accounts.get(account_id)
        if account is None:
            raise NotFoundError(f"account {account_id} not found in CRM")
        return account

    async def list_account_disputes(self, *, account_id: str, since: datetime) -> list[CRMCase]:
        return [
            case
            for case in self._data.cases.values()
            if case.account_id == account_id and case.created_at >= since
        ]

    async def record_outcome(
        self, *, case_id: str, status: str, summary: str, idempotency_key: str
    ) -> None:
        if case_id not in self._data.cases:
            raise NotFoundError(f"case {case_id} not found in CRM")
        await self._ledger.record(
            idempotency_key=idempotency_key,
            kind="case_update",
            subject_id=case_id,
            payload={"status": status, "summary": summary},
        )
