"""A worker killed with SIGKILL while a run waits for review loses nothing.

publish → the run pauses at review → SIGKILL the worker → post a decision to the API
process over HTTP → a new worker resumes the same run_id from its checkpoint → executed
exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, Processes, free_port, query, running_sqs, wait_for

CASE_ID = "500Dn0000IoYa3aIQC"  # sandbox: cancellation not processed, $99.00, valid


@pytest.fixture
def sqs() -> Iterator[tuple[Any, str, str]]:
    with running_sqs(max_receive_count=3, visibility=30) as queue:
        yield queue


@pytest.mark.slow
def test_killed_worker_resumes_from_checkpoint_and_pays_once(
    processes: Processes, postgres_url: str, sqs: tuple[Any, str, str]
) -> None:
    client, queue_url, endpoint = sqs
    api_port = free_port()
    queue_env = {
        "SQS_QUEUE_URL": queue_url,
        "SQS_ENDPOINT_URL": endpoint,
        "WORKER_WAIT_TIME_SECONDS": "1",
        "API_PORT": str(api_port),
    }
    api = processes.start("--api", name="api", **queue_env)
    worker = processes.start(name="worker-1", **queue_env)

    client.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(
            {"type": "dispute.created", "event_id": f"evt_{uuid.uuid4().hex}", "case_id": CASE_ID}
        ),
    )
    run = wait_for(
        lambda: query(postgres_url, "SELECT * FROM workflow_states WHERE status = 'pending'"),
        timeout=90,
        what="the run to pause for review",
        log=lambda: processes.output("worker-1"),
    )[0]
    run_id = str(run["run_id"])

    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)

    base = f"http://127.0.0.1:{api_port}"
    wait_for(lambda: _answers(f"{base}/health"), timeout=60, what="the API")
    key = _reviewer_key(processes, "alice")
    response = httpx.post(
        f"{base}/human-review/decision",
        json={
            "run_id": run_id,
            "case_id": CASE_ID,
            "decision": "approved",
            "reviewer_name": "alice",
            "comments": "verified",
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert query(postgres_url, "SELECT status FROM workflow_states")[0]["status"] == "pending"

    processes.start(name="worker-2", **queue_env)
    wait_for(
        lambda: query(postgres_url, "SELECT 1 FROM workflow_states WHERE status = 'completed'"),
        timeout=90,
        what="the new worker to complete the run",
        log=lambda: processes.output("worker-2"),
    )
    runs = query(postgres_url, "SELECT run_id, status FROM workflow_states")
    assert [(str(r["run_id"]), r["status"]) for r in runs] == [(run_id, "completed")]
    refunds = query(postgres_url, "SELECT * FROM sandbox_ledger WHERE kind = 'refund'")
    assert [r["idempotency_key"] for r in refunds] == [f"{run_id}:refund"]
    executed = query(
        postgres_url,
        "SELECT * FROM audit_events WHERE run_id = %s AND event = 'refund_executed'",
        run_id,
    )
    assert len(executed) == 1
    assert api.poll() is None


def _reviewer_key(processes: Processes, name: str) -> str:
    """A reviewer API key, created as an operator would (utils/manage_reviewers.py)."""
    created = subprocess.run(
        [sys.executable, str(ROOT / "utils" / "manage_reviewers.py"), "create", name],
        env=processes.env,
        cwd=processes.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return next(line for line in created.stdout.splitlines() if line.startswith("pa_"))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
