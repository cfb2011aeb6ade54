"""Reviewer workload and SLA, computed in PostgreSQL: what waits, for how long, who decides
how fast, and how often the draft stands.

- Waiting is measured from the run's creation, as the reminders and the escalation
  measure it (workflows/escalation.py); a review is overdue past REVIEW_ESCALATION_HOURS.
- Time to decision runs from the review request: for the first round, when the run's
  `send_human_review` step completed (its audit line); for a later round (dual control),
  when the previous round's decision was applied.
- The auto-approval rate is over the runs that reached a review plan (a valid dispute with
  a draft): how many the system approved itself.
- The override rate is over the runs a person decided: how many had a decision that
  rejected the draft or approved a modified resolution. By dispute type and by drafter.

`review_metrics` is the whole picture (GET /workflow/review-metrics, the dashboard);
`pending_reviews` and `runs_by_status` are the cheap parts /metrics reads at every scrape.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

_PENDING = text(
    """
    SELECT count(*) AS pending,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY age) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY age) AS p95,
           max(age) AS oldest,
           count(*) FILTER (WHERE age > :overdue_after) AS overdue
    FROM (SELECT extract(epoch FROM CAST(:now AS timestamptz) - created_at) AS age
          FROM workflow_states WHERE status = 'pending') AS waiting
    """
)

_BY_STATUS = text("SELECT status, count(*) AS runs FROM workflow_states GROUP BY status")

_TIME_TO_DECISION = text(
    """
    SELECT d.reviewer, d.reviewer_id, count(*) AS decisions,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY greatest(extract(epoch FROM d.decided_at - requested.at), 0)) AS p50
    FROM review_decisions d
    CROSS JOIN LATERAL (
        SELECT COALESCE(
            (SELECT COALESCE(p.applied_at, p.decided_at) FROM review_decisions p
              WHERE p.run_id = d.run_id AND p.round = d.round - 1),
            (SELECT min(a.created_at) FROM audit_events a
              WHERE a.run_id = d.run_id AND a.step = 'send_human_review'
                AND a.event = 'step_completed'),
            (SELECT w.created_at FROM workflow_states w WHERE w.run_id = d.run_id)
        ) AS at
    ) AS requested
    WHERE CAST(:since AS timestamptz) IS NULL OR d.decided_at >= :since
    GROUP BY d.reviewer, d.reviewer_id
    ORDER BY d.reviewer, d.reviewer_id
    """
)

_AUTO_APPROVAL = text(
    """
    SELECT count(*) AS planned,
           count(*) FILTER (
               WHERE (human_review_data->'plan'->>'auto_approve')::boolean) AS auto_approved
    FROM workflow_states
    WHERE jsonb_typeof(human_review_data->'plan'->'auto_approve') = 'boolean'
      AND (CAST(:since AS timestamptz) IS NULL OR created_at >= :since)
    """
)

_OVERRIDES = text(
    """
    WITH reviewed AS (
        SELECT w.run_id,
               COALESCE(w.crm_data->'case'->>'dispute_type', 'unknown') AS dispute_type,
               COALESCE(w.resolution_proposal->>'drafter', 'unknown') AS drafter,
               -- An unmodified approval stores JSON null (not SQL NULL) as its modification.
               bool_or(d.decision = 'rejected'
                       OR jsonb_typeof(d.modified_resolution) = 'object') AS overridden
        FROM workflow_states w
        JOIN review_decisions d ON d.run_id = w.run_id
        WHERE CAST(:since AS timestamptz) IS NULL OR d.decided_at >= :since
        GROUP BY w.run_id, 2, 3
    )
    SELECT 'all' AS dimension, 'all' AS key, count(*) AS reviewed,
           count(*) FILTER (WHERE overridden) AS overridden
    FROM reviewed
    UNION ALL
    SELECT 'dispute_type', dispute_type, count(*), count(*) FILTER (WHERE overridden)
    FROM reviewed GROUP BY dispute_type
    UNION ALL
    SELECT 'drafter', drafter, count(*), count(*) FILTER (WHERE overridden)
    FROM reviewed GROUP BY drafter
    ORDER BY 1, 2
    """
)


class PendingReviews(BaseModel):
    """Runs awaiting a reviewer now, and how long they have waited (seconds)."""

    count: int
    age_seconds_p50: float | None = None
    age_seconds_p95: float | None = None
    oldest_age_seconds: float | None = None
    overdue: int = Field(description="Waiting longer than REVIEW_ESCALATION_HOURS.")
    overdue_after_hours: float


class ReviewerTiming(BaseModel):
    reviewer: str
    reviewer_id: int | None = None
    decisions: int
    time_to_decision_seconds_p50: float


class AutoApproval(BaseModel):
    planned: int = Field(description="Runs that reached a review plan.")
    auto_approved: int
    rate: float | None = Field(description="auto_approved / planned; null when none.")


class OverrideRate(BaseModel):
    key: str = Field(description="The dispute type or the drafter; `all` overall.")
    reviewed: int = Field(description="Runs with at least one reviewer decision.")
    overridden: int = Field(description="Of those, runs whose draft was rejected or modified.")
    rate: float | None


class Overrides(BaseModel):
    overall: OverrideRate
    by_dispute_type: list[OverrideRate]
    by_drafter: list[OverrideRate]


class ReviewMetrics(BaseModel):
    """Reviewer workload and SLA (services/persistence/review_metrics.py)."""

    as_of: datetime
    since: datetime | None = Field(
        description="Decisions, plans and overrides counted from here; null: all time."
    )
    pending: PendingReviews
    time_to_decision: list[ReviewerTiming]
    auto_approval: AutoApproval
    overrides: Overrides


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(value: Any) -> float | None:
    return round(float(value), 3) if value is not None else None


async def _pending(conn: AsyncConnection, *, now: datetime, overdue_after: timedelta) -> Any:
    params = {"now": now, "overdue_after": overdue_after.total_seconds()}
    return (await conn.execute(_PENDING, params)).one()


async def pending_reviews(
    engine: AsyncEngine, *, now: datetime, escalation_hours: float
) -> PendingReviews:
    """The pending count, its age (p50, p95, oldest) and how many are overdue."""
    async with engine.connect() as conn:
        row = await _pending(conn, now=now, overdue_after=timedelta(hours=escalation_hours))
    return _pending_model(row, escalation_hours)


def _pending_model(row: Any, escalation_hours: float) -> PendingReviews:
    return PendingReviews(
        count=int(row.pending),
        age_seconds_p50=_seconds(row.p50),
        age_seconds_p95=_seconds(row.p95),
        oldest_age_seconds=_seconds(row.oldest),
        overdue=int(row.overdue),
        overdue_after_hours=escalation_hours,
    )


async def runs_by_status(engine: AsyncEngine) -> dict[str, int]:
    """How many runs are in each status."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_BY_STATUS)).all()
    return {str(row.status): int(row.runs) for row in rows}


async def review_metrics(
    engine: AsyncEngine,
    *,
    now: datetime,
    escalation_hours: float,
    since: datetime | None = None,
) -> ReviewMetrics:
    """Reviewer workload and SLA as of `now`; decisions and plans counted from `since`."""
    window = {"since": since}
    async with engine.connect() as conn:
        pending = await _pending(conn, now=now, overdue_after=timedelta(hours=escalation_hours))
        timings = (await conn.execute(_TIME_TO_DECISION, window)).all()
        auto = (await conn.execute(_AUTO_APPROVAL, window)).one()
        overrides = (await conn.execute(_OVERRIDES, window)).all()
    rates: dict[str, list[OverrideRate]] = {"all": [], "dispute_type": [], "drafter": []}
    for row in overrides:
        rates[row.dimension].append(
            OverrideRate(
                key=row.key,
                reviewed=int(row.reviewed),
                overridden=int(row.overridden),
                rate=_rate(int(row.overridden), int(row.reviewed)),
            )
        )
    return ReviewMetrics(
        as_of=now,
        since=since,
        pending=_pending_model(pending, escalation_hours),
        time_to_decision=[
            ReviewerTiming(
                reviewer=row.reviewer,
                reviewer_id=row.reviewer_id,
                decisions=int(row.decisions),
                time_to_decision_seconds_p50=round(float(row.p50), 3),
            )
            for row in timings
        ],
        auto_approval=AutoApproval(
            planned=int(auto.planned),
            auto_approved=int(auto.auto_approved),
            rate=_rate(int(auto.auto_approved), int(auto.planned)),
        ),
        overrides=Overrides(
            overall=rates["all"][0],
            by_dispute_type=rates["dispute_type"],
            by_drafter=rates["drafter"],
        ),
    )


__all__ = [
    "AutoApproval",
    "OverrideRate",
    "Overrides",
    "PendingReviews",
    "ReviewMetrics",
    "ReviewerTiming",
    "pending_reviews",
    "review_metrics",
    "runs_by_status",
]
