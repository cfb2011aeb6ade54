"""The demo: worker, API and the sample disputes in one process on embedded defaults.

One demo runs per DATA_DIR: it holds DATA_DIR/demo.lock from before anything starts until
it ends (the kernel releases the lock however the process ends), and a second start says
where the running one is. The demo reviewer's key is kept in DATA_DIR/demo-reviewer.key
(owner-only) and stays the same across restarts.

This module imports the stack (cli.compose) only in `run_demo`: app.py takes the lock and
reads DEMO_OVERRIDES before any of it is loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.settings import Settings, StartupError

if TYPE_CHECKING:
    from cli.compose import Core
    from services.queue import DisputeQueue
    from services.review.reviewers import ReviewerKeys

DEMO_OVERRIDES: dict[str, Any] = {
    "auto_approve_max_amount": Decimal("50.00"),
    # The offline rules drafter's confidence tops out at 0.85.
    "auto_approve_min_confidence": 0.85,
    "worker_wait_time_seconds": 1,
    "run_reconcile_interval_seconds": 2.0,
}


LOCK_FILE = "demo.lock"
KEY_FILE = "demo-reviewer.key"
DEMO_REVIEWER = "demo-reviewer"
# How long a second demo waits for the first one's lock file to say who holds it.
LOCK_INFO_WAIT_SECONDS = 2.0


@dataclass
class DemoLock:
    """DATA_DIR/demo.lock, held (flock) by this process until it exits."""

    path: Path
    fd: int


def hold_demo_lock(settings: Settings) -> DemoLock:
    """Take DATA_DIR/demo.lock and write who holds it (PID, URLs) into it; StartupError,
    saying where the running demo is and how to reach it, when another process holds it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / LOCK_FILE
    # Not inherited by child processes (PEP 446): PostgreSQL started by this process must
    # not keep the lock once the demo is gone.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise StartupError(already_running(holder, settings)) from None
    holder = {
        "pid": os.getpid(),
        "dashboard": f"{settings.public_base_url}/",
        "api": f"http://{settings.api_host}:{settings.api_port}",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    return DemoLock(path, fd)


def _read_holder(fd: int) -> dict[str, Any]:
    """What the holder wrote into the lock file (it writes right after taking the lock)."""
    deadline = time.monotonic() + LOCK_INFO_WAIT_SECONDS
    while True:
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"null")
        except ValueError:
            holder = None
        if isinstance(holder, dict) or time.monotonic() > deadline:
            return holder if isinstance(holder, dict) else {}
        time.sleep(0.1)


def already_running(holder: dict[str, Any], settings: Settings) -> str:
    """One line: the running demo, where it is, and how to reach or stop it."""
    pid = holder.get("pid")
    key_file = settings.data_dir / KEY_FILE
    where = f"PID {pid}, " if pid else ""
    since = f"since {holder['started_at']}, " if holder.get("started_at") else ""
    dashboard = holder.get("dashboard") or f"{settings.public_base_url}/"
    stop = f"Ctrl-C in its terminal or `kill {pid}`" if pid else "Ctrl-C in its terminal"
    return (
        f"a demo is already running ({where}{since}data in {settings.data_dir}): open its "
        f"dashboard at {dashboard} with the demo reviewer key in {key_file}, "
        f"or stop it ({stop}) before starting another"
    )


async def demo_reviewer_key(keys: ReviewerKeys, data_dir: Path) -> str:
    """The demo reviewer's key, the same across restarts: the one stored in
    DATA_DIR/demo-reviewer.key (owner-only) while it verifies, else a new one, stored."""
    path = data_dir / KEY_FILE
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        reviewer = await keys.verify(stored)
        if reviewer is not None and reviewer.name == DEMO_REVIEWER:
            path.chmod(0o600)
            return stored
    # None stored, or the database no longer knows it (reset): a new key, stored.
    issued = await keys.rotate(DEMO_REVIEWER)
    write_private(path, issued.key + "\n")
    return issued.key


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable and writable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def outcome_line(run: dict[str, Any]) -> str:
    crm = (run.get("crm_data") or {}).get("case") or {}
    label = {"chargeback": "chargeback", "early_fraud_warning": "early fraud warning"}.get(
        str(run.get("kind")), str(crm.get("dispute_type", "?"))
    )
    head = f"{run['case_id']}  {label:<28} {crm.get('amount', '?'):>9}"
    final = run.get("final_resolution") or {}
    proposal = run.get("resolution_proposal") or {}
    if run["status"] == "pending":
        return (
            f"{head}  awaiting review: {proposal.get('action')} {proposal.get('amount')}"
            f" {str(proposal.get('currency', '')).upper()}"
        )
    if run["status"] == "rejected":
        if final.get("outcome") == "invalid":
            return f"{head}  rejected: {final.get('failed_rule')}: {final.get('reason')}"
        return f"{head}  rejected by {final.get('reviewer')}"
    if run["status"] == "completed":
        how = "auto-approved" if _auto_approved(run) else "approved"
        return f"{head}  completed ({how}): {final.get('action')} {final.get('amount')}"
    error = final.get("error") or {}
    return f"{head}  {run['status']}: {error.get('message', '')}"


def _auto_approved(run: dict[str, Any]) -> bool:
    plan = (run.get("human_review_data") or {}).get("plan") or {}
    return bool(plan.get("auto_approve"))


async def run_demo(settings: Settings) -> int:
    """Start everything, publish the sample disputes, and run until SIGINT or SIGTERM
    (app.py holds the demo lock, and cancels a start-up on a signal)."""
    from cli.compose import (
        api_server,
        api_socket,
        check_queue_port,
        connect_queue,
        describe_setup,
        escalations,
        make_worker,
        open_core,
        open_workflow,
        stop_on_signals,
    )
    from services.review.reviewers import ReviewerKeys

    stop = asyncio.Event()
    started = time.monotonic()
    # Ports first: a taken one fails in a second, not after PostgreSQL has started.
    check_queue_port(settings)
    sock = api_socket(settings)
    print(
        f"Starting the demo: {describe_setup(settings)} (the first start also builds the "
        "knowledge base)",
        flush=True,
    )
    try:
        async with open_core(settings) as core, open_workflow(core) as workflow:
            drafter = core.drafter_status
            if not drafter.reachable:
                print(
                    f"WARNING drafter {drafter.name} is not reachable: {drafter.problem}; "
                    "drafts fall back to the rules drafter (flagged) until it is fixed",
                    file=sys.stderr,
                    flush=True,
                )
            queue = await asyncio.to_thread(connect_queue, settings)
            try:
                cases = core.dataset.open_cases()
                await asyncio.to_thread(publish_samples, queue, [c.case_id for c in cases])
                stripe_ids = await asyncio.to_thread(publish_stripe_samples, queue, core)
                print(
                    f"Published {len(cases)} sample disputes and {len(stripe_ids)} Stripe "
                    f"events (chargebacks, an early fraud warning) to {queue.url}"
                )
                worker = make_worker(workflow, queue)
                server = api_server(core)
                tasks = [
                    asyncio.create_task(worker.run(stop)),
                    asyncio.create_task(server.serve(sockets=[sock])),
                    asyncio.create_task(
                        report_progress(core, [c.case_id for c in cases] + stripe_ids, stop)
                    ),
                    asyncio.create_task(escalations(workflow, stop)),
                ]
                key = await demo_reviewer_key(ReviewerKeys(core.store.engine), settings.data_dir)
                stop_on_signals(stop)
                print(
                    f"Review at {settings.public_base_url}/login with the demo reviewer key "
                    f"{key} (drafter {drafter.describe()}; Ctrl-C to stop)",
                    flush=True,
                )
                await stop.wait()
                server.should_exit = True
                await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                queue.close()
    finally:
        sock.close()
    print(f"Stopped after {time.monotonic() - started:.0f} s; data kept in {settings.data_dir}/")
    return 0


def publish_samples(queue: DisputeQueue, case_ids: list[str]) -> None:
    """One event per sample case. Deterministic event ids: a second start redelivers, and
    starts nothing new."""
    for case_id in case_ids:
        queue.client.send_message(QueueUrl=queue.url, MessageBody=demo_event(case_id))


def publish_stripe_samples(queue: DisputeQueue, core: Core) -> list[str]:
    """The sandbox's chargebacks and early fraud warnings, as Stripe's webhook would put
    them on the queue (deterministic event ids, like the CRM samples); their ids."""
    from models.events import StripeEventMessage

    messages = [
        StripeEventMessage(
            type="stripe.event",
            event_id=f"evt_demo_{d.dispute_id}",
            event_type="charge.dispute.created",
            object_id=d.dispute_id,
            charge_id=d.charge_id,
            status=d.status,
        )
        for d in core.dataset.disputes.values()
        if d.status in ("needs_response", "warning_needs_response")
    ] + [
        StripeEventMessage(
            type="stripe.event",
            event_id=f"evt_demo_{w.warning_id}",
            event_type="radar.early_fraud_warning.created",
            object_id=w.warning_id,
            charge_id=w.charge_id,
        )
        for w in core.dataset.early_fraud_warnings.values()
    ]
    for message in messages:
        queue.client.send_message(
            QueueUrl=queue.url, MessageBody=message.model_dump_json(exclude_none=True)
        )
    return [m.object_id for m in messages]


def demo_event(case_id: str) -> str:
    return json.dumps(
        {
            "type": "dispute.created",
            "event_id": f"evt_demo_{case_id}",
            "case_id": case_id,
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    )


async def report_progress(core: Core, case_ids: list[str], stop: asyncio.Event) -> None:
    """Print one line per sample dispute as it settles (pending, rejected, completed)."""
    reported: dict[str, str] = {}
    announced_all = False
    while not stop.is_set():
        for case_id in case_ids:
            runs = await core.store.runs_for_case(case_id)
            if not runs:
                continue
            run = runs[-1]
            if run["status"] != "running" and reported.get(case_id) != run["status"]:
                reported[case_id] = run["status"]
                print(outcome_line(run), flush=True)
        if not announced_all and len(reported) == len(case_ids):
            announced_all = True
            pending = sum(1 for s in reported.values() if s == "pending")
            print(
                f"All {len(case_ids)} disputes processed; {pending} await review at "
                f"{core.settings.public_base_url}/",
                flush=True,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)
