"""A chargeback end to end over real processes (issue 14).

Stripe's signed `charge.dispute.created` is posted to the running API; the worker, on the
real adapters against the Salesforce, Zuora and Stripe stand-ins, runs the chargeback path
to review; a reviewer approves through the REST API; Stripe receives exactly one evidence
submission with `submit=true`; the same webhook again creates nothing.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, VISIBILITY_TIMEOUT, Processes, free_port, query, wait_for
from tests.fakes.vendor_servers import VendorServers

SECRET = "whsec_e2e_0123456789abcdef0123"


@pytest.mark.slow
def test_a_signed_chargeback_is_answered_once_after_review(
    processes: Processes,
    postgres_url: str,
    sqs: tuple[Any, str, str],
    servers: VendorServers,
) -> None:
    _, queue_url, endpoint = sqs
    stripe = servers.stripe
    open_disputes = [d for d, body in stripe.disputes.items() if body["status"] == "needs_response"]
    assert open_disputes, "the sandbox has no open chargeback"
    dispute_id = open_disputes[0]
    api_port = free_port()
    env = {
        **servers.environment(),
        "SQS_QUEUE_URL": queue_url,
        "SQS_ENDPOINT_URL": endpoint,
        "WORKER_WAIT_TIME_SECONDS": "1",
        "WORKER_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT),
        "API_PORT": str(api_port),
        "STRIPE_WEBHOOK_SECRET": SECRET,
    }
    api = processes.start("--api", name="api", **env)
    worker = processes.start(name="worker", **env)
    made = subprocess.run(
        [sys.executable, str(ROOT / "utils" / "manage_reviewers.py"), "create", "alice"],
        env={**processes.env, **env},
        cwd=processes.workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    key = next(line for line in made.stdout.splitlines() if line.startswith("pa_"))
    base = f"http://127.0.0.1:{api_port}"

    def logs() -> str:
        return processes.output("worker")[-6000:] + processes.output("api")[-3000:]

    wait_for(lambda: _answers(f"{base}/health"), timeout=60, what="the API")
    event = stripe.dispute_event("charge.dispute.created", dispute_id)
    body, headers = stripe.signed_event(event, SECRET)
    posted = httpx.post(f"{base}/webhooks/stripe", content=body, headers=headers, timeout=10)
    assert posted.status_code == 200, posted.text

    def pending() -> list[dict[str, Any]]:
        return query(
            postgres_url,
            "SELECT * FROM workflow_states WHERE case_id = %s AND status = 'pending'",
            dispute_id,
        )

    wait_for(lambda: pending(), timeout=90, what="the chargeback to reach review", log=logs)
    [run] = pending()
    assert run["kind"] == "chargeback"
    proposal = run["resolution_proposal"]
    assert proposal["action"] in ("contest", "accept") and proposal["reason"]
    assert stripe.submitted(dispute_id) == []

    decided = httpx.post(
        f"{base}/human-review/decision",
        json={"run_id": str(run["run_id"]), "decision": "approved"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert decided.status_code == 202, decided.text
    wait_for(
        lambda: query(
            postgres_url,
            "SELECT 1 FROM workflow_states WHERE run_id = %s AND status = 'completed'",
            run["run_id"],
        ),
        timeout=90,
        what="the answer to be sent",
        log=logs,
    )
    if proposal["action"] == "contest":
        [submission] = [s for s in stripe.submitted(dispute_id) if not s.replayed]
        assert submission.submit is True and submission.evidence
        assert submission.idempotency_key == f"{run['run_id']}:dispute:evidence"
    else:
        assert stripe.disputes[dispute_id]["status"] == "lost"

    # The same webhook again, and a new event id for the same dispute: nothing new.
    again = httpx.post(f"{base}/webhooks/stripe", content=body, headers=headers, timeout=10)
    assert again.status_code == 200 and again.json().get("duplicate") is True
    event2 = stripe.dispute_event("charge.dispute.created", dispute_id)
    body2, headers2 = stripe.signed_event(event2, SECRET)
    assert httpx.post(f"{base}/webhooks/stripe", content=body2, headers=headers2).status_code == 200
    wait_for(
        lambda: query(
            postgres_url,
            "SELECT 1 FROM processed_messages WHERE event_id = %s",
            event2["id"],
        ),
        timeout=30,
        what="the second event to be taken in",
        log=logs,
    )
    runs = query(postgres_url, "SELECT * FROM workflow_states WHERE case_id = %s", dispute_id)
    assert len([r for r in runs if r["status"] == "completed"]) == 1

    # The operator's script signs and posts a sample early fraud warning to the same API.
    [warning_id] = list(stripe.early_fraud_warnings)[:1]
    sent = subprocess.run(
        [
            sys.executable,
            str(ROOT / "utils" / "send_stripe_event.py"),
            "--type",
            "radar.early_fraud_warning.created",
            "--object-id",
            warning_id,
            "--url",
            f"{base}/webhooks/stripe",
        ],
        env={**processes.env, **env},
        cwd=processes.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0 and "HTTP 200" in sent.stdout, sent.stdout + sent.stderr
    wait_for(
        lambda: query(postgres_url, "SELECT 1 FROM workflow_states WHERE case_id = %s", warning_id),
        timeout=60,
        what="the posted warning to start its run",
        log=logs,
    )
    assert len([s for s in stripe.submitted(dispute_id) if not s.replayed]) <= 1
    assert api.poll() is None and worker.poll() is None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
