"""The composition root: settings → adapters → checkpointer → graph, for every mode.

Nothing here runs at import; each `open_*` opens what a mode needs and closes it after.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import uvicorn
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from agents import NODES
from services.drafting.guarded import GuardedDrafter, build_drafter
from services.integrations.backends import Integrations, build_integrations
from services.metrics import serve_metrics, sqs_depth_probe, watch_queue
from services.persistence.database import (
    SEED_LOCK,
    Database,
    DatabaseUnavailableError,
    check_connection,
    create_engine,
    describe_location,
    open_database,
    startup_lock,
    upgrade_schema,
)
from services.persistence.jobs import RunJobs, job_app
from services.persistence.policy_versions import PolicyVersionStore
from services.persistence.store import WorkflowStore
from services.queue import DisputeQueue, QueueSender, open_queue, sqs_client
from services.review.notifications import EmailNotifier, build_notifier
from services.sandbox.backends import sandbox_backends
from services.sandbox.data import load_dataset
from services.sandbox.dataset import SandboxDataset
from services.sandbox.ledger import SandboxLedger
from services.settings import Settings, StartupError
from services.tracing import configure_tracing
from workflows.checkpointing import open_checkpointer
from workflows.context import ReviewRules, WorkflowContext
from workflows.dispatch import Maintenance, RetryPolicy, RunDriver
from workflows.dispute_workflow import build_graph
from workflows.escalation import EscalationPolicy, review_escalation_loop
from workflows.intake import DisputeIntake, IntakeSettings
from workflows.runner import WorkflowRunner
from workflows.worker import DisputeWorker, WorkerSettings

if TYPE_CHECKING:
    from api.deps import StripeWebhook

    # chromadb takes ~2 s to import: only the modes that run disputes load it.
    from services.knowledge.chroma_store import ChromaPolicyStore

log = logging.getLogger("payments_agent")

# Procrastinate's own pool: job fetches, heart-beats and LISTEN, each brief.
JOB_POOL_SIZE = 4
# The start-up check of the drafter waits at most this long (or OPENAI_TIMEOUT_SECONDS).
DRAFTER_CHECK_SECONDS = 5.0
# How long an external POSTGRES_URL may take to accept the first connection.
DATABASE_CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class DrafterStatus:
    """The drafter in use and whether it answered the start-up check. `problem` says why
    not, for the operator's console (it names settings, never a URL or a key)."""

    name: str
    reachable: bool
    problem: str | None = None

    def describe(self) -> str:
        if self.name == "rules":
            return "rules (offline)"
        if self.reachable:
            return f"{self.name} (reachable)"
        return f"{self.name} (UNREACHABLE: {self.problem})"


@dataclass
class Core:
    """What every mode needs: settings, PostgreSQL, the run store and the run jobs, and
    the drafter's start-up check."""

    settings: Settings
    database: Database
    store: WorkflowStore
    dataset: SandboxDataset
    jobs: RunJobs
    drafter_status: DrafterStatus = field(default_factory=lambda: DrafterStatus("rules", True))

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
    configure_tracing(settings)  # off unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    # Checked alongside the database's start-up; a failing drafter is a warning, not a stop.
    drafter_check = asyncio.create_task(check_drafter(settings))
    try:
        database = await asyncio.to_thread(open_checked_database, settings)
        await asyncio.to_thread(upgrade_schema, database.url)
        drafter_status = await drafter_check
    finally:
        drafter_check.cancel()
    if not drafter_status.reachable:
        log.warning(
            "drafter %s is not reachable: %s; drafts fall back to the rules drafter "
            "(flagged) until it is fixed",
            drafter_status.name,
            drafter_status.problem,
        )
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
            yield Core(
                settings, database, store, load_dataset(datetime.now(UTC)), jobs, drafter_status
            )
    finally:
        await engine.dispose()


def open_checked_database(settings: Settings) -> Database:
    """PostgreSQL at POSTGRES_URL, answering, or the embedded one; StartupError if not."""
    url = settings.postgres_url.get_secret_value() if settings.postgres_url else None
    if url:
        if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise StartupError(
                "POSTGRES_URL must be a postgresql:// URL "
                "(postgresql://USER:PASSWORD@HOST:5432/DATABASE), or unset for the embedded one"
            )
        try:
            check_connection(url, timeout=DATABASE_CHECK_SECONDS)
        except DatabaseUnavailableError as exc:
            raise StartupError(
                f"{exc}; start that server or correct POSTGRES_URL (unset, the embedded "
                "PostgreSQL is used)"
            ) from None
    return open_database(url, settings.data_dir)


async def check_drafter(settings: Settings) -> DrafterStatus:
    """One cheap authenticated call (GET /models) with the drafter's key and endpoint."""
    if settings.openai_api_key is None:
        return DrafterStatus("rules", True)
    import openai

    name = f"openai:{settings.openai_model}"
    timeout = min(DRAFTER_CHECK_SECONDS, settings.openai_timeout_seconds)
    client = openai.AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=timeout,
        max_retries=0,
    )
    endpoint = "OPENAI_BASE_URL" if settings.openai_base_url else "the OpenAI API"
    try:
        await client.models.list()
    except openai.AuthenticationError:
        return DrafterStatus(name, False, "OPENAI_API_KEY was refused (401)")
    except openai.APITimeoutError:
        return DrafterStatus(name, False, f"{endpoint} did not answer within {timeout:.0f} s")
    except openai.APIConnectionError:
        return DrafterStatus(name, False, f"cannot connect to {endpoint}")
    except openai.APIStatusError as exc:
        return DrafterStatus(name, False, f"{endpoint} answered HTTP {exc.status_code}")
    finally:
        await client.close()
    return DrafterStatus(name, True)


def describe_database(database: Database) -> str:
    """`embedded PostgreSQL (<its data directory>)` or `PostgreSQL at host:port/db`."""
    if database.embedded is not None:
        return f"embedded PostgreSQL ({database.embedded.pgdata})"
    return f"PostgreSQL at {describe_location(database.url)}"


def describe_setup(settings: Settings) -> str:
    """What a mode runs on, from the settings: database, queue, backends, drafter."""
    url = settings.postgres_url.get_secret_value() if settings.postgres_url else None
    database = (
        f"PostgreSQL at {describe_location(url)} (POSTGRES_URL)"
        if url
        else f"embedded PostgreSQL ({settings.data_dir}/postgres)"
    )
    if settings.sqs_queue_url:
        queue = "the SQS queue SQS_QUEUE_URL"
    elif settings.sqs_endpoint_url:
        queue = "the SQS endpoint SQS_ENDPOINT_URL"
    else:
        queue = f"embedded SQS on 127.0.0.1:{settings.embedded_sqs_port or 'any free port'}"
    kinds = settings.backend_kinds()
    backends = (
        "sandbox backends"
        if set(kinds.values()) == {"sandbox"}
        else ", ".join(f"{system} {kind}" for system, kind in kinds.items())
    )
    drafter = (
        f"drafter openai:{settings.openai_model}"
        if settings.openai_api_key
        else "the offline rules drafter"
    )
    return f"{database}, {queue}, {backends}, {drafter}"


def listen_socket(host: str, port: int, setting: str) -> socket.socket:
    """A socket bound to host:port, or StartupError naming the setting to change."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc}; check {setting}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use: stop the process listening on it, "
                f"or set {setting} to a free port"
            ) from None
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror}; check {setting}"
        ) from None
    return sock


def check_queue_port(settings: Settings) -> None:
    """The embedded SQS endpoint's port is free (a second worker or demo would hang on it)."""
    if settings.sqs_queue_url or settings.sqs_endpoint_url or not settings.embedded_sqs_port:
        return
    try:
        listen_socket("127.0.0.1", settings.embedded_sqs_port, "EMBEDDED_SQS_PORT").close()
    except StartupError:
        raise StartupError(
            f"port {settings.embedded_sqs_port} of the embedded SQS endpoint is already in "
            "use (a worker or the demo already running?): stop it, set EMBEDDED_SQS_PORT to "
            "a free port, or set SQS_QUEUE_URL"
        ) from None


def review_rules(settings: Settings) -> ReviewRules:
    """The auto-approval and dual-control thresholds in force."""
    return ReviewRules(
        auto_approve_max_amount=settings.auto_approve_max_amount,
        auto_approve_min_confidence=settings.auto_approve_min_confidence,
        max_disputes_90d=settings.max_disputes_90d,
        dual_approval_min_amount=settings.dual_approval_min_amount,
        fraud_warning_auto_refund_max=settings.fraud_warning_auto_refund_max_amount,
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
            # Every section version in the store, kept for audit (idempotent).
            await PolicyVersionStore(store.engine).record(await knowledge.policy_sections())
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
                    disputes=integrations.disputes,
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
    queue = open_queue(
        region=settings.aws_region,
        queue_url=settings.sqs_queue_url,
        endpoint_url=settings.sqs_endpoint_url,
        queue_name=settings.sqs_queue_name,
        max_receive_count=settings.sqs_max_receive_count,
        visibility=settings.worker_visibility_timeout_seconds,
        embedded_port=settings.embedded_sqs_port,
    )
    watch_queue(sqs_depth_probe(queue.client, queue.url))  # its depths in /metrics
    return queue


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
    if s.metrics_port is not None:
        serve_metrics(s.metrics_port, host=s.api_host)
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


def api_socket(settings: Settings) -> socket.socket:
    """The API's listening socket, bound before start-up so a taken port fails at once."""
    return listen_socket(settings.api_host, settings.api_port, "API_PORT")


def stripe_webhook(settings: Settings) -> StripeWebhook | None:
    from api.deps import StripeWebhook

    """POST /webhooks/stripe, when STRIPE_WEBHOOK_SECRET is set: events to the queue."""
    if settings.stripe_webhook_secret is None:
        return None
    sender = QueueSender(
        region=settings.aws_region,
        queue_url=settings.sqs_queue_url,
        endpoint_url=settings.sqs_endpoint_url,
        queue_name=settings.sqs_queue_name,
        embedded_port=settings.embedded_sqs_port,
    )
    return StripeWebhook(settings.stripe_webhook_secret.get_secret_value(), sender.send)


def api_server(core: Core) -> uvicorn.Server:
    """The API and dashboard as a uvicorn server (served by the caller's event loop, on the
    socket of `api_socket`: `server.serve(sockets=[sock])`)."""
    # The API's modules load only in the modes that serve it: a worker starts without them.
    from api.app import create_app
    from api.deps import build_api_services
    from api.routes.runs import ESCALATION_HOURS

    services = build_api_services(core.settings, store=core.store, backends=core.backends())
    services.stripe_webhook = stripe_webhook(core.settings)
    services.drafter_reachable = core.drafter_status.reachable
    services.extras[ESCALATION_HOURS] = core.settings.review_escalation_hours
    if core.settings.sqs_queue_url:  # the queue's depths in /metrics, read from SQS
        region, endpoint = core.settings.aws_region, core.settings.sqs_endpoint_url
        client = sqs_client(region=region, endpoint_url=endpoint)
        watch_queue(sqs_depth_probe(client, core.settings.sqs_queue_url))
    app = create_app(services)
    config = uvicorn.Config(
        app,
        host=core.settings.api_host,
        port=core.settings.api_port,
        log_level="warning",
        lifespan="off",
    )
    return uvicorn.Server(config)


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGINT or SIGTERM, for an orderly stop; a second signal ends the
    process at once. Modes call it once started (app.py cancels a start-up)."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: int) -> None:
        if stop.is_set():
            print("Second signal: stopping at once.", file=sys.stderr, flush=True)
            os._exit(128 + sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
