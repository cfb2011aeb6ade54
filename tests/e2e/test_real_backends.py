"""`python app.py CASE_ID` on Salesforce, Zuora and Stripe reaches the sandbox's proposal.

For each case the CLI runs twice, as a user starts it, each run with its own PostgreSQL
database and its own copy of the knowledge base: once on the sandbox backends, once on
CRM_BACKEND=salesforce, BILLING_BACKEND=zuora and PAYMENT_BACKEND=stripe pointed at local
servers that speak those APIs' wire formats and hold the same sandbox dataset. Both runs
must reach the same proposal (action, amount, currency, policy ids, confidence, risk and
the drafter's reasoning) or, for an invalid dispute, fail the same validation rule.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from services.sandbox.data import load_dataset
from services.sandbox.dataset import SandboxDataset
from tests.conftest import create_database
from tests.e2e.conftest import ROOT, Processes
from tests.fakes.vendor_servers import VendorServers, vendor_servers

CLI_TIMEOUT = 120  # seconds; a CLI run takes ~15 s, most of it importing


@dataclass(frozen=True)
class Expected:
    case_number: str
    status: str  # pending (a proposal awaits review) or rejected (validation failed)
    action: str | None = None
    amount: str | None = None
    failed_rule: str | None = None


# One case per line of the sandbox dataset's story (services/sandbox/data.py), chosen so
# that each adapter's data decides something: Stripe's charge list (the duplicate's twin),
# Salesforce's Outage_Hours__c and segment (the outage matrix), Zuora's cancellation
# request against Stripe's charge time, Zuora's plan price, and Stripe's charge date
# against the dispute window.
CASES = [
    Expected("00001042", "pending", "full_refund", "29.00"),  # duplicate charge
    Expected("00001043", "pending", "account_credit", "4.90"),  # service outage, 2.5 h
    Expected("00001044", "pending", "full_refund", "99.00"),  # cancellation not processed
    Expected("00001050", "pending", "partial_refund", "60.00"),  # incorrect amount
    Expected("00001058", "rejected", failed_rule="within_dispute_window"),  # 140-day-old fee
]


def query(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A knowledge base seeded once by the operator script; each run gets its own copy."""
    path = tmp_path_factory.mktemp("knowledge") / "chroma"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI", "CRM_", "BILLING_", "PAYMENT_", "CHROMA"))
    }
    env["CHROMA_DB_PATH"] = str(path)
    subprocess.run(
        [sys.executable, str(ROOT / "utils" / "seed_vector_db.py")],
        env=env,
        cwd=path.parent,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=True,
    )
    return path


@pytest.fixture
def dataset() -> SandboxDataset:
    # Stripe's `created` is whole seconds and Salesforce's CreatedDate milliseconds, so the
    # vendors are seeded from a whole-second `now`: every timestamp is then held exactly,
    # as a real system would hold it (a microsecond `now` would put each charge up to a
    # second earlier on the wire than in the sandbox, and shift "N days after" by one).
    return load_dataset(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def servers(dataset: SandboxDataset) -> Iterator[VendorServers]:
    with vendor_servers(dataset) as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize("expected", CASES, ids=lambda e: e.case_number)
def test_real_backends_reach_the_sandbox_proposal(
    expected: Expected,
    processes: Processes,
    postgres_server: str,
    postgres_url: str,
    knowledge: Path,
    dataset: SandboxDataset,
    servers: VendorServers,
    tmp_path: Path,
) -> None:
    case = next(c for c in dataset.cases.values() if c.case_number == expected.case_number)
    sandbox_db, real_db = postgres_url, create_database(postgres_server)
    for mode in ("sandbox", "real"):
        shutil.copytree(knowledge, tmp_path / f"chroma-{mode}")

    # Both modes at once: each CLI run spends most of its time importing.
    sandbox = processes.start(
        case.case_id,
        name="sandbox",
        POSTGRES_URL=sandbox_db,
        CHROMA_DB_PATH=str(tmp_path / "chroma-sandbox"),
    )
    real = processes.start(
        case.case_id,
        name="real",
        POSTGRES_URL=real_db,
        CHROMA_DB_PATH=str(tmp_path / "chroma-real"),
        **servers.environment(),
    )
    for name, process in (("sandbox", sandbox), ("real", real)):
        assert process.wait(timeout=CLI_TIMEOUT) == 0, processes.output(name)

    results = {"sandbox": outcome(sandbox_db, case.case_id), "real": outcome(real_db, case.case_id)}
    for name, result in results.items():
        output = processes.output(name)
        assert f"Run {result['run_id']}: {expected.status}" in output, output
        assert result["status"] == expected.status, output
        if expected.status == "pending":
            assert (result["action"], result["amount"]) == (expected.action, expected.amount)
        else:
            assert result["failed_rule"] == expected.failed_rule, output
    assert results["real"] == {**results["sandbox"], "run_id": results["real"]["run_id"]}

    # The real run read the case from the vendors' servers, not from the sandbox.
    assert servers.salesforce.requests_to(
        f"/services/data/{servers.salesforce.api_version}/sobjects/Case/{case.case_id}"
    )
    assert servers.zuora.requests_to("/v1/accounts/", "GET")
    # The disputed charge comes with the customer's charge list (no retrieve of its own).
    listed = servers.stripe.requests_to("/v1/charges", "GET")
    assert any(r.param("customer") for r in listed)
    assert servers.stripe.requests_to(f"/v1/charges/{case.charge_id}", "GET") == []
    assert servers.stripe.requests_to("/v1/refunds") == []  # review first: no money moved
    assert servers.salesforce.errors == servers.zuora.errors == servers.stripe.errors == []


def outcome(url: str, case_id: str) -> dict[str, Any]:
    """What a reviewer sees of the case's one run: the proposal, or the failed rule."""
    rows = query(url, "SELECT * FROM workflow_states WHERE case_id = %s", case_id)
    assert len(rows) == 1, rows
    run = rows[0]
    proposal = run["resolution_proposal"] or {}
    validation = (run["human_review_data"] or {}).get("validation") or {}
    return {
        "run_id": str(run["run_id"]),
        "status": run["status"],
        "failed_rule": validation.get("failed_rule"),
        "valid": validation.get("valid"),
        **{
            key: proposal.get(key)
            for key in (
                "action",
                "amount",
                "currency",
                "policy_ids",
                "confidence",
                "risk_level",
                "reason",
                "drafter",
            )
        },
    }
