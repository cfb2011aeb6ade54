"""The sandbox CRM keeps a case's status as Salesforce does: an outcome recorded on the case
sets it, and a later read shows it (so a resolved case is refused as closed)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.sandbox.backends import SandboxCRM
from services.sandbox.data import load_dataset
from services.sandbox.ledger import SandboxLedger


async def test_a_recorded_outcome_sets_the_case_status(engine: AsyncEngine) -> None:
    dataset = load_dataset(datetime.now(UTC))
    crm = SandboxCRM(dataset=dataset, ledger=SandboxLedger(engine))
    case = next(iter(dataset.open_cases()))
    assert (await crm.get_case(case_id=case.case_id)).status == case.status
    await crm.record_outcome(
        case_id=case.case_id, status="Resolved", summary="refunded", idempotency_key="k1"
    )
    assert (await crm.get_case(case_id=case.case_id)).status == "Resolved"
    # Another sandbox process on the same database sees it too (the ledger is durable).
    again = SandboxCRM(dataset=load_dataset(datetime.now(UTC)), ledger=SandboxLedger(engine))
    assert (await again.get_case(case_id=case.case_id)).status == "Resolved"
