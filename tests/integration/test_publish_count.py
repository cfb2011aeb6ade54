"""utils/publish_sqs_message.py --count N: N events per case, each with its own event id,
on a real SQS endpoint (moto's server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from services.queue import ensure_queue, sqs_client
from services.sandbox.data import load_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def publish(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SQS_", "AWS_"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "utils" / "publish_sqs_message.py"), *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def drain(client: Any, url: str) -> list[dict[str, Any]]:
    """Every message on the queue, as parsed event bodies."""
    events: list[dict[str, Any]] = []
    while True:
        response = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = response.get("Messages", [])
        if not messages:
            return events
        for message in messages:
            events.append(json.loads(message["Body"]))
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_count_publishes_that_many_events_with_distinct_ids(endpoint: str, tmp_path: Path) -> None:
    client = sqs_client(region="us-east-1", endpoint_url=endpoint, embedded=True)
    url = ensure_queue(client, name=f"d-{uuid.uuid4().hex[:8]}", max_receive_count=5, visibility=10)
    env = {
        "SQS_QUEUE_URL": url,
        "SQS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    result = publish("--case-id", "500XX0042", "--count", "3", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    events = drain(client, url)
    assert len(events) == 3
    assert {e["case_id"] for e in events} == {"500XX0042"}
    assert {e["type"] for e in events} == {"dispute.created"}
    event_ids = {e["event_id"] for e in events}
    assert len(event_ids) == 3
    # What it printed is what it published.
    assert {line.split()[1] for line in result.stdout.splitlines()} == event_ids


def test_count_applies_to_every_open_case(endpoint: str, tmp_path: Path) -> None:
    """Without --case-id: N events for each open sandbox case, on the embedded endpoint."""
    client = sqs_client(region="us-east-1", endpoint_url=endpoint, embedded=True)
    name = f"d-{uuid.uuid4().hex[:8]}"
    url = ensure_queue(client, name=name, max_receive_count=5, visibility=10)
    env = {"EMBEDDED_SQS_PORT": endpoint.rsplit(":", 1)[1], "SQS_QUEUE_NAME": name}
    result = publish("--count", "2", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    open_cases = {c.case_id for c in load_dataset(datetime.now(UTC)).open_cases()}
    events = drain(client, url)
    assert len(events) == 2 * len(open_cases)
    assert len({e["event_id"] for e in events}) == len(events)
    for case_id in open_cases:
        assert sum(e["case_id"] == case_id for e in events) == 2


def test_count_below_one_is_refused(tmp_path: Path) -> None:
    result = publish("--case-id", "500XX0042", "--count", "0", env={}, cwd=tmp_path)
    assert result.returncode == 2 and "--count must be at least 1" in result.stderr


def test_no_running_endpoint_is_one_line(tmp_path: Path) -> None:
    result = publish("--case-id", "500XX0042", env={"EMBEDDED_SQS_PORT": "1"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: no queue dispute-events at")
    assert result.stderr.count("\n") == 1
