"""PaymentsAgent: the CLI and the composition root.

Settings → services → graph → mode. Nothing else reads the environment, and nothing opens
a connection before the chosen mode asks for it.

  python app.py                      the worker: consume dispute events, resume decisions
  python app.py --api | --server     the API and dashboard on port 8003
  python app.py --demo               everything in one process on embedded defaults
  python app.py CASE_ID [CUSTOMER]   one run in the foreground, stopping at review
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

from api.app import create_app
from api.deps import build_api_services
from services.backends import Integrations, build_integrations
from services.database import Database, create_engine, open_database, upgrade_schema
from services.errors import PaymentsAgentError
from services.llm import GuardedDrafter, build_drafter
from services.notifications import EmailNotifier, build_notifier
from services.queue import DisputeQueue, open_queue
from services.reviewer_keys import ReviewerKeys
from services.sandbox import SandboxDataset, SandboxLedger, load_dataset
from services.settings import ConfigurationError, Settings
from services.store import WorkflowStore
from utils.logging_config import configure_logging
from workflows.checkpointing import open_checkpointer
from workflows.context import ReviewRules, WorkflowContext
from workflows.dispute_workflow import build_graph
from workflows.escalation import EscalationPolicy, review_escalation_loop
from workflows.runner import RunOutcome, WorkflowRunner
from workflows.worker import DisputeWorker, WorkerSettings

if TYPE_CHECKING:
    # chromadb takes ~2 s to import: only the modes that run disputes load it.
    from services.chroma_store import ChromaPolicyStore

log = logging.getLogger("payments_agent")

DEMO_OVERRIDES: dict[str, Any] = {
    "auto_approve_max_amount": Decimal("50.00"),
    # The offline rules drafter's confidence tops out at 0.85.
    "auto_approve_min_confidence": 0.85,
    "worker_wait_time_seconds": 1,
    "worker_sweep_interval_seconds": 2.0,
}


@dataclass
class Core:
    """What every mode needs: settings, PostgreSQL and the run store."""

    settings: Settings
    database: Database
    store: WorkflowStore
    dataset: SandboxDataset

    def backends(self) -> dict[str, str]:
        s = self.settings
        return {
            "database": self.database.describe(),
            "crm": s.crm_backend,
            "billing": s.billing_backend,
            "payments": s.payment_backend,
            "drafter": (
                f"openai:{s.openai_model}"
                if s.openai_api_key
                else "rules (offline: OPENAI_API_KEY not set)"
            ),
            "knowledge": f"chroma-server:{s.chroma_url}"
            if s.chroma_url
            else f"chroma-embedded:{s.chroma_db_path}",
            "email": "smtp" if s.smtp_host else "log-only (SMTP_HOST not set)",
            "queue": s.sqs_queue_url or ("embedded" if not s.sqs_endpoint_url else "endpoint"),
        }


@dataclass
class Workflow:
    """The compiled graph with its services, ready to run disputes."""

    core: Core
    runner: WorkflowRunner
    integrations: Integrations
    knowledge: ChromaPolicyStore
    drafter: GuardedDrafter
    notifier: EmailNotifier


@contextlib.asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    settings.check_backends()
    database = open_database(
        settings.postgres_url.get_secret_value() if settings.postgres_url else None,
        settings.data_dir,
    )
    await asyncio.to_thread(upgrade_schema, database.url)
    engine = create_engine(database)
    try:
        yield Core(settings, database, WorkflowStore(engine), load_dataset(datetime.now(UTC)))
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def open_workflow(core: Core) -> AsyncIterator[Workflow]:
    from services.chroma_store import open_policy_store

    settings = core.settings
    store = core.store
    async with httpx.AsyncClient(timeout=settings.integration_timeout_seconds) as http:
        integrations = build_integrations(
            settings, dataset=core.dataset, ledger=SandboxLedger(store.engine), http_client=http
        )
        knowledge = await asyncio.to_thread(open_policy_store, settings)
        await seed_knowledge_if_empty(knowledge, settings)
        drafter = build_drafter(settings, engine=store.engine)
        notifier = build_notifier(settings, engine=store.engine)

        async def resolution_stored(dispute_type: str) -> None:
            await drafter.invalidate(dispute_type=dispute_type)

        try:
            async with open_checkpointer(
                core.database.url, max_size=settings.worker_max_in_flight + 2
            ) as saver:
                context = WorkflowContext(
                    crm=integrations.crm,
                    billing=integrations.billing,
                    payments=integrations.payments,
                    knowledge=knowledge,
                    drafter=drafter,
                    notifier=notifier,
                    store=store,
                    review_rules=ReviewRules(
                        auto_approve_max_amount=settings.auto_approve_max_amount,
                        auto_approve_min_confidence=settings.auto_approve_min_confidence,
                        max_disputes_90d=settings.max_disputes_90d,
                        dual_approval_min_amount=settings.dual_approval_min_amount,
                    ),
                    dispute_window_days=settings.dispute_window_days,
                    retry=integrations.retry,
                    on_resolution_stored=resolution_stored,
                )
                runner = WorkflowRunner(graph=build_graph(saver), context=context, store=store)
                yield Workflow(core, runner, integrations, knowledge, drafter, notifier)
        finally:
            await integrations.aclose()


async def seed_knowledge_if_empty(knowledge: ChromaPolicyStore, settings: Settings) -> None:
    """A new installation starts with the shipped policies and historical resolutions."""
    from services.chroma_store import seed_precedents

    counts = await knowledge.counts()
    if not counts.get("company_policies"):
        report = await knowledge.ingest_policies(directory=settings.policies_dir)
        log.info("ingested policies from %s: %s", settings.policies_dir, report)
    if not counts.get("dispute_resolutions"):
        seeded = await seed_precedents(knowledge)
        log.info("seeded %d historical resolutions", seeded)


def connect_queue(settings: Settings) -> DisputeQueue:
    return open_queue(
        region=settings.aws_region,
        queue_url=settings.sqs_queue_url,
        endpoint_url=settings.sqs_endpoint_url,
        queue_name=settings.sqs_queue_name,
        max_receive_count=settings.sqs_max_receive_count,
        visibility=settings.worker_visibility_timeout_seconds,
        embedded_port=settings.embedded_sqs_port,
    )


def make_worker(
    workflow: Workflow, queue: DisputeQueue, on_outcome: Callable[[RunOutcome], None] | None
) -> DisputeWorker:
    s = workflow.core.settings
    return DisputeWorker(
        queue=queue,
        runner=workflow.runner,
        store=workflow.core.store,
        postgres_url=workflow.core.database.url,
        settings=WorkerSettings(
            max_in_flight=s.worker_max_in_flight,
            visibility_timeout=s.worker_visibility_timeout_seconds,
            wait_time=s.worker_wait_time_seconds,
            sweep_interval=s.worker_sweep_interval_seconds,
        ),
        on_outcome=on_outcome,
    )


async def escalations(workflow: Workflow, stop: asyncio.Event) -> None:
    """Remind approvers of overdue reviews and escalate long-waiting ones (never decide)."""
    await review_escalation_loop(
        store=workflow.core.store,
        notifier=workflow.notifier,
        policy=EscalationPolicy.from_settings(workflow.core.settings),
        stop=stop,
    )


def api_server(core: Core) -> uvicorn.Server:
    app = create_app(build_api_services(core.settings, store=core.store, backends=core.backends()))
    config = uvicorn.Config(
        app,
        host=core.settings.api_host,
        port=core.settings.api_port,
        log_level="warning",
        lifespan="off",
    )
    return uvicorn.Server(config)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


# Modes


async def run_worker(settings: Settings) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with open_core(settings) as core, open_workflow(core) as workflow:
        queue = connect_queue(settings)
        try:
            log.info("worker consuming %s (%s)", queue.url, queue.describe())
            await asyncio.gather(
                make_worker(workflow, queue, None).run(stop), escalations(workflow, stop)
            )
        finally:
            queue.close()
    return 0


async def run_api(settings: Settings) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with open_core(settings) as core:
        server = api_server(core)
        serving = asyncio.create_task(server.serve())
        log.info("API on http://%s:%s", settings.api_host, settings.api_port)
        await asyncio.wait(
            [serving, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        server.should_exit = True
        await serving
    return 0


async def run_single(settings: Settings, case_id: str, customer_id: str | None) -> int:
    async with open_core(settings) as core, open_workflow(core) as workflow:
        print(f"Case {case_id}: starting a run")

        def show(step: str, update: dict[str, Any]) -> None:
            print(f"  {step:<20} {describe_update(update)}")

        outcome = await workflow.runner.start(
            case_id=case_id, customer_id=customer_id, actor="cli", on_step=show
        )
        print(f"Run {outcome.run_id}: {outcome.status}")
        if outcome.status == "pending":
            print(
                "Decide it with the API (a running worker, `python app.py`, resumes it):\n"
                f"  curl -X POST {settings.public_base_url}/human-review/decision "
                "-H 'Content-Type: application/json' "
                "-H 'Authorization: Bearer YOUR_REVIEWER_KEY' \\\n"
                f'    -d \'{{"run_id": "{outcome.run_id}", "case_id": "{case_id}", '
                '"decision": "approved", "comments": "checked"}\'\n'
                "Reviewer keys: uv run python utils/manage_reviewers.py create NAME --email E"
            )
        return 0 if outcome.status != "failed" else 1


def describe_update(update: dict[str, Any]) -> str:
    """One readable line for a step's state update."""
    if update.get("error"):
        return f"error: {update['error'].get('message')}"
    validation = update.get("validation")
    if validation:
        return "valid" if validation["valid"] else f"invalid: {validation['reason']}"
    proposal = update.get("proposal")
    if proposal:
        return (
            f"proposal {proposal['action']} {proposal['amount']} {proposal['currency'].upper()}"
            f" (confidence {proposal['confidence']}, {proposal['drafter']})"
        )
    review = update.get("review")
    if review:
        if review["auto_approve"]:
            return f"auto-approved: {review['auto_approve_rule']}"
        flags = ", ".join(review["risk_flags"]) or "none"
        return f"needs {review['required_approvals']} approval(s); risk flags: {flags}"
    if update.get("execution"):
        execution = update["execution"]
        return f"executed {execution['action']} {execution['amount']}"
    if update.get("crm_data"):
        case = update["crm_data"]["case"]
        return f"{case['dispute_type']} {case['amount']} on {case['charge_id']}"
    if update.get("status"):
        return str(update["status"])
    return "done"


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
            worker = make_worker(workflow, queue, None)
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
    import json

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


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="PaymentsAgent: billing dispute resolution with human review.",
        epilog="Without arguments: the worker. Settings come from the environment and .env "
        "(see .env.example).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--api", "--server", action="store_true", help="serve the API on port 8003")
    mode.add_argument(
        "--demo", action="store_true", help="worker + API + sample disputes, embedded defaults"
    )
    parser.add_argument("case_id", nargs="?", help="run one case in the foreground")
    parser.add_argument("customer_id", nargs="?", help="the customer id (informational)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings(**DEMO_OVERRIDES) if args.demo else Settings()
        settings.check_backends()
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_dir, settings.log_level, console=not args.demo)
    if args.demo:
        mode = run_demo(settings)
    elif args.api:
        mode = run_api(settings)
    elif args.case_id:
        mode = run_single(settings, args.case_id, args.customer_id)
    else:
        mode = run_worker(settings)
    try:
        return asyncio.run(mode)
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except PaymentsAgentError as exc:
        print(f"cannot start: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
