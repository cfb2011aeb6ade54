"""utils/dlq.py against a real SQS endpoint (moto's server): dead letters are listed,
shown and redriven to the dispute queue, where they are consumable again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from services.queue import DisputeQueue, ensure_queue, sqs_client
from services.settings import Settings
from utils import dlq

ROOT = Path(__file__).resolve().parents[2]
MAX_RECEIVES = 2


@dataclass
class Sqs:
    client: Any
    port: int
    endpoint: str
    name: str
    url: str
    dlq_url: str

    def settings(self) -> Settings:
        """What an operator's environment says: nothing but the embedded endpoint's port."""
        return Settings(_env_file=None, embedded_sqs_port=self.port, sqs_queue_name=self.name)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SQS_", "AWS_"))}
        return {**env, "EMBEDDED_SQS_PORT": str(self.port), "SQS_QUEUE_NAME": self.name, **extra}

    def count(self, url: str) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def receive(self, url: str) -> list[dict[str, Any]]:
        """Every visible message, received once and left to reappear at once."""
        response = self.client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages


@pytest.fixture(scope="module")
def moto_server() -> Iterator[ThreadedMotoServer]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sqs(moto_server: ThreadedMotoServer) -> Sqs:
    """A fresh dispute queue whose messages are dead-lettered after MAX_RECEIVES receives."""
    host, port = moto_server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = sqs_client(region="us-east-1", endpoint_url=endpoint, embedded=True)
    name = f"disputes-{uuid.uuid4().hex[:8]}"
    url = ensure_queue(client, name=name, max_receive_count=MAX_RECEIVES, visibility=10)
    dlq_url = client.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
    return Sqs(client, port, endpoint, name, url, dlq_url)


def dead_letter(sqs: Sqs, expected: int) -> None:
    """Receive (and never delete) until `expected` messages are in the dead-letter queue."""
    for _ in range(5 * MAX_RECEIVES):
        if not sqs.receive(sqs.url) and sqs.count(sqs.dlq_url) == expected:
            return
    raise AssertionError(f"{sqs.count(sqs.dlq_url)} dead-lettered, expected {expected}")


def run_script(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """utils/dlq.py as an operator starts it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "utils" / "dlq.py"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


MALFORMED = "{not json"


def dead_letters(sqs: Sqs) -> tuple[str, str, str]:
    """A dispute event and a malformed body, both dead-lettered.

    Returns the event's message id, the malformed body's message id and the event id.
    """
    event_id = DisputeQueue(sqs.client, sqs.url, sqs.endpoint).publish(case_id="500XX0001")
    sqs.client.send_message(QueueUrl=sqs.url, MessageBody=MALFORMED)
    dead_letter(sqs, expected=2)
    by_body = {m["Body"]: m["MessageId"] for m in sqs.receive(sqs.dlq_url)}
    malformed = by_body.pop(MALFORMED)
    [event_message] = by_body.values()
    return event_message, malformed, event_id


def test_list_show_and_redrive_one(sqs: Sqs, tmp_path: Path) -> None:
    event_message, malformed_message, event_id = dead_letters(sqs)

    listed = run_script("list", env=sqs.env(), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert set(lines) == {event_message, malformed_message}
    assert f"event={event_id}" in lines[event_message]
    assert "case=500XX0001" in lines[event_message]
    # The dispute queue's receives and dead_letters' own look, not the listing's.
    assert f"receives={MAX_RECEIVES + 1}" in lines[event_message]
    assert "event=-" in lines[malformed_message] and MALFORMED in lines[malformed_message]
    # Looking did not hide them: both are visible again at once.
    assert len(sqs.receive(sqs.dlq_url)) == 2

    redriven = run_script("redrive", event_message, env=sqs.env(), cwd=tmp_path)
    assert redriven.returncode == 0, redriven.stderr
    assert f"redrove {event_message} as " in redriven.stdout

    # Back on the dispute queue, consumable as a worker consumes it.
    [message] = sqs.client.receive_message(QueueUrl=sqs.url, WaitTimeSeconds=1)["Messages"]
    assert json.loads(message["Body"])["event_id"] == event_id
    sqs.client.delete_message(QueueUrl=sqs.url, ReceiptHandle=message["ReceiptHandle"])
    assert sqs.count(sqs.url) == 0
    # The malformed one stays dead-lettered.
    assert [m["MessageId"] for m in sqs.receive(sqs.dlq_url)] == [malformed_message]


def test_show_prints_the_whole_message(sqs: Sqs, capsys: pytest.CaptureFixture[str]) -> None:
    event_message, _, event_id = dead_letters(sqs)
    assert dlq.main(["show", event_message], settings=sqs.settings()) == 0
    out = capsys.readouterr().out
    assert f"MessageId: {event_message}" in out
    assert "Attribute SentTimestamp: " in out
    # The dispute queue's receives and dead_letters' own look; then this one.
    assert f"Receives: {MAX_RECEIVES + 1} (before this look)" in out
    assert f"Attribute ApproximateReceiveCount: {MAX_RECEIVES + 2}" in out
    body = json.loads(out.split("Body:\n", 1)[1])
    assert body["event_id"] == event_id and body["case_id"] == "500XX0001"
    assert body["type"] == "dispute.created"


def test_redrive_all_empties_the_dead_letter_queue(sqs: Sqs, tmp_path: Path) -> None:
    _, _, event_id = dead_letters(sqs)
    # The configured path: SQS_QUEUE_URL on SQS_ENDPOINT_URL, credentials from boto3's chain.
    env = sqs.env(
        SQS_QUEUE_URL=sqs.url,
        SQS_ENDPOINT_URL=sqs.endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
    )
    redriven = run_script("redrive", "--all", env=env, cwd=tmp_path)
    assert redriven.returncode == 0, redriven.stderr
    assert "2 message(s) back on" in redriven.stdout
    assert sqs.count(sqs.dlq_url) == 0
    assert sqs.receive(sqs.dlq_url) == []
    bodies = {m["Body"] for m in sqs.receive(sqs.url)}
    assert MALFORMED in bodies and len(bodies) == 2
    assert json.loads(min(bodies - {MALFORMED}))["event_id"] == event_id
    listed = run_script("list", env=env, cwd=tmp_path)
    assert listed.stdout.startswith(f"{sqs.dlq_url}: 0 message(s)")


def test_an_unknown_id_redrives_nothing(sqs: Sqs, capsys: pytest.CaptureFixture[str]) -> None:
    event_message, _, _ = dead_letters(sqs)
    code = dlq.main(["redrive", event_message, "no-such-id"], settings=sqs.settings())
    assert code == 1
    assert "no-such-id" in capsys.readouterr().err
    assert sqs.count(sqs.dlq_url) == 2 and sqs.count(sqs.url) == 0


def test_configuration_errors_are_one_line(sqs: Sqs, tmp_path: Path) -> None:
    # No endpoint listening (no worker running the embedded one).
    unreachable = run_script("list", env=sqs.env(EMBEDDED_SQS_PORT="1"), cwd=tmp_path)
    assert unreachable.returncode == 2
    assert unreachable.stderr.count("\n") == 1 and "Traceback" not in unreachable.stderr
    assert unreachable.stderr.startswith("configuration error: cannot reach SQS")

    missing = run_script("list", env=sqs.env(SQS_QUEUE_NAME="nope"), cwd=tmp_path)
    assert (missing.returncode, missing.stderr.count("\n")) == (2, 1)
    assert "queue not found" in missing.stderr

    invalid = run_script("list", env=sqs.env(EMBEDDED_SQS_PORT="x"), cwd=tmp_path)
    assert (invalid.returncode, invalid.stderr.count("\n")) == (2, 1)
    assert "embedded_sqs_port" in invalid.stderr

    # A queue without a redrive policy has no dead-letter queue to work on.
    plain = sqs.client.create_queue(QueueName=f"plain-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    env = sqs.env(SQS_ENDPOINT_URL=sqs.endpoint, AWS_ACCESS_KEY_ID="t", AWS_SECRET_ACCESS_KEY="t")
    no_policy = run_script("--queue-url", plain, "list", env=env, cwd=tmp_path)
    assert (no_policy.returncode, no_policy.stderr.count("\n")) == (2, 1)
    assert "has no RedrivePolicy" in no_policy.stderr
