"""The composition root: settings → adapters → checkpointer → graph, for every mode.

Nothing here runs at import; each `open_*` opens what a mode needs and closes it after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import uvicorn
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from agents import NODES
from api.app import create_app
from api.deps import build_api_services
from services.drafting.guarded import GuardedDrafter, build_drafter
from services.integrations.backends import Integrations, build_integrations
from services.persistence.database import (
    SEED_LOCK,
    Database,
    create_engine,
    open_database,
    startup_lock,
    upgrade_schema,
)
from services.persistence.jobs import RunJobs, job_app
from services.persistence.store import WorkflowStore
from services.queue import DisputeQueue, open_queue
from services.review.notifications import EmailNotifier, build_notifier
from services.sandbox.backends import sandbox_backends
from services.sandbox.data import load_dataset
from services.sandbox.dataset import SandboxDataset
from services.sandbox.ledger import SandboxLedger
from services.settings import Settings
from workflows.checkpointing import open_checkpointer
from workflows.context import ReviewRules, WorkflowContext
from workflows.dispatch import Maintenance, RetryPolicy, RunDriver
from workflows.dispute_workflow import build_graph
from workflows.escalation import EscalationPolicy, review_escalation_loop
from workflows.intake import DisputeIntake, IntakeSettings
from workflows.runner import WorkflowRunner
from workflows.worker import DisputeWorker, WorkerSettings

if TYPE_CHECKING:
    # chromadb takes ~2 s to import: only the modes that run disputes load it.
    from services.knowledge.chroma_store import ChromaPolicyStore

log = logging.getLogger("payments_agent")

# Procrastinate's own pool: job fetches, heart-beats and LISTEN, each brief.
JOB_POOL_SIZE = 4


@dataclass
class Core:
    """What every mode needs: settings, PostgreSQL, the run store and the run jobs."""

    settings: Settings
    database: Database
    store: WorkflowStore
    dataset: SandboxDataset
    jobs: RunJobs

    def backends(self) -> dict[str, str]:
        """The kind of each backend, as /health/backends reports it: never a URL, a path,
        a queue URL (it names the AWS account) or a credential."""
        s = self.settings
        return {
            "database": self.database.describe(),
            **s.backend_kinds(),
            "drafter": f"openai:{s.openai_model}" if s.openai_api_key else "rules",
            "knowledge": "chroma-server" if s.chroma_url else "chroma-embedded",
            "email": "smtp" if s.smtp_host else "log-only",
            "queue": "sqs"
            if s.sqs_queue_url
            else ("embedded" if not s.sqs_endpoint_url else "endpoint"),
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
    checkpointer: AsyncPostgresSaver


@contextlib.asynccontextmanager
async def open_core(settings: Settings) -> AsyncIterator[Core]:
    """Open PostgreSQL (embedded or POSTGRES_URL), migrate it, the run store and jobs.

    Pools follow WORKER_MAX_IN_FLIGHT (.env.example): SQLAlchemy in-flight + 4, the
    checkpointer in-flight + 2 (open_workflow), Procrastinate 4; none waits forever.
    """
    settings.check_backends()
    database = open_database(
        settings.postgres_url.get_secret_value() if settings.postgres_url else None,
        settings.data_dir,
    )
    await asyncio.to_thread(upgrade_schema, database.url)
    engine = create_engine(
        database,
        pool_size=settings.worker_max_in_flight + 2,
        max_overflow=2,
        pool_timeout=settings.db_pool_timeout_seconds,
    )
    app = job_app(database.url, pool_size=JOB_POOL_SIZE)
    try:
        async with app.open_async():
            jobs = RunJobs(app)
            store = WorkflowStore(engine, jobs=jobs)
            yield Core(settings, database, store, load_dataset(datetime.now(UTC)), jobs)
    finally:
        await engine.dispose()


def review_rules(settings: Settings) -> ReviewRules:
    """The auto-approval and dual-control thresholds in force."""
    return ReviewRules(
        auto_approve_max_amount=settings.auto_approve_max_amount,
        auto_approve_min_confidence=settings.auto_approve_min_confidence,
        max_disputes_90d=settings.max_disputes_90d,
        dual_approval_min_amount=settings.dual_approval_min_amount,
    )


@contextlib.asynccontextmanager
async def open_workflow(core: Core) -> AsyncIterator[Workflow]:
    """Build the adapters, the knowledge base, the drafter and the compiled graph."""
    from services.knowledge.chroma_store import open_policy_store

    settings = core.settings
    store = core.store
    async with httpx.AsyncClient(timeout=settings.integration_timeout_seconds) as http:
        sandbox = sandbox_backends(dataset=core.dataset, ledger=SandboxLedger(store.engine))
        integrations = build_integrations(settings, sandbox=sandbox, http_client=http)
        knowledge = await asyncio.to_thread(open_policy_store, settings)
        # Workers starting together on a shared Chroma server seed it once, not each.
        async with startup_lock(store.engine, SEED_LOCK):
            await seed_knowledge_if_empty(knowledge, settings)
        drafter = build_drafter(settings, engine=store.engine)
        notifier = build_notifier(settings, engine=store.engine)

        async def resolution_stored(dispute_type: str) -> None:
            await drafter.invalidate(dispute_type=dispute_type)

        try:
            async with open_checkpointer(
                core.database.url,
                max_size=settings.worker_max_in_flight + 2,
                timeout=settings.db_pool_timeout_seconds,
            ) as saver:
                context = WorkflowContext(
                    crm=integrations.crm,
                    billing=integrations.billing,
                    payments=integrations.payments,
                    knowledge=knowledge,
                    drafter=drafter,
                    notifier=notifier,
                    store=store,
                    review_rules=review_rules(settings),
                    dispute_window_days=settings.dispute_window_days,
                    retry=integrations.retry,
                    sandbox_systems=tuple(integrations.sandbox_systems()),
                    on_resolution_stored=resolution_stored,
                )
                runner = WorkflowRunner(
                    graph=build_graph(NODES, saver), context=context, store=store
                )
                yield Workflow(core, runner, integrations, knowledge, drafter, notifier, saver)
        finally:
            await integrations.aclose()


async def seed_knowledge_if_empty(knowledge: ChromaPolicyStore, settings: Settings) -> None:
    """A new installation starts with the shipped policies and historical resolutions."""
    from services.sandbox.resolutions import HISTORICAL_RESOLUTIONS

    counts = await knowledge.counts()
    if not counts.get("company_policies"):
        report = await knowledge.ingest_policies(directory=settings.policies_dir)
        log.info("ingested policies from %s: %s", settings.policies_dir, report)
    if not counts.get("dispute_resolutions"):
        seeded = await knowledge.add_resolutions(records=HISTORICAL_RESOLUTIONS)
        log.info("seeded %d historical resolutions", seeded)


def connect_queue(settings: Settings) -> DisputeQueue:
    """The dispute queue: SQS_QUEUE_URL, an endpoint, or the embedded one."""
    return open_queue(
        region=settings.aws_region,
        queue_url=settings.sqs_queue_url,
        endpoint_url=settings.sqs_endpoint_url,
        queue_name=settings.sqs_queue_name,
        max_receive_count=settings.sqs_max_receive_count,
        visibility=settings.worker_visibility_timeout_seconds,
        embedded_port=settings.embedded_sqs_port,
    )


def run_driver(workflow: Workflow) -> RunDriver:
    """The run driver over the compiled graph, with the retry policy in force."""
    s = workflow.core.settings
    return RunDriver(
        runner=workflow.runner,
        store=workflow.core.store,
        jobs=workflow.core.jobs,
        retry=RetryPolicy(
            max_attempts=s.run_max_attempts,
            base_seconds=s.run_retry_base_seconds,
            max_seconds=s.run_retry_max_seconds,
        ),
    )


def make_worker(workflow: Workflow, queue: DisputeQueue | None) -> DisputeWorker:
    """The worker: SQS intake (when `queue` is given), run jobs and maintenance."""
    s = workflow.core.settings
    driver = run_driver(workflow)
    intake = None
    if queue is not None:
        intake = DisputeIntake(
            queue=queue,
            store=workflow.core.store,
            jobs=workflow.core.jobs,
            settings=IntakeSettings(
                visibility_timeout=s.worker_visibility_timeout_seconds,
                wait_time=s.worker_wait_time_seconds,
            ),
        )
    retention = timedelta(days=s.checkpoint_retention_days) if s.checkpoint_retention_days else None
    return DisputeWorker(
        intake=intake,
        driver=driver,
        settings=WorkerSettings(
            concurrency=s.worker_max_in_flight,
            heartbeat_seconds=s.worker_heartbeat_seconds,
            stalled_worker_seconds=s.worker_stalled_after_seconds,
            maintenance=Maintenance(
                reconcile_interval=s.run_reconcile_interval_seconds,
                stalled_after_seconds=s.worker_stalled_after_seconds,
                retention=retention,
            ),
        ),
        prune=workflow.checkpointer.adelete_thread,
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
    """The API and dashboard as a uvicorn server (served by the caller's event loop)."""
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
    """Set `stop` on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
