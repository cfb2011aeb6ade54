"""The run driver and its jobs on real PostgreSQL: retries, parking, operator retry,
reconciliation and settling a row that disagrees with its checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from models.domain import ReviewDecision
from tests.fakes.services import FakeCRM, outage
from tests.integration.conftest import Harness
from workflows.controls import cancel_run, retry_run
from workflows.dispatch import Maintenance, maintenance_round


async def jobs_of(harness: Harness, run_id: str) -> list[dict[str, Any]]:
    async with harness.store.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT status::text AS status, scheduled_at FROM procrastinate_jobs "
                "WHERE lock = :lock ORDER BY id"
            ),
            {"lock": f"run:{run_id}"},
        )
        return [dict(r._mapping) for r in rows]


async def finish_jobs(harness: Harness, run_id: str) -> None:
    """Mark the run's waiting jobs done, as a worker would after running them."""
    async with harness.store.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE procrastinate_jobs SET status = 'succeeded' "
                "WHERE lock = :lock AND status = 'todo'"
            ),
            {"lock": f"run:{run_id}"},
        )


class FlakyCRM(FakeCRM):
    """A CRM whose case reads fail while `down` is set."""

    down = True

    async def get_case(self, *, case_id: str):  # type: ignore[no-untyped-def]
        if self.down:
            raise outage("crm")
        return await super().get_case(case_id=case_id)


async def approve(harness: Harness, run_id: str) -> None:
    """Record alice's approval of the run, as the API does."""
    await harness.store.record_decision(
        run_id=run_id,
        decision=ReviewDecision(
            decision="approved", reviewer="alice", decided_at=datetime.now(UTC)
        ),
        proposal_before=None,
    )


async def new_run(harness: Harness, case_id: str = "500A") -> str:
    run_id = "11111111-2222-3333-4444-555555555555"
    await harness.store.create_run(run_id=run_id, case_id=case_id, customer_id=None, actor="test")
    return run_id


async def test_a_new_run_is_started_by_its_driver(harness: Harness) -> None:
    run_id = await new_run(harness)
    outcome = await harness.driver.advance(run_id)
    assert outcome is not None and outcome.status == "pending"
    row = await harness.store.get_run(run_id)
    assert row is not None and row["status"] == "pending" and row["attempts"] == 0
    # A pending run with no decision: advancing again does nothing new.
    again = await harness.driver.advance(run_id)
    assert again is not None and again.status == "pending"
    assert len(harness.notifier.sent) == 1


async def test_a_first_leg_is_recorded_where_it_stops_with_every_step_audited(
    harness: Harness,
) -> None:
    started = await harness.runner.start(case_id="500A")
    assert started.status == "pending"
    trail = await harness.store.audit_trail(started.run_id)
    assert [e["step"] for e in trail if e["event"] == "step_completed"] == [
        "fetch_data",
        "validate_dispute",
        "generate_resolution",
        "route_review",
        "send_human_review",
    ]
    row = await harness.store.get_run(started.run_id)
    assert row is not None and row["status"] == "pending"
    assert row["crm_data"] and row["payment_data"] and row["resolution_proposal"]
    saver = harness.runner.graph.checkpointer
    assert saver is not None
    config = {"configurable": {"thread_id": started.run_id}}
    assert len([c async for c in saver.alist(config)]) == 1  # one checkpoint, at the pause


async def test_retryable_failures_back_off_then_park_then_an_operator_retry_finishes(
    harness: Harness,
) -> None:
    crm = FlakyCRM(harness.world)
    flaky = harness.with_context(crm=crm)
    run_id = await new_run(flaky)

    first = await flaky.driver.advance(run_id)
    assert first is not None and first.retryable
    row = await flaky.store.get_run(run_id)
    assert row is not None
    assert (row["status"], row["attempts"]) == ("running", 1)
    assert row["next_attempt_at"] is not None and row["last_error"]["step"] == "fetch_data"
    [job] = await jobs_of(flaky, run_id)
    assert job["status"] == "todo" and job["scheduled_at"] == row["next_attempt_at"]

    await finish_jobs(flaky, run_id)
    await flaky.driver.advance(run_id)
    await finish_jobs(flaky, run_id)
    await flaky.driver.advance(run_id)  # the third attempt of three
    row = await flaky.store.get_run(run_id)
    assert row is not None and (row["status"], row["attempts"]) == ("needs_attention", 3)
    assert row["next_attempt_at"] is None
    # Parked: nothing drives it until an operator does.
    assert await flaky.driver.advance(run_id) is None
    assert await flaky.driver.reconcile() == 0

    crm.down = False
    await retry_run(flaky.store, flaky.jobs, run_id=run_id, actor="ops", reason="CRM is back")
    assert [j["status"] for j in await jobs_of(flaky, run_id)][-1] == "todo"
    outcome = await flaky.driver.advance(run_id)
    assert outcome is not None and outcome.status == "pending"
    events = [e["event"] for e in await flaky.store.audit_trail(run_id)]
    assert "run_needs_attention" in events and "run_retried" in events


async def test_a_decision_wakes_its_run_and_is_applied_once(harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    await finish_jobs(harness, started.run_id)
    await approve(harness, started.run_id)
    assert [j["status"] for j in await jobs_of(harness, started.run_id)] == ["todo"]
    done = await harness.driver.advance(started.run_id)
    assert done is not None and done.status == "completed"
    assert await harness.driver.advance(started.run_id) is None
    assert len(harness.payments.refunds) == 1
    assert await harness.store.unapplied_decisions() == []


async def test_reconcile_wakes_runs_without_a_driver_and_only_those(harness: Harness) -> None:
    orphan = await new_run(harness)  # created without a job: a crash after the commit
    assert await harness.driver.reconcile() == 1
    assert [j["status"] for j in await jobs_of(harness, orphan)] == ["todo"]
    # It has a driver now: reconciling again wakes nothing.
    assert await harness.driver.reconcile() == 0


async def test_a_row_behind_its_checkpoint_is_settled(harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    # A crash after the checkpoint of the pause but before the row was updated.
    await harness.store.update_run(started.run_id, status="running", current_step="route_review")
    await finish_jobs(harness, started.run_id)
    assert await harness.driver.reconcile() == 1
    outcome = await harness.driver.advance(started.run_id)
    assert outcome is not None and outcome.status == "pending"
    row = await harness.store.get_run(started.run_id)
    assert row is not None and row["status"] == "pending"
    assert row["human_review_data"]["awaiting_round"] == 1
    assert len(harness.notifier.sent) == 1  # the review request was not sent twice


async def test_cancel_ends_a_pending_run_and_nothing_executes(harness: Harness) -> None:
    started = await harness.runner.start(case_id="500A")
    await cancel_run(harness.store, run_id=started.run_id, actor="ops", reason="duplicate case")
    assert await harness.driver.advance(started.run_id) is None
    row = await harness.store.get_run(started.run_id)
    assert row is not None and row["status"] == "cancelled" and row["completed_at"] is not None
    assert harness.payments.refunds == {}


async def test_checkpoints_of_old_final_runs_are_pruned_and_the_record_kept(
    harness: Harness,
) -> None:
    old = await harness.runner.start(case_id="500A")
    await harness.store.record_decision(
        run_id=old.run_id,
        decision=ReviewDecision(
            decision="rejected", reviewer="alice", decided_at=datetime.now(UTC)
        ),
        proposal_before=None,
    )
    assert (await harness.driver.advance(old.run_id)).status == "rejected"  # type: ignore[union-attr]
    await harness.store.update_run(old.run_id, completed_at=datetime(2020, 1, 1, tzinfo=UTC))
    recent = await harness.runner.start(case_id="500A")  # a later dispute of the same case
    pruned: list[str] = []

    async def prune(run_id: str) -> None:
        pruned.append(run_id)
        await harness.runner.graph.checkpointer.adelete_thread(run_id)  # type: ignore[union-attr]

    settings = Maintenance(retention=timedelta(days=30))
    await maintenance_round(harness.driver, settings, prune=prune)
    await maintenance_round(harness.driver, settings, prune=prune)
    assert pruned == [old.run_id]  # once: the second round finds nothing left to prune
    assert (await harness.runner.snapshot(old.run_id)).created_at is None
    assert (await harness.runner.snapshot(recent.run_id)).created_at is not None
    row = await harness.store.get_run(old.run_id)
    assert row is not None and row["status"] == "rejected" and row["human_review_data"]
    assert [d["decision"] for d in await harness.store.decisions_for_run(old.run_id)] == [
        "rejected"
    ]
    assert await harness.store.audit_trail(old.run_id)


async def test_a_run_whose_checkpoint_write_failed_is_continued(harness: Harness) -> None:
    """The database goes away after the money step's writes were saved and before the
    checkpoint after it: the driver continues the run from there, not settles it as
    finished, and the refund is not made again."""
    started = await harness.runner.start(case_id="500A")
    await finish_jobs(harness, started.run_id)
    await approve(harness, started.run_id)
    saver = harness.runner.graph.checkpointer
    assert saver is not None
    real_aput = saver.aput
    failed = False

    async def failing_aput(*args: Any, **kwargs: Any) -> Any:
        nonlocal failed
        if harness.payments.refunds and not failed:  # the checkpoint after move_money
            failed = True
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return await real_aput(*args, **kwargs)

    saver.aput = failing_aput  # type: ignore[method-assign]
    with pytest.raises(psycopg.OperationalError):
        await harness.driver.advance(started.run_id)
    saver.aput = real_aput  # type: ignore[method-assign]
    assert failed
    snapshot = await harness.runner.snapshot(started.run_id)
    assert snapshot.tasks and not snapshot.next  # the state the driver must not mistake

    await finish_jobs(harness, started.run_id)  # the job that failed is over
    assert await harness.driver.reconcile() == 1  # it left the run without a driver
    outcome = await harness.driver.advance(started.run_id)
    assert outcome is not None and outcome.status == "completed"
    assert len(harness.payments.refunds) == 1
