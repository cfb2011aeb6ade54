"""Integration fixtures: the graph on real PostgreSQL checkpoints with fake adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from agents import NODES
from services.persistence.jobs import RunJobs, job_app
from services.persistence.store import WorkflowStore
from tests.fakes.services import (
    NOW,
    FakeBilling,
    FakeCRM,
    FakeDrafter,
    FakeKnowledge,
    FakeNotifications,
    FakePayments,
    FakeWorld,
)
from workflows.checkpointing import open_checkpointer
from workflows.context import ReviewRules, WorkflowContext
from workflows.dispatch import RetryPolicy, RunDriver
from workflows.dispute_workflow import build_graph
from workflows.runner import WorkflowRunner

# Fast retries for tests: a run gives up after 3 attempts, 10-20 ms apart.
TEST_RETRY = RetryPolicy(max_attempts=3, base_seconds=0.02, max_seconds=0.02)


class Harness:
    def __init__(self, runner: WorkflowRunner, world: FakeWorld) -> None:
        self.runner = runner
        self.world = world
        ctx = runner.context
        self.crm: FakeCRM = ctx.crm  # type: ignore[assignment]
        self.payments: FakePayments = ctx.payments  # type: ignore[assignment]
        self.billing: FakeBilling = ctx.billing  # type: ignore[assignment]
        self.notifier: FakeNotifications = ctx.notifier  # type: ignore[assignment]
        self.knowledge: FakeKnowledge = ctx.knowledge  # type: ignore[assignment]
        self.store = runner.store
        assert self.store.jobs is not None
        self.jobs: RunJobs = self.store.jobs
        self.driver = RunDriver(runner=runner, store=self.store, jobs=self.jobs, retry=TEST_RETRY)

    def with_context(self, **changes: object) -> Harness:
        runner = WorkflowRunner(
            graph=self.runner.graph,
            context=replace(self.runner.context, **changes),  # type: ignore[arg-type]
            store=self.store,
        )
        return Harness(runner, self.world)


@pytest.fixture
async def jobs(postgres_url: str) -> AsyncIterator[RunJobs]:
    """Run jobs on the test database (deferred, not executed: tests drive runs themselves)."""
    app = job_app(postgres_url, pool_size=2)
    async with app.open_async():
        yield RunJobs(app)


@pytest.fixture
async def harness(postgres_url: str, engine, jobs: RunJobs) -> AsyncIterator[Harness]:
    world = FakeWorld.default()
    store = WorkflowStore(engine, jobs=jobs)
    payments = FakePayments(world)
    context = WorkflowContext(
        crm=FakeCRM(world),
        billing=FakeBilling(world),
        payments=payments,
        disputes=payments,
        knowledge=FakeKnowledge(),
        drafter=FakeDrafter(),
        notifier=FakeNotifications(),
        store=store,
        review_rules=ReviewRules(),
        clock=lambda: NOW,
    )
    async with open_checkpointer(postgres_url, max_size=4) as saver:
        yield Harness(
            WorkflowRunner(graph=build_graph(NODES, saver), context=context, store=store), world
        )
