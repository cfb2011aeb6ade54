"""The run store's guarantees: append-only audit, one decision per round, run locks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models.domain import ReviewDecision
from services.errors import ConflictError
from services.persistence.store import RunBusyError, WorkflowStore


@pytest.fixture
async def store(engine) -> WorkflowStore:
    return WorkflowStore(engine)


async def test_audit_trail_is_append_only(store: WorkflowStore) -> None:
    await store.audit(run_id=None, case_id="500X", step="s", actor="a", event="e")
    for statement in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with store.engine.begin() as conn:
                await conn.execute(text(statement))
    async with store.engine.connect() as conn:
        actors = (await conn.execute(text("SELECT actor FROM audit_events"))).scalars().all()
    assert actors == ["a"]


async def test_one_decision_per_round(store: WorkflowStore) -> None:
    run_id = str(uuid.uuid4())
    await store.create_run(run_id=run_id, case_id="500X", customer_id=None, actor="test")
    decision = ReviewDecision(decision="approved", reviewer="alice", decided_at=datetime.now(UTC))
    await store.record_decision(run_id=run_id, decision=decision, proposal_before=None)
    with pytest.raises(ConflictError):
        await store.record_decision(
            run_id=run_id,
            decision=decision.model_copy(update={"reviewer": "bob"}),
            proposal_before=None,
        )
    assert [d["reviewer"] for d in await store.decisions_for_run(run_id)] == ["alice"]


async def test_run_lock_is_exclusive_and_released(store: WorkflowStore) -> None:
    async with store.run_lock("run-1"):
        with pytest.raises(RunBusyError):
            async with store.run_lock("run-1"):
                pass
        async with store.run_lock("run-2"):
            pass
    async with store.run_lock("run-1"):
        pass
