"""End-to-end helpers: the processes as a user starts them, on loopback only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
