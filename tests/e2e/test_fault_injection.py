"""SIGKILL the worker at every boundary of a run: nothing lost, stuck or paid twice.

Real processes throughout: `app.py` workers and the API on one PostgreSQL database, moto's
SQS over HTTP, and local servers speaking Salesforce, Zuora and Stripe's wire formats.

Round 1 parks seven disputes, each at its own kill point, then kills the worker once:
- A: Stripe has refunded, its reply is held open (move_money, money in flight);
- B: update_case is checkpointed (the refund made, the case updated), its row update waits
  on a row lock the test holds;
- C: Salesforce holds the case read open (fetch_data in flight);
- D: its first leg is checkpointed at the review pause, its row write waits on a row lock
  the test holds;
- E: the intake transaction waits on the case's advisory lock the test holds (not committed);
- F: the intake transaction committed, the graph's first checkpoint waits on a table lock;
- G: the run is paused for review (wait_human_review).
A new run's first leg (up to the review or the money) writes one checkpoint and one row
update, where it stops ("exit" durability), so C and F re-run it from the start and D is
settled from its checkpoint. From the money on, a row update that waits on a lock is
exactly "between the checkpoint and the row update":
LangGraph hands the step's state to the runner after the step's checkpoint is written
("sync" durability) and runs the next step only when the runner has recorded it.

Rounds 2-6 each start a worker, publish one dispute and SIGKILL the worker as soon as the
audit shows the `step_completed` row of the target step. Those steps make no vendor call to
hold, so each kill lands at or just after that step's boundary: in the next step, or
between its checkpoint and its row update. The steps of a first leg (H to K) are audited
together where it stops, so those kills land just after the leg, or in a worker taking
over. Each of these workers also takes over the runs of the workers killed before it, and
may be killed in the middle of that too.

A last worker must then settle every run within a bounded time, every pending run must
accept its decisions through the API, and each dispute must be paid once, at its amount.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.conftest import ROOT, VISIBILITY_TIMEOUT, Processes, free_port, query, wait_for
from tests.fakes.vendor_servers import VendorServers

SETTLE_TIMEOUT = 90  # seconds for a new worker to settle every run
REVIEWERS = ("alice", "bob")  # round 1 and round 2 of a dual-control review


@dataclass(frozen=True)
class Dispute:
    label: str
    case_number: str
    kill_point: str
    action: str  # refund or credit
    amount: str  # what the rules drafter proposes (tests/unit/test_rules_drafter.py)


# With auto-approval up to $100 at confidence 0.8, 1042, 1044, 1050 and 1043 run straight to
# execution; the others pause for review (1052, 1055 and 1057 for two reviewers).
PARKED = {
    d.label: d
    for d in (
        Dispute("A", "00001042", "move_money: refunded, reply held", "refund", "29.00"),
        Dispute("B", "00001044", "update_case checkpointed, row not", "refund", "99.00"),
        Dispute("C", "00001049", "fetch_data: case read held", "refund", "199.00"),
        Dispute("D", "00001051", "fetch_data checkpointed, row not", "refund", "399.00"),
        Dispute("E", "00001053", "intake transaction not committed", "refund", "299.00"),
        Dispute("F", "00001043", "intake committed, no checkpoint yet", "credit", "4.90"),
        Dispute("G", "00001048", "paused at wait_human_review", "refund", "149.00"),
    )
}
# One worker each, killed when the `step_completed` row of its kill point appears.
AT_STEP = (
    Dispute("H", "00001046", "validate_dispute", "refund", "19.00"),
    Dispute("I", "00001057", "generate_resolution", "refund", "735.00"),
    Dispute("J", "00001055", "route_review", "refund", "2450.00"),
    Dispute("K", "00001052", "send_human_review", "refund", "1188.00"),
    Dispute("L", "00001050", "store_results", "refund", "60.00"),
)
DISPUTES = [*PARKED.values(), *AT_STEP]


def run_of(url: str, case_id: str) -> dict[str, Any] | None:
    rows = query(url, "SELECT * FROM workflow_states WHERE case_id = %s", case_id)
    assert len(rows) <= 1, f"case {case_id} has {len(rows)} runs"
    return rows[0] if rows else None


def steps_completed(url: str, case_id: str) -> list[str]:
    rows = query(
        url,
        "SELECT a.step FROM audit_events a JOIN workflow_states w ON w.run_id = a.run_id"
        " WHERE w.case_id = %s AND a.event = 'step_completed' ORDER BY a.id",
        case_id,
    )
    return [r["step"] for r in rows]


def events_of(url: str, case_id: str, event: str) -> list[dict[str, Any]]:
    return query(
        url,
        "SELECT a.* FROM audit_events a JOIN workflow_states w ON w.run_id = a.run_id"
        " WHERE w.case_id = %s AND a.event = %s",
        case_id,
        event,
    )


def waiting_on(url: str, holder: psycopg.Connection[Any]) -> int:
    """How many backends wait for a lock the connection `holder` holds."""
    [row] = query(
        url,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
        holder.info.backend_pid,
    )
    return int(row["n"])


def cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


def sigkill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


@pytest.mark.slow
def test_worker_killed_at_every_boundary_loses_nothing_and_pays_once(
    processes: Processes,
    postgres_url: str,
    sqs: tuple[Any, str, str],
    servers: VendorServers,
) -> None:
    client, queue_url, endpoint = sqs
    salesforce, zuora, stripe = servers.salesforce, servers.zuora, servers.stripe
    case_ids = {c["CaseNumber"]: cid for cid, c in salesforce.cases.items()}
    case_of = {d.label: case_ids[d.case_number] for d in DISPUTES}
    charge_of = {d.label: salesforce.cases[case_of[d.label]]["Charge_Id__c"] for d in DISPUTES}
    case_path = f"/services/data/{salesforce.api_version}/sobjects/Case/"
    api_port = free_port()
    env = {
        **servers.environment(),
        "SQS_QUEUE_URL": queue_url,
        "SQS_ENDPOINT_URL": endpoint,
        "WORKER_WAIT_TIME_SECONDS": "1",
        "WORKER_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_TIMEOUT),
        "WORKER_MAX_IN_FLIGHT": "8",  # room for every parked run at once
        "API_PORT": str(api_port),
        "AUTO_APPROVE_MAX_AMOUNT": "100",
        "AUTO_APPROVE_MIN_CONFIDENCE": "0.8",
        # A held vendor reply stays unanswered until the kill, not until a client timeout.
        "INTEGRATION_TIMEOUT_SECONDS": "120",
    }
    events: dict[str, str] = {}

    def publish(label: str) -> None:
        events[label] = f"evt_{uuid.uuid4().hex}"
        body = {"type": "dispute.created", "event_id": events[label], "case_id": case_of[label]}
        client.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))

    worker_names: set[str] = set()

    def logs() -> str:
        return "\n".join(
            f"--- {name}\n{processes.output(name)[-4000:]}" for name in sorted(worker_names)
        )

    def start_worker(name: str) -> subprocess.Popen[bytes]:
        worker_names.add(name)
        return processes.start(name=name, **env)

    api = processes.start("--api", name="api", **env)
    keys = {
        name: subprocess.Popen(
            [sys.executable, str(ROOT / "utils" / "manage_reviewers.py"), "create", name],
            env={**processes.env, **env},
            cwd=processes.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in REVIEWERS
    }

    # Round 1: seven disputes parked at seven kill points, one SIGKILL.
    worker = start_worker("worker-1")
    stripe.drop_response(method="POST", path="/v1/refunds", hold=180)  # A's refund
    salesforce.drop_response(method="GET", path=case_path + case_of["C"], hold=180)
    salesforce.stall(4, method="GET", path=case_path + case_of["D"])
    for label in ("A", "C", "D", "G"):
        publish(label)

    locks: dict[str, psycopg.Connection[Any]] = {}

    def hold(label: str, sql: str, *params: Any) -> None:
        """Take a lock in an open transaction of the test's own."""
        conn = psycopg.connect(postgres_url)
        conn.execute(sql, params)
        locks[label] = conn

    def wait_vendor(server: Any, path: str, method: str) -> None:
        try:
            server.wait_for(path, method=method, count=1, timeout=120)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from exc

    def wait_blocked(label: str, what: str) -> None:
        wait_for(
            lambda: waiting_on(postgres_url, locks[label]) > 0,
            timeout=30,
            what=what,
            log=logs,
        )

    row_lock = "SELECT 1 FROM workflow_states WHERE case_id = %s FOR NO KEY UPDATE"
    # D: while Salesforce delays the case read, lock the row; the first leg then runs to the
    # review pause, is checkpointed there, and its one row write waits on the lock.
    wait_vendor(salesforce, case_path + case_of["D"], "GET")
    hold("D", row_lock, case_of["D"])
    wait_blocked("D", "D's first-leg row write to wait on the row lock")
    wait_vendor(stripe, "/v1/refunds", "POST")  # A: refunded, reply held
    # B: refunds at once; while Salesforce delays the case update, lock the row.
    salesforce.stall(4, method="PATCH", path=case_path + case_of["B"])
    publish("B")
    wait_vendor(salesforce, case_path + case_of["B"], "PATCH")
    hold("B", row_lock, case_of["B"])
    wait_blocked("B", "B's update_case row update to wait on the row lock")
    wait_vendor(salesforce, case_path + case_of["C"], "GET")  # C: case read held
    wait_for(
        lambda: (run_of(postgres_url, case_of["G"]) or {}).get("status") == "pending",
        timeout=60,
        what="G to pause for review",
        log=logs,
    )
    # F: no checkpoint can be written; the intake commits the run, the checkpoint where its
    # first leg stops (before the money: it is auto-approved) waits.
    hold("F", "LOCK TABLE checkpoints IN SHARE MODE")
    publish("F")
    wait_for(lambda: run_of(postgres_url, case_of["F"]), timeout=30, what="F's run", log=logs)
    wait_blocked("F", "F's first checkpoint to wait on the table lock")
    # E: the intake transaction waits on the case's lock, inside the transaction.
    hold("E", "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", f"case:{case_of['E']}")
    publish("E")
    wait_blocked("E", "E's intake transaction to wait on the case lock")
    sigkill(worker)

    # Where each run rests, as the kill left it (before the test lets go of its locks).
    refunds_a = [r for r in stripe.refunds.values() if r["charge"] == charge_of["A"]]
    assert len(refunds_a) == 1
    assert events_of(postgres_url, case_of["A"], "refund_executed") == []
    assert len(events_of(postgres_url, case_of["B"], "refund_executed")) == 1
    assert len(events_of(postgres_url, case_of["B"], "case_updated")) == 1
    assert "move_money" in steps_completed(postgres_url, case_of["B"])
    assert "update_case" not in steps_completed(postgres_url, case_of["B"])
    assert steps_completed(postgres_url, case_of["C"]) == []
    assert steps_completed(postgres_url, case_of["D"]) == []
    assert run_of(postgres_url, case_of["E"]) is None
    run_f = run_of(postgres_url, case_of["F"])
    assert run_f is not None and run_f["status"] == "running"
    assert (
        query(postgres_url, "SELECT 1 FROM checkpoints WHERE thread_id = %s", str(run_f["run_id"]))
        == []
    )
    for conn in locks.values():
        conn.close()  # rolls back: the dead worker's waiting statements fail with it

    # Rounds 2-6: one worker each, killed just after the target step's boundary.
    for index, dispute in enumerate(AT_STEP, start=2):
        step = dispute.kill_point
        worker = start_worker(f"worker-{index}")
        publish(dispute.label)
        case_id = case_of[dispute.label]
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while step not in [
                r[0]
                for r in conn.execute(
                    "SELECT a.step FROM audit_events a"
                    " JOIN workflow_states w ON w.run_id = a.run_id"
                    " WHERE w.case_id = %s AND a.event = 'step_completed'",
                    (case_id,),
                )
            ]:
                assert time.monotonic() < deadline, f"{dispute} never got past {step}\n{logs()}"
                time.sleep(0.01)
        sigkill(worker)  # lands at or just after the end of `step`

    # A new worker settles every run; none is lost, none stuck.
    start_worker("worker-final")
    settled = ("pending", "completed", "rejected")

    def all_settled() -> bool:
        runs = query(postgres_url, "SELECT case_id, status FROM workflow_states")
        return len(runs) == len(DISPUTES) and all(r["status"] in settled for r in runs)

    wait_for(all_settled, timeout=SETTLE_TIMEOUT, what="every run to settle", log=logs)

    # Every pending run accepts its decisions through the API, round after round.
    base = f"http://127.0.0.1:{api_port}"
    wait_for(lambda: _answers(f"{base}/health"), timeout=60, what="the API")
    bearer = {}
    for name, process in keys.items():
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, out
        bearer[name] = next(line for line in out.splitlines() if line.startswith("pa_"))

    def decide_pending() -> bool:
        runs = query(postgres_url, "SELECT * FROM workflow_states")
        for run in runs:
            awaiting = (run["human_review_data"] or {}).get("awaiting_round")
            if run["status"] != "pending" or awaiting is None:
                continue
            decided = query(
                postgres_url,
                "SELECT 1 FROM review_decisions WHERE run_id = %s AND round = %s",
                run["run_id"],
                awaiting,
            )
            if decided:
                continue
            reviewer = REVIEWERS[int(awaiting) - 1]
            response = httpx.post(
                f"{base}/human-review/decision",
                json={
                    "run_id": str(run["run_id"]),
                    "case_id": run["case_id"],
                    "decision": "approved",
                    "reviewer_name": reviewer,
                    "comments": "verified after the fault drill",
                },
                headers={"Authorization": f"Bearer {bearer[reviewer]}"},
                timeout=10,
            )
            assert response.status_code == 202, (run["case_id"], response.text)
        return all(r["status"] == "completed" for r in runs)

    wait_for(decide_pending, timeout=120, what="every run to complete", log=logs)

    # 0 lost: every published event has its run, one per dispute.
    for dispute in DISPUTES:
        [message] = query(
            postgres_url,
            "SELECT * FROM processed_messages WHERE event_id = %s",
            events[dispute.label],
        )
        run = run_of(postgres_url, case_of[dispute.label])
        assert run is not None, dispute
        assert (str(message["run_id"]), message["outcome"]) == (str(run["run_id"]), "accepted")
        assert run["status"] == "completed", (dispute, run["status"], run["final_resolution"])

    # 0 paid twice: one movement per run, at its amount, always under the run's own key.
    for dispute in DISPUTES:
        run = run_of(postgres_url, case_of[dispute.label])
        assert run is not None
        run_id, charge_id = str(run["run_id"]), charge_of[dispute.label]
        execution = run["final_resolution"]["execution"]
        if dispute.action == "credit":
            assert [m["amount"] for m in zuora.credit_memos] == [Decimal(dispute.amount)]
            keys_sent = {
                r.header("Idempotency-Key") for r in zuora.requests_to("/v1/creditmemos", "POST")
            }
            assert keys_sent == {f"{run_id}:credit"}
            continue
        refunds = [r for r in stripe.refunds.values() if r["charge"] == charge_id]
        assert [r["amount"] for r in refunds] == [cents(dispute.amount)], dispute
        assert execution["payout"]["provider_ref"] == refunds[0]["id"], dispute
        requests = [
            r for r in stripe.requests_to("/v1/refunds", "POST") if r.form()["charge"] == charge_id
        ]
        assert {r.header("Idempotency-Key") for r in requests} == {f"{run_id}:refund"}, dispute
        assert salesforce.cases[case_of[dispute.label]]["Status"] == "Resolved"
    assert len(stripe.refunds) == len(DISPUTES) - 1

    # The parked runs resumed where their checkpoints were, not before: fetch_data read D's
    # case once (update_case's own read asks for fewer fields).
    reads_d = salesforce.requests_to(case_path + case_of["D"], "GET")
    assert [r for r in reads_d if "CaseNumber" in (r.param("fields") or "")] == reads_d[:1]
    assert len(salesforce.requests_to(case_path + case_of["B"], "PATCH")) == 1
    assert [r.form()["charge"] for r in stripe.requests_to("/v1/refunds", "POST")].count(
        charge_of["B"]
    ) == 1
    assert stripe.errors == salesforce.errors == zuora.errors == []
    assert api.poll() is None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
