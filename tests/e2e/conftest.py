"""End-to-end helpers: the processes as a user starts them, on loopback only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from moto.server import ThreadedMotoServer
from psycopg.rows import dict_row

from services.queue import ensure_queue, sqs_client
from services.sandbox.data import load_dataset
from tests.fakes.vendor_servers import VendorServers, vendor_servers

ROOT = Path(__file__).resolve().parents[2]
# Seconds a received message stays invisible: the least the worker accepts.
VISIBILITY_TIMEOUT = 10


@contextmanager
def running_sqs(*, max_receive_count: int, visibility: int) -> Iterator[tuple[Any, str, str]]:
    """moto's SQS server on loopback with a fresh queue: (client, queue URL, endpoint)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = sqs_client(region="us-east-1", endpoint_url=endpoint, embedded=True)
        url = ensure_queue(
            client,
            name=f"disputes-{uuid.uuid4().hex[:8]}",
            max_receive_count=max_receive_count,
            visibility=visibility,
        )
        yield client, url, endpoint
    finally:
        server.stop()


@pytest.fixture
def sqs() -> Iterator[tuple[Any, str, str]]:
    """A fresh queue (5 receives, then the DLQ) on its own SQS server."""
    with running_sqs(max_receive_count=5, visibility=VISIBILITY_TIMEOUT) as queue:
        yield queue


@pytest.fixture
def servers() -> Iterator[VendorServers]:
    """Salesforce, Zuora and Stripe stand-ins holding the sandbox dataset."""
    # Whole seconds: what Stripe's `created` and Salesforce's CreatedDate can hold.
    with vendor_servers(load_dataset(datetime.now(UTC).replace(microsecond=0))) as running:
        yield running


def query(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of `sql` on the database at `url`, as dicts."""
    with psycopg.connect(url, row_factory=dict_row, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, what: str, log: Callable[[], str] = str
) -> Any:
    """Poll until `predicate` returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{log()}")


class Processes:
    """Starts app.py processes with a given environment; kills what is left at the end."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, name: str, **extra_env: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), *args],
            cwd=self.workdir,
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def output(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path, postgres_url: str) -> Iterator[Processes]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI", "SMTP", "CRM_", "BILLING_", "PAYMENT_", "SQS_", "CHROMA"))
    }
    env.update(
        {
            "POSTGRES_URL": postgres_url,
            "DATA_DIR": str(tmp_path / "data"),
            "LOG_DIR": str(tmp_path / "logs"),
            "CHROMA_DB_PATH": str(tmp_path / "chroma"),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "PYTHONUNBUFFERED": "1",
            # A killed worker is found dead within seconds, not the production 30 s.
            "WORKER_HEARTBEAT_SECONDS": "0.5",
            "WORKER_STALLED_AFTER_SECONDS": "3",
            "RUN_RECONCILE_INTERVAL_SECONDS": "1",
            "RUN_RETRY_BASE_SECONDS": "0.5",
            "RUN_RETRY_MAX_SECONDS": "2",
        }
    )
    procs = Processes(tmp_path, env)
    yield procs
    procs.stop_all()
