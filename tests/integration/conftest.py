"""Integration fixtures: the graph on real PostgreSQL checkpoints with fake adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from agents import NODES
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
from workflows.dispute_workflow import build_graph
from workflows.runner import WorkflowRunner


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

    def with_context(self, **changes: object) -> Harness:
        runner = WorkflowRunner(
            graph=self.runner.graph,
            context=replace(self.runner.context, **changes),  # type: ignore[arg-type]
            store=self.store,
        )
        return Harness(runner, self.world)


@pytest.fixture
async def harness(postgres_url: str, engine) -> AsyncIterator[Harness]:
    world = FakeWorld.default()
    store = WorkflowStore(engine)
    context = WorkflowContext(
        crm=FakeCRM(world),
        billing=FakeBilling(world),
        payments=FakePayments(world),
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
