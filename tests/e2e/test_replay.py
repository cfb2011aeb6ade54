"""Every sample dispute, resolved, then replayed under new event ids: nothing is paid twice.

Real processes (a worker and the API on one PostgreSQL database), moto's SQS over HTTP,
and the Salesforce, Zuora and Stripe stand-ins holding the sample dataset. Reviewers
decide through the REST API with their keys. Before the payout ledger, 4 of the 17 sample
cases were paid a second time (+$2,024.90) by a replay like this one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, VISIBILITY_TIMEOUT, Processes, free_port, query, wait_for
from tests.fakes.vendor_servers import VendorServers

REVIEWERS = ("alice", "bob")
FINAL = ("completed", "rejected")


@pytest.mark.slow
def test_replaying_every_resolved_dispute_pays_nothing_twice(
    processes: Processes,
    postgres_url: str,
    sqs: tuple[Any, str, str],
    servers: VendorServers,
) -> None:
    client, queue_url, endpoint = sqs
    salesforce, zuora, stripe = servers.salesforce, servers.zuora, servers.stripe
    open_cases = [cid for cid, c in salesforce.cases.items() if c["Status"] != "Closed"]
    assert len(open_cases) >= 17
    api_port = free_port()
    env = {
        **servers.environment(),
        "SQS_QUEUE_URL": queue_url,
        "SQS_ENDPOINT_URL": endpoint,
        "WORKER_WAIT_TIME_SECONDS": "1",
        "WORKER_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT),
        "API_PORT": str(api_port),
        # Small amounts run straight to execution: the replay must not pay them again.
        "AUTO_APPROVE_MAX_AMOUNT": "100",
        "AUTO_APPROVE_MIN_CONFIDENCE": "0.8",
    }
    api = processes.start("--api", name="api", **env)
    worker = processes.start(name="worker", **env)
    bearer = {}
    for name in REVIEWERS:
        made = subprocess.run(
            [sys.executable, str(ROOT / "utils" / "manage_reviewers.py"), "create", name],
            env={**processes.env, **env},
            cwd=processes.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        bearer[name] = next(line for line in made.stdout.splitlines() if line.startswith("pa_"))
    base = f"http://127.0.0.1:{api_port}"

    def logs() -> str:
        return processes.output("worker")[-6000:]

    def publish_all() -> None:
        for case_id in open_cases:
            body = {"type": "dispute.created", "event_id": f"evt_{uuid.uuid4().hex}"}
            client.send_message(
                QueueUrl=queue_url, MessageBody=json.dumps(body | {"case_id": case_id})
            )

    def decide_pending() -> None:
        for run in query(postgres_url, "SELECT * FROM workflow_states WHERE status = 'pending'"):
            awaiting = (run["human_review_data"] or {}).get("awaiting_round")
            if awaiting is None or query(
                postgres_url,
                "SELECT 1 FROM review_decisions WHERE run_id = %s AND round = %s",
                run["run_id"],
                awaiting,
            ):
                continue
            reviewer = REVIEWERS[(int(awaiting) - 1) % 2]
            response = httpx.post(
                f"{base}/human-review/decision",
                json={"run_id": str(run["run_id"]), "decision": "approved"},
                headers={"Authorization": f"Bearer {bearer[reviewer]}"},
                timeout=10,
            )
            assert response.status_code == 202, (run["case_id"], response.text)

    def settled(runs_per_case: int) -> bool:
        decide_pending()
        runs = query(postgres_url, "SELECT case_id, status FROM workflow_states")
        counts = Counter(r["case_id"] for r in runs)
        return all(counts[c] == runs_per_case for c in open_cases) and all(
            r["status"] in FINAL for r in runs
        )

    wait_for(lambda: _answers(f"{base}/health"), timeout=60, what="the API")
    publish_all()
    wait_for(lambda: settled(1), timeout=180, what="every dispute to settle", log=logs)
    completed = query(
        postgres_url, "SELECT case_id FROM workflow_states WHERE status = 'completed'"
    )
    assert len(completed) >= 10, logs()
    refunds_before = dict(stripe.refunds)
    memos_before = list(zuora.credit_memos)
    payouts_before = query(postgres_url, "SELECT * FROM payouts ORDER BY id")
    assert payouts_before, "nothing was paid in the first pass"

    publish_all()  # the same disputes again, every one under a new event id
    wait_for(lambda: settled(2), timeout=180, what="every replay to settle", log=logs)

    # 0 paid twice: the providers and the ledger hold exactly what the first pass made.
    assert dict(stripe.refunds) == refunds_before
    assert list(zuora.credit_memos) == memos_before
    assert query(postgres_url, "SELECT * FROM payouts ORDER BY id") == payouts_before
    first_runs = {r["case_id"] for r in completed}
    for run in query(postgres_url, "SELECT * FROM workflow_states ORDER BY created_at"):
        validation = (run["human_review_data"] or {}).get("validation") or {}
        if run["case_id"] in first_runs and run["status"] == "rejected":
            # A replay of a resolved case is refused by its named rule.
            assert validation.get("failed_rule") == "case_not_resolved_before", run["case_id"]
    replays_completed = query(
        postgres_url,
        "SELECT case_id FROM workflow_states WHERE status = 'completed'"
        " GROUP BY case_id HAVING count(*) > 1",
    )
    assert replays_completed == []
    assert stripe.errors == salesforce.errors == zuora.errors == []
    assert api.poll() is None and worker.poll() is None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
