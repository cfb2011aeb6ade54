"""Reviewer workload and SLA, on seeded runs, decisions and audit lines whose times are known:
pending age and overdue reviews, time to decision per reviewer, the auto-approval rate and
the override rate by dispute type and by drafter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.deps import ApiServices
from api.routes.runs import ESCALATION_HOURS
from models.tables import audit_events, review_decisions, workflow_states
from services.persistence.review_metrics import review_metrics
from services.persistence.store import WorkflowStore
from services.review.reviewers import ReviewerKeys

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
OPENAI = "openai:gpt-4o-mini"
RULES = "[offline rules drafter]"
MODIFIED = {"action": "partial_refund", "amount": "45.00", "reason": "prorated"}


def hours(n: float) -> datetime:
    return T - timedelta(hours=n)


async def seed_run(
    engine: AsyncEngine,
    name: str,
    *,
    status: str,
    created: float,
    dispute_type: str = "duplicate_charge",
    drafter: str = OPENAI,
    auto: bool = False,
    review_sent: float | None = None,
    decisions: tuple[dict[str, Any], ...] = (),
) -> str:
    run_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(
            workflow_states.insert().values(
                run_id=run_id,
                case_id=f"500-{name}",
                status=status,
                created_at=hours(created),
                crm_data={"case": {"dispute_type": dispute_type}},
                resolution_proposal={
                    "action": "full_refund",
                    "amount": "99.00",
                    "drafter": drafter,
                },
                human_review_data={"plan": {"auto_approve": auto, "risk_flags": []}},
            )
        )
        if review_sent is not None:
            await conn.execute(
                audit_events.insert().values(
                    run_id=run_id,
                    step="send_human_review",
                    actor="system",
                    event="step_completed",
                    created_at=hours(review_sent),
                )
            )
        for round_, d in enumerate(decisions, start=1):
            await conn.execute(
                review_decisions.insert().values(
                    run_id=run_id,
                    round=round_,
                    decision=d.get("decision", "approved"),
                    reviewer=d["reviewer"],
                    channel="api",
                    modified_resolution=d.get("modified"),
                    decided_at=hours(d["at"]),
                    applied_at=hours(d["applied"]) if "applied" in d else None,
                )
            )
    return run_id


@pytest.fixture
async def seeded(engine: AsyncEngine) -> AsyncEngine:
    # Waiting now: 1 h, 3 h and 50 h (overdue past 48 h).
    for name, created in (("P1", 1), ("P2", 3), ("P3", 50)):
        await seed_run(engine, name, status="pending", created=created)
    # Auto-approved by the system.
    await seed_run(engine, "A1", status="completed", created=2, auto=True)
    # Approved as drafted, 1 h after the review was sent.
    await seed_run(
        engine,
        "R1",
        status="completed",
        created=11,
        review_sent=10,
        decisions=({"reviewer": "alice", "at": 9},),
    )
    # Modified by the reviewer (an override), 2 h after the review was sent.
    await seed_run(
        engine,
        "R2",
        status="completed",
        created=9,
        drafter=RULES,
        review_sent=8,
        decisions=({"reviewer": "bob", "at": 6, "modified": MODIFIED},),
    )
    # Rejected (an override); no audit line: waiting counts from the run's creation.
    await seed_run(
        engine,
        "R3",
        status="completed",
        created=5,
        dispute_type="service_outage",
        decisions=({"reviewer": "alice", "at": 4, "decision": "rejected"},),
    )
    # Dual control: alice 30 min after the request, bob 30 min after hers was applied.
    await seed_run(
        engine,
        "R4",
        status="completed",
        created=4,
        dispute_type="unrecognized_charge",
        review_sent=3.5,
        decisions=(
            {"reviewer": "alice", "at": 3, "applied": 2.9},
            {"reviewer": "bob", "at": 2.4},
        ),
    )
    return engine


async def test_workload_sla_and_override_rates(seeded: AsyncEngine) -> None:
    metrics = await review_metrics(seeded, now=T, escalation_hours=48)

    pending = metrics.pending
    assert (pending.count, pending.overdue, pending.overdue_after_hours) == (3, 1, 48)
    assert pending.age_seconds_p50 == 3 * 3600
    # percentile_cont: 10 800 + 0.9 * (180 000 - 10 800)
    assert pending.age_seconds_p95 == pytest.approx(163_080)
    assert pending.oldest_age_seconds == 50 * 3600

    timings = {
        t.reviewer: (t.decisions, t.time_to_decision_seconds_p50) for t in metrics.time_to_decision
    }
    assert timings == {"alice": (3, 3600.0), "bob": (2, 4500.0)}

    auto = metrics.auto_approval
    assert (auto.planned, auto.auto_approved, auto.rate) == (8, 1, 0.125)

    overrides = metrics.overrides
    assert (overrides.overall.reviewed, overrides.overall.overridden) == (4, 2)
    assert overrides.overall.rate == 0.5
    assert {r.key: (r.reviewed, r.overridden, r.rate) for r in overrides.by_dispute_type} == {
        "duplicate_charge": (2, 1, 0.5),
        "service_outage": (1, 1, 1.0),
        "unrecognized_charge": (1, 0, 0.0),
    }
    assert {r.key: (r.reviewed, r.overridden, r.rate) for r in overrides.by_drafter} == {
        OPENAI: (3, 1, 0.3333),
        RULES: (1, 1, 1.0),
    }


async def test_since_counts_decisions_plans_and_overrides_from_then(seeded: AsyncEngine) -> None:
    metrics = await review_metrics(seeded, now=T, escalation_hours=48, since=hours(5))
    assert metrics.pending.count == 3  # what waits now, whenever it started
    timings = {
        t.reviewer: (t.decisions, t.time_to_decision_seconds_p50) for t in metrics.time_to_decision
    }
    assert timings == {"alice": (2, 2700.0), "bob": (1, 1800.0)}
    assert (metrics.auto_approval.planned, metrics.auto_approval.auto_approved) == (5, 1)
    overall = metrics.overrides.overall
    assert (overall.reviewed, overall.overridden) == (2, 1)


async def test_nothing_seeded_gives_zeros_not_errors(engine: AsyncEngine) -> None:
    metrics = await review_metrics(engine, now=T, escalation_hours=48)
    assert metrics.pending.count == 0 and metrics.pending.age_seconds_p50 is None
    assert metrics.time_to_decision == []
    assert metrics.auto_approval.rate is None
    assert metrics.overrides.overall.reviewed == 0 and metrics.overrides.overall.rate is None


@pytest.fixture
async def api(seeded: AsyncEngine) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    key = (await ReviewerKeys(seeded).create("alice")).key
    services = ApiServices(store=WorkflowStore(seeded), backends={"crm": "fake"}, clock=lambda: T)
    services.extras[ESCALATION_HOURS] = 2.0  # REVIEW_ESCALATION_HOURS=2
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, key


async def test_the_api_needs_a_key_and_uses_the_escalation_setting(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    client, key = api
    assert (await client.get("/workflow/review-metrics")).status_code == 401
    response = await client.get(
        "/workflow/review-metrics", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pending"]["overdue"] == 2  # 3 h and 50 h, past 2 h
    assert body["pending"]["overdue_after_hours"] == 2.0
    assert body["overrides"]["overall"]["rate"] == 0.5
    since = await client.get(
        "/workflow/review-metrics",
        params={"since": hours(5).isoformat()},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert since.json()["overrides"]["overall"]["reviewed"] == 2
