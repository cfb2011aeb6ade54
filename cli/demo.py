"""The demo: worker, API and the sample disputes in one process on embedded defaults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cli.compose import (
    Core,
    api_server,
    connect_queue,
    escalations,
    make_worker,
    open_core,
    open_workflow,
    stop_on_signals,
)
from services.review.reviewers import ReviewerKeys
from services.settings import Settings

DEMO_OVERRIDES: dict[str, Any] = {
    "auto_approve_max_amount": Decimal("50.00"),
    # The offline rules drafter's confidence tops out at 0.85.
    "auto_approve_min_confidence": 0.85,
    "worker_wait_time_seconds": 1,
    "run_reconcile_interval_seconds": 2.0,
}


def outcome_line(run: dict[str, Any]) -> str:
    crm = (run.get("crm_data") or {}).get("case") or {}
    head = f"{run['case_id']}  {crm.get('dispute_type', '?'):<28} {crm.get('amount', '?'):>9}"
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
    stop = asyncio.Event()
    stop_on_signals(stop)
    started = time.monotonic()
    print(
        "Starting the demo: embedded PostgreSQL, embedded SQS, sandbox backends, offline "
        "rules drafter (the first start also builds the knowledge base)",
        flush=True,
    )
    async with open_core(settings) as core, open_workflow(core) as workflow:
        queue = connect_queue(settings)
        try:
            cases = core.dataset.open_cases()
            for case in cases:
                # Deterministic event ids: a second start redelivers, and starts nothing new.
                queue.client.send_message(
                    QueueUrl=queue.url,
                    MessageBody=demo_event(case.case_id),
                )
            print(f"Published {len(cases)} sample disputes to {queue.url}")
            worker = make_worker(workflow, queue)
            server = api_server(core)
            tasks = [
                asyncio.create_task(worker.run(stop)),
                asyncio.create_task(server.serve()),
                asyncio.create_task(report_progress(core, [c.case_id for c in cases], stop)),
                asyncio.create_task(escalations(workflow, stop)),
            ]
            issued = await ReviewerKeys(core.store.engine).rotate("demo-reviewer")
            print(
                f"Review at {settings.public_base_url}/login with the demo reviewer key "
                f"{issued.key} (Ctrl-C to stop)"
            )
            await stop.wait()
            server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            queue.close()
    print(f"Stopped after {time.monotonic() - started:.0f} s; data kept in {settings.data_dir}/")
    return 0


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
