"""The worker against a real SQS endpoint (moto's server over HTTP) and PostgreSQL: the
intake records events and runs atomically, Procrastinate jobs drive the runs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import text

from models.domain import ReviewDecision
from services.queue import DisputeQueue, ensure_queue, sqs_client
from tests.fakes.services import NOW, FakeCRM, outage
from tests.integration.conftest import Harness
from workflows.dispatch import Maintenance, RetryPolicy, RunDriver
from workflows.intake import DisputeIntake, IntakeSettings
from workflows.worker import DisputeWorker, WorkerSettings


@pytest.fixture(scope="module")
def sqs_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def queue(sqs_endpoint: str) -> DisputeQueue:
    client = sqs_client(region="us-east-1", endpoint_url=sqs_endpoint, embedded=True)
    url = ensure_queue(
        client, name=f"disputes-{uuid.uuid4().hex[:8]}", max_receive_count=2, visibility=30
    )
    return DisputeQueue(client, url, sqs_endpoint)


@pytest.fixture
def intake(harness: Harness, queue: DisputeQueue) -> DisputeIntake:
    return DisputeIntake(
        queue=queue,
        store=harness.store,
        jobs=harness.jobs,
        settings=IntakeSettings(visibility_timeout=30, wait_time=0),
    )


@pytest.fixture
def worker(harness: Harness, intake: DisputeIntake) -> DisputeWorker:
    return DisputeWorker(
        intake=intake,
        driver=harness.driver,
        settings=WorkerSettings(
            concurrency=3, maintenance=Maintenance(reconcile_interval=0.2, retention=None)
        ),
    )


def event(case_id: str = "500A", event_id: str | None = None) -> str:
    return json.dumps(
        {
            "type": "dispute.created",
            "event_id": event_id or f"evt_{uuid.uuid4().hex}",
            "case_id": case_id,
            "customer_id": "cus_from_message",
        }
    )


def receive(queue: DisputeQueue, *, wait: int = 1) -> list[dict[str, Any]]:
    response = queue.client.receive_message(
        QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, VisibilityTimeout=0
    )
    return list(response.get("Messages", []))


async def drain(
    worker: DisputeWorker, until: Callable[[], Awaitable[bool]], *, seconds: float = 15.0
) -> None:
    """Run the worker until `until()` holds (or `seconds` pass), then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        while not await until() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task


def statuses(harness: Harness, case_id: str = "500A") -> Callable[[], Awaitable[bool]]:
    async def settled() -> bool:
        runs = await harness.store.runs_for_case(case_id)
        return bool(runs) and all(r["status"] != "running" for r in runs)

    return settled


async def test_event_starts_a_run_that_pauses_and_the_message_is_deleted(
    worker: DisputeWorker, harness: Harness, queue: DisputeQueue
) -> None:
    queue.client.send_message(QueueUrl=queue.url, MessageBody=event())
    await drain(worker, statuses(harness))
    runs = await harness.store.runs_for_case("500A")
    assert [r["status"] for r in runs] == ["pending"]
    # The customer comes from the CRM and the payment system, not from the message.
    assert runs[0]["customer_id"] == "cus_A"
    assert receive(queue) == []


async def test_redelivered_event_and_second_event_for_case_start_nothing(
    intake: DisputeIntake, harness: Harness
) -> None:
    body = event(event_id="evt_same")
    first = {"MessageId": "m1", "Body": body, "ReceiptHandle": "r1"}
    assert await intake.process_message(first) is True
    assert await intake.process_message({**first, "MessageId": "m2"}) is True
    assert await intake.process_message({"MessageId": "m3", "Body": event()}) is True
    runs = await harness.store.runs_for_case("500A")
    assert len(runs) == 1
    outcomes = [m["outcome"] for m in await harness.store.messages()]
    assert outcomes == ["accepted", "duplicate"]
    # One run, one driver: the duplicates deferred nothing.
    assert await harness.store.runs_owed_a_driver() == []
    async with harness.store.engine.connect() as conn:
        jobs = (await conn.execute(text("SELECT count(*) FROM procrastinate_jobs"))).scalar()
    assert jobs == 1


async def test_the_message_and_the_run_are_recorded_together_or_not_at_all(
    intake: DisputeIntake, harness: Harness
) -> None:
    async def broken_wake(connection: Any, run_id: str) -> None:
        raise RuntimeError("the database went away mid-transaction")

    message = {"MessageId": "m1", "Body": event(event_id="evt_1"), "ReceiptHandle": "r1"}
    with pytest.raises(RuntimeError):
        await harness.store.accept_event(
            message_id="m1", event_id="evt_1", case_id="500A", customer_id=None, wake=broken_wake
        )
    # Neither the message nor the run was recorded: the redelivery starts the run.
    assert await harness.store.messages() == []
    assert await harness.store.runs_for_case("500A") == []
    assert await intake.process_message(message) is True
    [run] = await harness.store.runs_for_case("500A")
    assert [m["run_id"] for m in await harness.store.messages()] == [run["run_id"]]
    assert [r for r, _ in await harness.store.runs_owed_a_driver()] == []


async def test_malformed_messages_are_recorded_once_and_consumption_continues(
    worker: DisputeWorker, intake: DisputeIntake, harness: Harness, queue: DisputeQueue
) -> None:
    for body in ["{not json", json.dumps({"type": "dispute.created"}), "__import__('os')"]:
        queue.client.send_message(QueueUrl=queue.url, MessageBody=body)
    queue.client.send_message(QueueUrl=queue.url, MessageBody=event())
    await drain(worker, statuses(harness))
    rejected = await harness.store.messages(outcome="rejected")
    assert {m["body"] for m in rejected} >= {"{not json", "__import__('os')"}
    assert all(m["error"] for m in rejected)
    assert [r["status"] for r in await harness.store.runs_for_case("500A")] == ["pending"]
    # A body received again is the same record, counted, not a new one.
    again = {"MessageId": "m-bad", "Body": "{not json", "ReceiptHandle": "r"}
    assert await intake.process_message(again) is False
    assert await intake.process_message(again) is False
    [row] = [m for m in await harness.store.messages() if m["message_id"] == "m-bad"]
    assert row["receives"] == 2


async def test_a_recorded_decision_is_applied_by_the_running_worker(
    worker: DisputeWorker, harness: Harness
) -> None:
    started = await harness.runner.start(case_id="500A")
    await harness.store.record_decision(
        run_id=started.run_id,
        decision=ReviewDecision(
            decision="approved", reviewer="alice", decided_at=datetime.now(NOW.tzinfo)
        ),
        proposal_before=None,
    )

    async def completed() -> bool:
        run = await harness.store.get_run(started.run_id)
        return run is not None and run["status"] == "completed"

    await drain(worker, completed)
    assert await completed()
    assert len(harness.payments.refunds) == 1
    assert await harness.driver.apply_pending_decisions() == 0
    assert len(harness.payments.refunds) == 1


def test_ensure_queue_updates_an_existing_queue(sqs_endpoint: str) -> None:
    client = sqs_client(region="us-east-1", endpoint_url=sqs_endpoint, embedded=True)
    name = f"disputes-{uuid.uuid4().hex[:8]}"
    first = ensure_queue(client, name=name, max_receive_count=2, visibility=30)
    again = ensure_queue(client, name=name, max_receive_count=2, visibility=45)
    assert again == first
    attributes = client.get_queue_attributes(QueueUrl=first, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "45"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 2


class CRMOutage(FakeCRM):
    """A CRM that refuses every case read until `until` (monotonic seconds)."""

    until = 0.0
    reads_refused = 0

    async def get_case(self, *, case_id: str):  # type: ignore[no-untyped-def]
        if time.monotonic() < self.until:
            self.reads_refused += 1
            raise outage("crm")
        return await super().get_case(case_id=case_id)


async def test_an_outage_longer_than_the_queue_redrive_ends_and_the_run_resumes_by_itself(
    harness: Harness, queue: DisputeQueue
) -> None:
    crm = CRMOutage(harness.world)
    crm.until = time.monotonic() + 2.0
    down = harness.with_context(crm=crm)
    down.driver = RunDriver(
        runner=down.runner,
        store=down.store,
        jobs=down.jobs,
        retry=RetryPolicy(max_attempts=20, base_seconds=0.1, max_seconds=0.4),
    )
    worker = DisputeWorker(
        intake=DisputeIntake(
            queue=queue,
            store=down.store,
            jobs=down.jobs,
            settings=IntakeSettings(visibility_timeout=30, wait_time=0),
        ),
        driver=down.driver,
        settings=WorkerSettings(
            concurrency=2,
            poll_seconds=0.1,
            maintenance=Maintenance(reconcile_interval=0.2, retention=None),
        ),
    )
    queue.client.send_message(QueueUrl=queue.url, MessageBody=event())
    await drain(worker, statuses(down), seconds=20)

    [run] = await down.store.runs_for_case("500A")
    assert run["status"] == "pending"
    assert crm.reads_refused >= 2  # it failed, backed off and tried again, unattended
    assert run["attempts"] == 0 and run["next_attempt_at"] is None
    trail = [e["event"] for e in await down.store.audit_trail(str(run["run_id"]))]
    assert trail.count("step_failed_retryable") == crm.reads_refused
    # The queue was intake only: the message left it at once and never reached the DLQ,
    # however long the outage (the queue gives up after 2 receives).
    assert receive(queue) == []
