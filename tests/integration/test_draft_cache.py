"""The draft cache in PostgreSQL: reuse across drafters at zero cost, TTL, invalidation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from models.domain import PrecedentHit
from models.tables import draft_cache
from services.drafting.draft_cache import DraftCache, cache_key
from services.drafting.guarded import GuardedDrafter, build_drafter
from services.drafting.prompt import PROMPT_VERSION
from services.sandbox.data import load_dataset
from services.settings import Settings
from tests.fakes.openai_server import FakeOpenAIServer, Reply, running_server
from tests.integration.test_openai_drafter import Sleeps, answer
from tests.unit.test_rules_drafter import SANDBOX_NOW, sandbox_context


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with running_server(lambda request: Reply(content=answer("full_refund", 29.0))) as fake:
        yield fake


def drafter(
    server: FakeOpenAIServer, engine: AsyncEngine, clock: Clock, **overrides: Any
) -> GuardedDrafter:
    settings = Settings(
        _env_file=None,
        openai_api_key="sk-test-not-a-real-key",
        openai_base_url=server.base_url,
        draft_cache_ttl_hours=overrides.pop("ttl_hours", 24.0),
        **overrides,
    )
    return build_drafter(settings, engine=engine, clock=clock, sleep=Sleeps())


async def rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(draft_cache))).scalar_one())


async def test_a_draft_is_reused_by_another_drafter_at_zero_cost(
    server: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    clock = Clock()
    first = await drafter(server, engine, clock).draft(context=sandbox_context(1042, run_id="a"))
    assert first.calls[0].cost_usd > 0 and not first.calls[0].cache_hit

    # Another drafter, as in another worker process, for another run of the same case.
    second = await drafter(server, engine, clock).draft(context=sandbox_context(1042, run_id="b"))
    assert len(server.requests) == 1
    assert second.proposal == first.proposal
    [call] = second.calls
    assert call.cache_hit and call.cost_usd == Decimal("0") and call.outcome == "cache_hit"
    assert (call.input_tokens, call.output_tokens) == (0, 0)


async def test_the_key_survives_a_rebuilt_sandbox_but_not_changed_inputs() -> None:
    context = sandbox_context(1042)
    later = sandbox_context(1042, data=load_dataset(SANDBOX_NOW + timedelta(days=3)))
    key = cache_key(context, drafter="openai:gpt-4o-mini", prompt_version=PROMPT_VERSION)
    assert cache_key(later, drafter="openai:gpt-4o-mini", prompt_version=PROMPT_VERSION) == key
    precedent = PrecedentHit(
        case_id="500PAST",
        dispute_type="duplicate_charge",
        amount=Decimal("29.00"),
        customer_segment="standard",
        outcome="full_refund",
        text="Charged twice; refunded the duplicate.",
        score=0.8,
    )
    changed = context.model_copy(update={"precedents": [precedent]})
    assert cache_key(changed, drafter="openai:gpt-4o-mini", prompt_version=PROMPT_VERSION) != key
    rescored = changed.model_copy(
        update={"precedents": [precedent.model_copy(update={"score": 0.5})]}
    )
    assert cache_key(
        rescored, drafter="openai:gpt-4o-mini", prompt_version=PROMPT_VERSION
    ) == cache_key(changed, drafter="openai:gpt-4o-mini", prompt_version=PROMPT_VERSION)
    assert cache_key(context, drafter="openai:gpt-4.1", prompt_version=PROMPT_VERSION) != key


async def test_a_new_resolution_of_the_type_invalidates_its_drafts(
    server: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    clock = Clock()
    guarded = drafter(server, engine, clock)
    await guarded.draft(context=sandbox_context(1042))  # duplicate_charge
    server.responder = lambda request: Reply(content=answer("partial_refund", 60.0))
    await guarded.draft(context=sandbox_context(1050))  # incorrect_amount
    assert await rows(engine) == 2

    assert await guarded.invalidate(dispute_type="duplicate_charge") == 1
    assert await rows(engine) == 1

    server.responder = lambda request: Reply(content=answer("full_refund", 29.0))
    again = await guarded.draft(context=sandbox_context(1042))
    assert not again.calls[0].cache_hit and len(server.requests) == 3
    kept = await drafter(server, engine, clock).draft(context=sandbox_context(1050))
    assert kept.calls[0].cache_hit  # another type's draft is untouched


async def test_the_workflow_hook_invalidates(server: FakeOpenAIServer, engine: AsyncEngine) -> None:
    clock = Clock()
    await drafter(server, engine, clock).draft(context=sandbox_context(1042))
    cache = DraftCache(engine, ttl=timedelta(hours=24), clock=clock)
    await cache.on_resolution_stored("duplicate_charge")
    assert await rows(engine) == 0


async def test_drafts_expire_after_the_ttl(server: FakeOpenAIServer, engine: AsyncEngine) -> None:
    clock = Clock()
    await drafter(server, engine, clock, ttl_hours=2).draft(context=sandbox_context(1042))
    clock.now += timedelta(hours=1)
    hit = await drafter(server, engine, clock, ttl_hours=2).draft(context=sandbox_context(1042))
    assert hit.calls[0].cache_hit
    clock.now += timedelta(hours=1, seconds=1)
    miss = await drafter(server, engine, clock, ttl_hours=2).draft(context=sandbox_context(1042))
    assert not miss.calls[0].cache_hit and len(server.requests) == 2
    assert await rows(engine) == 1  # the expired row was replaced, not kept beside


async def test_expired_drafts_are_swept_at_most_every_few_minutes(
    server: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    clock = Clock()
    cache = DraftCache(engine, ttl=timedelta(hours=1), clock=clock)
    drafted = drafter(server, engine, clock, ttl_hours=1)  # stores its draft: the first sweep
    proposal = (await drafted.draft(context=sandbox_context(1042))).proposal
    await cache.put("a", case_id="1", dispute_type="duplicate_charge", proposal=proposal)
    assert await rows(engine) == 2
    clock.now += timedelta(hours=2)  # everything so far has expired
    await cache.put("b", case_id="2", dispute_type="duplicate_charge", proposal=proposal)
    assert await rows(engine) == 1  # swept: only "b" is left
    clock.now += timedelta(hours=2)  # "b" expires
    await cache.put("c", case_id="3", dispute_type="duplicate_charge", proposal=proposal)
    assert await rows(engine) == 1  # swept again: only "c"
    short = DraftCache(engine, ttl=timedelta(minutes=1), clock=clock)
    await short.put("x", case_id="4", dispute_type="duplicate_charge", proposal=proposal)
    clock.now += timedelta(minutes=2)  # "x" expires; its cache swept two minutes ago
    await short.put("y", case_id="5", dispute_type="duplicate_charge", proposal=proposal)
    assert await rows(engine) == 3  # "c", "y" and the expired "x": no sweep yet
    assert await short.get("x") is None  # an expired row is never read
    clock.now += DraftCache.SWEEP_EVERY
    await short.put("z", case_id="6", dispute_type="duplicate_charge", proposal=proposal)
    assert await rows(engine) == 2  # "c" (an hour's TTL) and "z"
    assert await cache.get("c") == proposal


async def test_a_ttl_of_zero_disables_the_cache(
    server: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    clock = Clock()
    for _ in range(2):
        await drafter(server, engine, clock, ttl_hours=0).draft(context=sandbox_context(1042))
    assert len(server.requests) == 2 and await rows(engine) == 0


async def test_fallbacks_are_not_cached(server: FakeOpenAIServer, engine: AsyncEngine) -> None:
    clock = Clock()
    server.responder = lambda request: Reply(content=answer("full_refund", 10000.0))
    first = await drafter(server, engine, clock).draft(context=sandbox_context(1042))
    assert first.proposal.fallback_used and await rows(engine) == 0
    server.responder = lambda request: Reply(content=answer("full_refund", 29.0))
    second = await drafter(server, engine, clock).draft(context=sandbox_context(1042))
    assert not second.proposal.fallback_used and not second.calls[0].cache_hit


async def test_a_cached_draft_out_of_bounds_now_is_dropped(
    server: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    clock = Clock()
    context = sandbox_context(1042)
    cache = DraftCache(engine, ttl=timedelta(hours=24), clock=clock)
    key = cache_key(context, drafter="openai:gpt-4o-mini", prompt_version=PROMPT_VERSION)
    honest = (await drafter(server, engine, clock).draft(context=context)).proposal
    # A row tampered with, or written under older rules: 10,000 on a 29.00 charge.
    await cache.put(
        key,
        case_id=context.case.case_id,
        dispute_type=context.case.dispute_type,
        proposal=honest.model_copy(update={"amount": Decimal("10000")}),
    )
    result = await drafter(server, engine, clock).draft(context=context)
    assert result.proposal.amount == Decimal("29.00")
    assert not result.calls[0].cache_hit and len(server.requests) == 2
