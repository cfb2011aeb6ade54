"""A worker killed after Stripe refunded, before the run checkpointed, pays only once.

The worker runs on the real adapters (Salesforce, Zuora, Stripe) against local servers that
speak their wire formats. A small duplicate charge is auto-approved, so the run reaches
move_money straight from the queue message. Stripe executes the refund but holds
its reply; the worker is killed with SIGKILL while it waits for it. The message comes back
after its visibility timeout, a new worker continues the run from its last checkpoint, finds
the payout ledger's row `sent`, and asks Stripe for the charge's refunds first: it finds the
refund by the key in its metadata and records it. No second refund request is made, so the
outcome does not depend on Stripe still holding the idempotency key.
"""

from __future__ import annotations

import json
import signal
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import VISIBILITY_TIMEOUT, Processes, query, wait_for
from tests.fakes.vendor_servers import VendorServers

CASE_NUMBER = "00001042"  # sandbox: duplicate charge of $29.00, low risk


@pytest.mark.slow
def test_worker_killed_after_refund_request_refunds_once(
    processes: Processes,
    postgres_url: str,
    sqs: tuple[Any, str, str],
    servers: VendorServers,
) -> None:
    client, queue_url, endpoint = sqs
    stripe = servers.stripe
    case_id, case = next(
        (cid, c) for cid, c in servers.salesforce.cases.items() if c["CaseNumber"] == CASE_NUMBER
    )
    charge_id = case["Charge_Id__c"]
    env = {
        **servers.environment(),
        "SQS_QUEUE_URL": queue_url,
        "SQS_ENDPOINT_URL": endpoint,
        "WORKER_WAIT_TIME_SECONDS": "1",
        "WORKER_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT),
        # The rules drafter proposes this refund with confidence 0.85, low risk.
        "AUTO_APPROVE_MAX_AMOUNT": "50",
        "AUTO_APPROVE_MIN_CONFIDENCE": "0.8",
    }
    # Stripe refunds, then keeps the connection open without answering.
    stripe.drop_response(method="POST", path="/v1/refunds", hold=120)

    worker = processes.start(name="worker-1", **env)
    client.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(
            {"type": "dispute.created", "event_id": f"evt_{uuid.uuid4().hex}", "case_id": case_id}
        ),
    )
    try:
        stripe.wait_for("/v1/refunds", method="POST", count=1, timeout=90)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{processes.output('worker-1')}") from exc
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)

    # The money moved at Stripe; the run's last checkpoint is before move_money.
    wait_for(lambda: len(stripe.refunds) == 1, timeout=5, what="Stripe to record the refund")
    [run] = query(postgres_url, "SELECT * FROM workflow_states")
    run_id = str(run["run_id"])
    assert (run["status"], run["current_step"]) == ("running", "route_review")
    assert run["human_review_data"]["plan"]["auto_approve"] is True
    assert audit_events(postgres_url, run_id, "refund_executed") == []

    processes.start(name="worker-2", **env)
    wait_for(
        lambda: query(postgres_url, "SELECT 1 FROM workflow_states WHERE status = 'completed'"),
        timeout=75,
        what="another worker to take the dead worker's run over and complete it",
        log=lambda: processes.output("worker-2"),
    )

    requests = stripe.requests_to("/v1/refunds", "POST")
    assert [r.header("Idempotency-Key") for r in requests] == [f"{run_id}:refund"]
    assert requests[0].form()["amount"] == "2900"
    [refund] = stripe.refunds.values()
    assert (refund["charge"], refund["amount"]) == (charge_id, 2900)
    assert stripe.charges[charge_id]["amount_refunded"] == 2900

    [run] = query(postgres_url, "SELECT * FROM workflow_states")
    assert (str(run["run_id"]), run["status"]) == (run_id, "completed")
    payout = run["final_resolution"]["execution"]["payout"]
    assert (payout["provider_ref"], payout["state"]) == (refund["id"], "succeeded")
    assert len(audit_events(postgres_url, run_id, "refund_executed")) == 1
    assert servers.salesforce.cases[case_id]["Status"] == "Resolved"
    assert servers.salesforce.cases[case_id]["Resolution_Key__c"] == f"{run_id}:case_update"
    assert stripe.errors == servers.salesforce.errors == servers.zuora.errors == []


def audit_events(url: str, run_id: str, event: str) -> list[dict[str, Any]]:
    return query(url, "SELECT * FROM audit_events WHERE run_id = %s AND event = %s", run_id, event)
