"""Throughput of real worker processes on local wire-format servers, printed as figures.

Starts Salesforce / Zuora / Stripe stand-ins (tests/fakes/vendor_servers.py) holding N
generated disputes with a set latency per call, an OpenAI-compatible server with a set
latency (tests/fakes/openai_server.py), moto's SQS server and, for several workers, a
Chroma server; creates a fresh PostgreSQL database; runs W `python app.py` workers
configured through environment variables; publishes N dispute events and waits until
every run has settled (not `running`). One warm-up dispute runs first: it measures the
sequential vendor calls of a run and is excluded from every figure. Everything listens on
127.0.0.1 and is stopped, and the database dropped, on exit, Ctrl-C or failure.

    flock /tmp/pa-heavy.lock timeout 900 uv run python bench/throughput.py --disputes 200
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.queue import ensure_queue, sqs_client  # noqa: E402
from services.sandbox.data import load_dataset, salesforce_id  # noqa: E402
from services.sandbox.dataset import SandboxDataset  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.fakes.openai_server import Reply as LLMReply  # noqa: E402
from tests.fakes.vendor_servers import (  # noqa: E402
    FakeSalesforce,
    FakeStripe,
    FakeZuora,
    VendorServers,
)

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
TICK = 0.2  # seconds between polls of the run table
SETTLED_SQL = "SELECT count(*) FILTER (WHERE status <> 'running'), count(*) FROM workflow_states"
PG_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
)


# Generated data and the latency-adding fakes.


def replicated_dataset(
    copies: int, *, unique_texts: bool = True
) -> tuple[SandboxDataset, list[str]]:
    """The sandbox dataset copied `copies` times with new ids; its valid open case ids.

    With `unique_texts` every copy of a case says something of its own (a reference at the
    end of its description), as real disputes do: otherwise the copies share their texts,
    and the worker's per-text caches (the query embedding, the policy search) answer most
    of them without the work a real dispute costs."""
    base = load_dataset(datetime.now(UTC).replace(microsecond=0))
    accounts, cases, billing, charges = {}, {}, {}, {}
    valid: list[str] = []
    for k in range(copies):
        tag = f"b{k:03d}"
        charge_ids = {c: f"{c}{tag}" for c in base.charges}
        for account in base.accounts.values():
            new_id = salesforce_id("001", f"bench:{tag}:{account.account_id}")
            zuora = f"{account.zuora_account_id}{tag}" if account.zuora_account_id else None
            stripe = f"{account.stripe_customer_id}{tag}" if account.stripe_customer_id else None
            accounts[new_id] = account.model_copy(
                update={
                    "account_id": new_id,
                    "zuora_account_id": zuora,
                    "stripe_customer_id": stripe,
                }
            )
            if account.zuora_account_id in base.billing:
                billing[zuora] = base.billing[account.zuora_account_id].model_copy(
                    update={"account_key": zuora}
                )
        new_account = {a: salesforce_id("001", f"bench:{tag}:{a}") for a in base.accounts}
        for charge in base.charges.values():
            charges[charge_ids[charge.charge_id]] = charge.model_copy(
                update={
                    "charge_id": charge_ids[charge.charge_id],
                    "customer_id": f"{charge.customer_id}{tag}",
                }
            )
        for case in base.cases.values():
            new_id = salesforce_id("500", f"bench:{tag}:{case.case_id}")
            cases[new_id] = case.model_copy(
                update={
                    "case_id": new_id,
                    "case_number": f"{k + 1:03d}{case.case_number[-5:]}",
                    "account_id": new_account[case.account_id],
                    "charge_id": charge_ids.get(case.charge_id or "", case.charge_id),
                    "description": (
                        f"{case.description} Our reference: {tag}-{case.case_number[-5:]}."
                        if unique_texts
                        else case.description
                    ),
                }
            )
            if case.status not in ("Closed", "Resolved") and case.case_id not in (
                base.expected_invalid
            ):
                valid.append(new_id)
    return SandboxDataset(accounts=accounts, cases=cases, billing=billing, charges=charges), valid


class Latency:
    """Mixin: every request waits `latency` seconds (outside the fake's lock), timed."""

    latency: float = 0.0
    arrivals: list[float]

    def dispatch(self, request: Any) -> Any:
        self.arrivals.append(time.monotonic())
        time.sleep(self.latency)
        return super().dispatch(request)  # type: ignore[misc]


class SlowSalesforce(Latency, FakeSalesforce):
    pass


class SlowZuora(Latency, FakeZuora):
    pass


class SlowStripe(Latency, FakeStripe):
    pass


def llm_answer(latency: float) -> LLMReply:
    """A draft the guardrails accept for any dispute (a denial), after `latency` seconds."""
    content = {
        "action": "deny_refund",
        "amount": 0,
        "reason": "Benchmark answer: the facts do not support a refund.",
        "confidence": 0.5,
        "supporting_factors": ["benchmark"],
        "risk_level": "low",
        "policy_ids": [],
    }
    return LLMReply(content=content, delay=latency)


# Processes: start, sample /proc, stop.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 30.0) -> int | None:
    """SIGTERM the process group, then SIGKILL after `grace` seconds; the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += parents.get(current, [])
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / ticks


def peak_rss_mib(pid: int) -> float:
    """VmHWM of `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_chroma(workdir: Path, stack: contextlib.ExitStack) -> str:
    """A Chroma server on loopback (`chroma run`), stopped with `stack`; its URL."""
    port = free_port()
    log = stack.enter_context((workdir / "chroma.log").open("wb"))
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(workdir / "chroma")]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        start_new_session=True,
    )
    stack.callback(stop_process, server, grace=20)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"chroma run exited with {server.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                return url
        time.sleep(0.2)
    raise RuntimeError("the chroma server did not answer within 60 s")


# PostgreSQL.


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server, dropped (connections ended) on exit."""
    name = f"pa_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_counters(server_url: str, name: str) -> dict[str, int]:
    """pg_stat_database counters and the size of database `name` (read from the server)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            f"SELECT {', '.join(PG_COUNTERS)}, pg_database_size(datname) "
            "FROM pg_stat_database WHERE datname = %s",
            (name,),
        ).fetchone()
    assert row is not None
    return dict(zip((*PG_COUNTERS, "size"), map(int, row), strict=True))


def has_pg_stat_statements(server_url: str) -> bool:
    with psycopg.connect(server_url, autocommit=True) as conn:
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
    return bool(preload and "pg_stat_statements" in str(preload[0]))


# The benchmark.


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    cpu_baseline: float = 0.0


@dataclass
class Watch:
    """What the polling loop saw."""

    polls: int = 0
    peak_connections: int = 0
    settled_at: float | None = None
    counts: tuple[int, int] = (0, 0)
    statuses: dict[str, int] = field(default_factory=dict)


def worker_env(args: argparse.Namespace, **extra: str) -> dict[str, str]:
    """The environment a user would give the worker (inherited, minus our own settings)."""
    drop = ("OPENAI", "SMTP", "CRM_", "BILLING_", "PAYMENT_", "SQS_", "CHROMA", "POSTGRES")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
        WORKER_MAX_IN_FLIGHT=str(args.in_flight),
        ANONYMIZED_TELEMETRY="False",
        **extra,
    )
    return env


def start_workers(count: int, env: dict[str, str], workdir: Path) -> list[Worker]:
    """Start `count` `python app.py` workers, each in its own session and directory."""
    workers = []
    for i in range(count):
        home = workdir / f"worker{i}"
        home.mkdir()
        log = home / "console.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py")],
                cwd=home,
                env={
                    **env,
                    "LOG_DIR": str(home / "logs"),
                    "DATA_DIR": str(home / "data"),
                    "CHROMA_DB_PATH": str(home / "chroma"),
                },
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        workers.append(Worker(process, log))
    return workers


def wait_ready(workers: list[Worker], deadline: float) -> None:
    """Block until every worker logged that it consumes the queue."""
    for worker in workers:
        while "worker consuming" not in worker.log.read_text(errors="replace"):
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.process.returncode}: {worker.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready in time: {worker.log}")
            time.sleep(0.2)


def publish(client: Any, queue_url: str, case_ids: list[str]) -> None:
    """Send one dispute.created event per case, ten per batch."""
    for start in range(0, len(case_ids), 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(
                    {"type": "dispute.created", "event_id": f"evt_{uuid.uuid4().hex}", "case_id": c}
                ),
            }
            for i, c in enumerate(case_ids[start : start + 10])
        ]
        client.send_message_batch(QueueUrl=queue_url, Entries=entries)


def wait_settled(db_url: str, expected: int, deadline: float, watch: Watch) -> None:
    """Poll until `expected` runs exist and none is `running`, or the deadline passes."""
    name = urlsplit(db_url).path.lstrip("/")
    with psycopg.connect(db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            watch.polls += 1
            try:
                row = conn.execute(SETTLED_SQL).fetchone()
            except psycopg.errors.UndefinedTable:
                row = (0, 0)
            active = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()
            watch.polls += 1
            watch.peak_connections = max(watch.peak_connections, int(active[0]) if active else 0)
            watch.counts = (int(row[0]), int(row[1])) if row else (0, 0)
            if watch.counts == (expected, expected):
                watch.settled_at = time.monotonic()
                return
            time.sleep(TICK)


def sequential_steps(arrivals: list[float], latency: float) -> int:
    """Requests that waited on an earlier answer: arrivals more than half a latency apart."""
    steps, last = 0, -1.0e9
    for t in sorted(arrivals):
        if t - last > latency / 2:
            steps += 1
            last = t
    return steps


def run(args: argparse.Namespace) -> None:
    """Set everything up, drive the benchmark, print the figures, tear it all down."""
    latency, llm_latency = args.http_latency_ms / 1000, args.llm_latency_ms / 1000
    copies = args.disputes // 10 + 2
    dataset, valid = replicated_dataset(copies, unique_texts=not args.repeat_texts)
    if len(valid) < args.disputes + 1:
        raise SystemExit(f"only {len(valid)} valid disputes generated")
    warmup, cases = valid[0], valid[1 : args.disputes + 1]
    texts = len({(dataset.cases[c].subject, dataset.cases[c].description) for c in cases})
    hard_deadline = time.monotonic() + args.timeout

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pa-bench-")))
        fakes = []
        for kind in (SlowSalesforce, SlowZuora, SlowStripe):
            fake = kind(dataset=dataset)
            fake.latency, fake.arrivals = latency, []
            fakes.append(stack.enter_context(fake))
        vendors = VendorServers(*fakes)
        llm = FakeOpenAIServer(responder=lambda request: llm_answer(llm_latency))
        stack.enter_context(llm)
        sqs = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        sqs.start()
        stack.callback(sqs.stop)
        host, port = sqs.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = sqs_client(region="us-east-1", endpoint_url=endpoint, embedded=True)
        queue_url = ensure_queue(client, name="bench-disputes", max_receive_count=5, visibility=60)
        db_url = stack.enter_context(fresh_database(args.postgres_url))
        db_name = urlsplit(db_url).path.lstrip("/")
        extra = {"CHROMA_URL": start_chroma(workdir, stack)} if args.workers > 1 else {}
        env = worker_env(
            args,
            POSTGRES_URL=db_url,
            SQS_QUEUE_URL=queue_url,
            SQS_ENDPOINT_URL=endpoint,
            OPENAI_API_KEY="sk-bench",
            OPENAI_BASE_URL=llm.base_url,
            **vendors.environment(),
            **extra,
        )
        started = time.monotonic()
        workers = start_workers(args.workers, env, workdir)
        stack.callback(lambda: [stop_process(w.process) for w in workers])
        wait_ready(workers, hard_deadline)
        ready = time.monotonic() - started

        # Warm-up: one dispute alone, to time a run's vendor calls and warm the worker.
        for fake in fakes:
            fake.arrivals.clear()
        publish(client, queue_url, [warmup])
        wait_settled(db_url, 1, hard_deadline, Watch())
        arrivals = [t for fake in fakes for t in fake.arrivals]
        sequential = sequential_steps(arrivals, latency)
        warm_calls = len(arrivals)
        llm_warm = len(llm.requests)

        time.sleep(2)  # let the backends flush their statistics
        before = database_counters(args.postgres_url, db_name)
        for worker in workers:
            worker.cpu_baseline = cpu_seconds(worker.process.pid)
        llm_before = len(llm.requests)
        calls_before = sum(len(fake.requests) for fake in fakes)

        watch = Watch()
        first_publish = time.monotonic()
        publish(client, queue_url, cases)
        wait_settled(db_url, args.disputes + 1, hard_deadline, watch)
        end = watch.settled_at or time.monotonic()

        cpu = [cpu_seconds(w.process.pid) - w.cpu_baseline for w in workers]
        rss = [peak_rss_mib(w.process.pid) for w in workers]
        exit_codes = [stop_process(w.process) for w in workers]
        with psycopg.connect(db_url, autocommit=True) as conn:
            statuses = dict(
                conn.execute(
                    "SELECT status, count(*) FROM workflow_states GROUP BY status ORDER BY 1"
                ).fetchall()
            )
        watch.polls += 1
        time.sleep(1)
        after = database_counters(args.postgres_url, db_name)

        n = args.disputes
        elapsed = end - first_publish
        calls = sum(len(fake.requests) for fake in fakes) - calls_before
        llm_calls = len(llm.requests) - llm_before
        per_run_latency = (llm_calls / n) * llm_latency + sequential * latency
        bound = args.workers * args.in_flight / per_run_latency
        throughput = (watch.counts[0] - 1) / elapsed if elapsed > 0 else 0.0
        recorded = sum(statuses.values())
        bad = sum(statuses.get(s, 0) for s in ("failed", "needs_attention", "running"))
        delta = {k: after[k] - before[k] for k in after}

        print(
            f"\nthroughput benchmark: {n} disputes, {args.workers} worker(s) x "
            f"{args.in_flight} in flight, LLM {args.llm_latency_ms} ms, "
            f"HTTP {args.http_latency_ms} ms per call"
        )
        print(f"  dispute texts               {texts} distinct of {n}")
        print(f"  workers ready after         {ready:.1f} s (start to 'worker consuming')")
        print(
            f"  settled                     {watch.counts[0] - 1}/{n} in {elapsed:.2f} s"
            f"{'' if watch.settled_at else '  (TIMED OUT)'}"
        )
        print(
            f"  throughput                  {throughput:.2f} disputes/s "
            "(first publish to last settle)"
        )
        print(
            f"  vendor calls per run        {warm_calls} in the warm-up run, "
            f"{sequential} sequential; {calls / n:.2f} per dispute in the batch"
        )
        print(f"  LLM calls per dispute       {llm_calls / n:.2f} (warm-up run: {llm_warm})")
        print(
            f"  bound                       {bound:.2f} disputes/s = {args.workers} x "
            f"{args.in_flight} / ({llm_calls / n:.2f} x {llm_latency:.3f} s + "
            f"{sequential} x {latency:.3f} s)"
        )
        print(f"  throughput / bound          {throughput / bound:.2%}")
        for i, (seconds, peak) in enumerate(zip(cpu, rss, strict=True)):
            print(
                f"  worker {i}: CPU {seconds * 1000 / n:.1f} ms/dispute "
                f"({seconds:.1f} s), peak RSS (VmHWM) {peak:.0f} MiB, exit {exit_codes[i]}"
            )
        print(f"  worker CPU, all workers     {sum(cpu) * 1000 / n:.1f} ms per dispute")
        if has_pg_stat_statements(args.postgres_url):
            print("  (pg_stat_statements is loaded, but these figures come from pg_stat_database)")
        print(
            "  SQL per dispute             pg_stat_statements NOT loaded: pg_stat_database "
            f"counters (minus {watch.polls} benchmark polls)"
        )
        xacts = delta["xact_commit"] + delta["xact_rollback"] - watch.polls
        print(
            f"    transactions              {xacts / n:.1f} "
            f"({delta['xact_rollback'] / n:.2f} rollbacks)"
        )
        for key in ("tup_inserted", "tup_updated", "tup_deleted", "tup_fetched", "tup_returned"):
            print(f"    {key:<25} {delta[key] / n:.1f}")
        print(
            f"  PostgreSQL bytes/dispute    {delta['size'] / n:,.0f} "
            f"(database {before['size'] / 2**20:.1f} -> {after['size'] / 2**20:.1f} MiB)"
        )
        print(
            f"  peak connections            {watch.peak_connections} "
            "(to this database, the benchmark's own included)"
        )
        print(f"  run statuses                {statuses}")
        print(
            f"  failed or stuck             {bad + (n + 1 - recorded)} "
            f"({n + 1 - recorded} never recorded, {bad} running/failed/needs_attention)"
        )
        report_logs(workers, vendors)
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            for i, w in enumerate(workers):
                (keep / f"worker{i}.log").write_bytes(w.log.read_bytes())
            print(f"  worker logs copied to {keep}")


def report_logs(workers: list[Worker], vendors: VendorServers) -> None:
    """Print the warnings and errors the workers logged, and the fakes' own errors."""
    for i, worker in enumerate(workers):
        lines = worker.log.read_text(errors="replace").splitlines()
        bad = [ln for ln in lines if any(w in ln for w in ("ERROR", "WARNING", "Traceback"))]
        print(f"  worker {i} log: {len(lines)} lines, {len(bad)} warning/error lines")
        for line in bad[:8]:
            print(f"    {line[:300]}")
    for fake in (vendors.salesforce, vendors.zuora, vendors.stripe):
        if fake.errors:
            print(f"  fake {fake.system} errors: {fake.errors[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disputes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--llm-latency-ms", type=int, default=800)
    parser.add_argument("--http-latency-ms", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=600.0, help="hard limit, seconds")
    parser.add_argument("--postgres-url", default=os.environ.get("POSTGRES_URL", PG_DEFAULT))
    parser.add_argument("--keep-logs", help="copy the workers' console logs to this directory")
    parser.add_argument(
        "--repeat-texts",
        action="store_true",
        help="let the copies of a sandbox case share its text (the per-text caches then "
        "answer most disputes; for comparison with a realistic, all-distinct run)",
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request lines
    if not 1 <= args.disputes <= 2000 or not 1 <= args.workers <= 4:
        parser.error("--disputes must be 1..2000 and --workers 1..4")
    # SIGTERM unwinds like Ctrl-C, so the ExitStack stops everything it started.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    run(args)


if __name__ == "__main__":
    main()
