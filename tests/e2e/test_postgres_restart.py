"""PostgreSQL restarts under a running worker: during intake, and during execution.

A private PostgreSQL (the embedded server's binaries, in a temporary directory) is
restarted while a real worker process (`app.py`) records and drives the sample disputes.
Afterwards, with no manual step, every published dispute has a run, no run is left
`running`, and no charge was refunded or credited twice.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.sandbox.data import load_dataset
from tests.e2e.conftest import Processes, query, running_sqs, wait_for

SETTLED = ("pending", "completed", "rejected")


@pytest.fixture
def private_postgres() -> Iterator[Any]:
    """A PostgreSQL server of this test's own, which the test may stop and start.

    Its directory is outside pytest's root-only temporary tree: run as root, the embedded
    server's processes run as an unprivileged user that must reach it.
    """
    import pgserver

    directory = Path(tempfile.mkdtemp(prefix="pa-restart-"))
    directory.chmod(0o755)
    server = pgserver.get_server(directory / "pgdata", cleanup_mode="stop")
    yield server
    server.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


def restart(server: Any, *, down_seconds: float) -> None:
    """Stop the server (fast: connections are cut), keep it down, start it again."""
    from pgserver._commands import pg_ctl

    url = server.get_uri()
    started = query(url, "SELECT pg_postmaster_start_time() AS at")[0]["at"]
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
    time.sleep(down_seconds)
    server.ensure_postgres_running()
    assert query(url, "SELECT pg_postmaster_start_time() AS at")[0]["at"] > started


def try_query(url: str, sql: str) -> list[dict[str, Any]]:
    try:
        return query(url, sql)
    except psycopg.Error:  # down, restarting, or not migrated yet
        return []


@pytest.mark.slow
def test_restarts_during_intake_and_execution_leave_nothing_lost_or_stuck(
    tmp_path: Path, private_postgres: Any
) -> None:
    url = private_postgres.get_uri()
    with running_sqs(max_receive_count=5, visibility=10) as (client, queue_url, endpoint):
        processes = Processes(
            tmp_path,
            {
                **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
                "POSTGRES_URL": url,
                "DATA_DIR": str(tmp_path / "data"),
                "LOG_DIR": str(tmp_path / "logs"),
                "CHROMA_DB_PATH": str(tmp_path / "chroma"),
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "PYTHONUNBUFFERED": "1",
                "SQS_QUEUE_URL": queue_url,
                "SQS_ENDPOINT_URL": endpoint,
                "WORKER_WAIT_TIME_SECONDS": "1",
                "WORKER_VISIBILITY_TIMEOUT_SECONDS": "10",
                "WORKER_HEARTBEAT_SECONDS": "0.5",
                "WORKER_STALLED_AFTER_SECONDS": "3",
                "RUN_RECONCILE_INTERVAL_SECONDS": "1",
                "RUN_RETRY_BASE_SECONDS": "0.5",
                "RUN_RETRY_MAX_SECONDS": "2",
                "RUN_MAX_ATTEMPTS": "30",
                # Small, clear drafts execute without review: the restarts meet money.
                "AUTO_APPROVE_MAX_AMOUNT": "500",
                "AUTO_APPROVE_MIN_CONFIDENCE": "0.8",
            },
        )
        worker = processes.start(name="worker")
        try:
            wait_for(
                lambda: try_query(url, "SELECT 1 FROM procrastinate_workers"),
                timeout=90,
                what="the worker to start",
                log=lambda: processes.output("worker"),
            )
            cases = load_dataset(datetime.now(UTC)).open_cases()
            events = {f"evt_{uuid.uuid4().hex}": case.case_id for case in cases}
            for event_id, case_id in events.items():
                client.send_message(
                    QueueUrl=queue_url,
                    MessageBody=json.dumps(
                        {"type": "dispute.created", "event_id": event_id, "case_id": case_id}
                    ),
                )
            # During intake: as soon as the first runs are recorded.
            wait_for(
                lambda: try_query(url, "SELECT 1 FROM workflow_states"),
                timeout=60,
                what="the intake to record the first runs",
                log=lambda: processes.output("worker"),
            )
            restart(private_postgres, down_seconds=2)
            # During execution: as soon as money has started to move.
            wait_for(
                lambda: try_query(
                    url, "SELECT 1 FROM sandbox_ledger WHERE kind IN ('refund', 'credit')"
                ),
                timeout=120,
                what="the first refund or credit",
                log=lambda: processes.output("worker"),
            )
            restart(private_postgres, down_seconds=2)

            def settled() -> bool:
                runs = try_query(url, "SELECT case_id, status FROM workflow_states")
                return len(runs) == len(events) and all(r["status"] in SETTLED for r in runs)

            wait_for(
                settled,
                timeout=180,
                what="every dispute to settle after the restarts",
                log=lambda: processes.output("worker"),
            )
        finally:
            processes.stop_all()
        assert worker.returncode is not None

        messages = query(url, "SELECT event_id, run_id FROM processed_messages")
        assert {m["event_id"] for m in messages} == set(events)  # none lost
        assert all(m["run_id"] for m in messages)
        runs = query(url, "SELECT run_id, case_id, status FROM workflow_states")
        assert sorted(r["case_id"] for r in runs) == sorted(events.values())
        assert {r["status"] for r in runs} <= set(SETTLED)  # none stuck
        assert any(r["status"] == "completed" for r in runs)
        # None paid twice: one movement per case, and only for completed runs.
        moved = query(
            url,
            "SELECT w.case_id, w.status, count(*) AS n FROM sandbox_ledger l "
            "JOIN workflow_states w ON l.idempotency_key IN "
            "  (w.run_id::text || ':refund', w.run_id::text || ':credit') "
            "WHERE l.kind IN ('refund', 'credit') GROUP BY w.case_id, w.status",
        )
        assert moved and all(row["n"] == 1 for row in moved)
        assert {row["status"] for row in moved} == {"completed"}
