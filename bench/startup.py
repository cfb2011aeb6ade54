"""Start-up times, printed as figures: `app.py --help`, and a worker's time to ready.

1. `uv run python app.py --help`, 5 times: each wall time and the median (and the same
   with the venv's interpreter directly, `python app.py --help`, which leaves out uv).
2. A worker, `uv run python app.py`, on a fresh database of the PostgreSQL server at
   POSTGRES_URL (required), moto's SQS server started here, and an embedded knowledge
   base in a temporary directory: the time from launch to its first log line and to
   "worker consuming ..." (logged once PostgreSQL is migrated, the knowledge base open
   and the queue connected, right before the intake's first receive). Twice: cold (the
   migrations run and the knowledge base is seeded) and warm (both already done).

Everything started here is stopped, and the database dropped, on exit, Ctrl-C or failure;
the whole run is bounded (--timeout, 120 s by default).

    POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        flock /tmp/pa-heavy.lock uv run python bench/startup.py
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.queue import ensure_queue, sqs_client  # noqa: E402

RUNS = 5
READY_LINE = "worker consuming"


class Timeout(Exception):
    """The run went past --timeout."""


@dataclass
class Deadline:
    at: float

    def left(self) -> float:
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise Timeout
        return remaining


def uv_python(*args: str) -> list[str]:
    """`uv run python ARGS` for this project, from any working directory."""
    return ["uv", "run", "--project", str(ROOT), "python", *args]


def time_help(command: list[str], deadline: Deadline) -> list[float]:
    """Wall times of RUNS runs of `command` (each must exit 0)."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(
            command,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=deadline.left(),
        )
        times.append(time.perf_counter() - start)
    return times


def show_runs(label: str, times: list[float]) -> None:
    each = " ".join(f"{t:.2f}" for t in times)
    print(f"{label:<34} median {statistics.median(times):.2f} s   runs: {each}")


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server, dropped (connections ended) on exit."""
    name = f"pa_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def sqs_queue() -> Iterator[tuple[str, str]]:
    """moto's SQS server on loopback with the dispute queue: (endpoint, queue URL)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = sqs_client(region="us-east-1", endpoint_url=endpoint, embedded=True)
        url = ensure_queue(client, name="dispute-events", max_receive_count=5, visibility=60)
        yield endpoint, url
    finally:
        server.stop()


@dataclass
class Start:
    """One worker start: when each console line arrived, seconds after launch."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def first_line(self) -> float:
        return self.lines[0][0]

    def ready_at(self) -> float:
        return self.until_ready()[-1][0]

    def until_ready(self) -> list[tuple[float, str]]:
        """The lines up to and including the ready line."""
        ready = next(i for i, (_, line) in enumerate(self.lines) if READY_LINE in line)
        return self.lines[: ready + 1]


def stop(process: subprocess.Popen[bytes], *, grace: float = 20.0) -> float:
    """SIGTERM the process group, SIGKILL after `grace` seconds; seconds it took."""
    start = time.perf_counter()
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return time.perf_counter() - start


def start_worker(env: dict[str, str], workdir: Path, deadline: Deadline) -> tuple[Start, float]:
    """Launch a worker, wait until it is ready, stop it; (its start, seconds to stop)."""
    seen = Start()
    launched = time.perf_counter()
    process = subprocess.Popen(
        uv_python(str(ROOT / "app.py")),
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            seen.lines.append((time.perf_counter() - launched, line))
            if READY_LINE in line:
                seen.ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while not seen.ready.wait(timeout=min(0.05, deadline.left())):
            if process.poll() is not None:
                reader.join(timeout=2)
                output = "\n".join(line for _, line in seen.lines[-20:])
                raise RuntimeError(f"the worker exited with {process.returncode}:\n{output}")
    finally:
        stopped = stop(process)
        reader.join(timeout=5)
    return seen, stopped


def show_start(label: str, start: Start, stopped: float) -> None:
    print(
        f"{label:<34} first log line {start.first_line():.2f} s   "
        f"ready ({READY_LINE!r}) {start.ready_at():.2f} s   stopped in {stopped:.2f} s"
    )


def worker_env(postgres_url: str, endpoint: str, queue_url: str, home: Path) -> dict[str, str]:
    """The environment an operator gives a worker (inherited, minus our own settings)."""
    drop = ("OPENAI", "SMTP", "CRM_", "BILLING_", "PAYMENT_", "SQS_", "CHROMA", "POSTGRES")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        POSTGRES_URL=postgres_url,
        SQS_QUEUE_URL=queue_url,
        SQS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        LOG_DIR=str(home / "logs"),
        DATA_DIR=str(home / "data"),
        CHROMA_DB_PATH=str(home / "chroma"),
        PYTHONUNBUFFERED="1",
        ANONYMIZED_TELEMETRY="False",
    )
    return env


def run(postgres_url: str, deadline: Deadline) -> None:
    show_runs("uv run python app.py --help", time_help(uv_python("app.py", "--help"), deadline))
    direct = [sys.executable, "app.py", "--help"]
    show_runs("python app.py --help (no uv)", time_help(direct, deadline))
    with (
        tempfile.TemporaryDirectory(prefix="pa-startup-") as tmp,
        fresh_database(postgres_url) as database,
        sqs_queue() as (endpoint, queue_url),
    ):
        home = Path(tmp)
        env = worker_env(database, endpoint, queue_url, home)
        cold, stopped = start_worker(env, home, deadline)
        show_start("worker, cold (migrate, seed KB)", cold, stopped)
        warm, stopped = start_worker(env, home, deadline)
        show_start("worker, warm", warm, stopped)
        for label, start in (("cold", cold), ("warm", warm)):
            print(f"  {label} start, console lines until ready:")
            for at, line in start.until_ready():
                print(f"  {at:6.2f} s  {line[:110]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120.0, help="hard limit, seconds")
    args = parser.parse_args()
    postgres_url = os.environ.get("POSTGRES_URL")
    if not postgres_url:
        print(
            "bench/startup.py needs a PostgreSQL server for the worker: set POSTGRES_URL, "
            "e.g. POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/postgres",
            file=sys.stderr,
        )
        return 2
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request lines
    # SIGTERM unwinds like Ctrl-C, so everything started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        run(postgres_url, Deadline(time.monotonic() + args.timeout))
    except (Timeout, subprocess.TimeoutExpired):
        print(f"gave up after {args.timeout:.0f} s (--timeout)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
