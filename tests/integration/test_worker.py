"""The worker against a real SQS endpoint (moto's server over HTTP) and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from models.domain import ReviewDecision
from services.queue import DisputeQueue, ensure_queue, sqs_client
from tests.fakes.services import NOW
from tests.integration.conftest import Harness
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
async def worker(
    harness: Harness, queue: DisputeQueue, postgres_url: str
) -> AsyncIterator[DisputeWorker]:
    yield DisputeWorker(
        queue=queue,
        runner=harness.runner,
        store=harness.store,
        postgres_url=postgres_url,
        settings=WorkerSettings(max_in_flight=3, visibility_timeout=30, wait_time=0),
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


async def drain(worker: DisputeWorker, *, seconds: float = 3.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


async def test_event_starts_a_run_that_pauses_and_the_message_is_deleted(
    worker: DisputeWorker, harness: Harness, queue: DisputeQueue
) -> None:
    queue.client.send_message(QueueUrl=queue.url, MessageBody=event())
    await drain(worker)
    runs = await harness.store.runs_for_case("500A")
    assert [r["status"] for r in runs] == ["pending"]
    # The customer comes from the CRM and the payment system, not from the message.
    assert runs[0]["customer_id"] == "cus_A"
    assert receive(queue) == []


async def test_redelivered_event_and_second_event_for_case_start_nothing(
    worker: DisputeWorker, harness: Harness, queue: DisputeQueue
) -> None:
    body = event(event_id="evt_same")
    first = {"MessageId": "m1", "Body": body, "ReceiptHandle": "r1"}
    assert await worker.process_message(first) is True
    assert await worker.process_message({**first, "MessageId": "m2"}) is True
    assert await worker.process_message({"MessageId": "m3", "Body": event()}) is True
    runs = await harness.store.runs_for_case("500A")
    assert len(runs) == 1
    outcomes = [m["outcome"] for m in await harness.store.messages()]
    assert outcomes == ["accepted", "duplicate"]
    assert len(harness.notifier.sent) == 1


async def test_malformed_messages_are_recorded_and_consumption_continues(
    worker: DisputeWorker, harness: Harness, queue: DisputeQueue
) -> None:
    for body in ["{not json", json.dumps({"type": "dispute.created"}), "__import__('os')"]:
        queue.client.send_message(QueueUrl=queue.url, MessageBody=body)
    queue.client.send_message(QueueUrl=queue.url, MessageBody=event())
    await drain(worker, seconds=2.5)
    rejected = await harness.store.messages(outcome="rejected")
    assert {m["body"] for m in rejected} >= {"{not json", "__import__('os')"}
    assert all(m["error"] for m in rejected)
    assert [r["status"] for r in await harness.store.runs_for_case("500A")] == ["pending"]


async def test_recorded_decision_is_applied_by_the_sweep(
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
    # No worker was listening when the decision was recorded: the sweep finds it.
    assert await worker.apply_pending_decisions() == 1
    run = await harness.store.get_run(started.run_id)
    assert run is not None and run["status"] == "completed"
    assert len(harness.payments.refunds) == 1
    assert await worker.apply_pending_decisions() == 0
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
