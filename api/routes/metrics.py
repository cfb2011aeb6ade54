"""GET /metrics: Prometheus metrics, without a key.

What the database says at scrape time (runs by status, pending reviews and their age),
with this process's own registry (services/metrics.py). Nothing here names a run, a case,
a reviewer, a URL or a secret: label values come from fixed sets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from api.deps import Services
from api.routes.runs import escalation_hours
from services.metrics import scrape
from services.persistence.review_metrics import PendingReviews, pending_reviews, runs_by_status

router = APIRouter(tags=["metrics"])

# The run statuses (docs/architecture.md, "The run lifecycle"); anything else is `other`.
RUN_STATUSES = (
    "running",
    "pending",
    "completed",
    "rejected",
    "failed",
    "needs_attention",
    "cancelled",
)


def database_families(counts: dict[str, int], pending: PendingReviews) -> Iterator[Metric]:
    """The gauges read from PostgreSQL for one scrape."""
    runs = GaugeMetricFamily(
        "payments_agent_runs", "Runs in each status, from the database.", labels=["status"]
    )
    other = sum(n for status, n in counts.items() if status not in RUN_STATUSES)
    for status in RUN_STATUSES:
        runs.add_metric([status], counts.get(status, 0))
    runs.add_metric(["other"], other)
    yield runs
    yield GaugeMetricFamily(
        "payments_agent_pending_reviews", "Runs awaiting a reviewer.", value=pending.count
    )
    age = GaugeMetricFamily(
        "payments_agent_pending_review_age_seconds",
        "How long pending reviews have waited since their run was created: p50, p95, max.",
        labels=["stat"],
    )
    for stat, value in (
        ("p50", pending.age_seconds_p50),
        ("p95", pending.age_seconds_p95),
        ("max", pending.oldest_age_seconds),
    ):
        age.add_metric([stat], value or 0.0)
    yield age
    yield GaugeMetricFamily(
        "payments_agent_pending_reviews_overdue",
        "Pending reviews waiting longer than REVIEW_ESCALATION_HOURS.",
        value=pending.overdue,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(services: Services) -> Response:
    """This process's metrics and the database's gauges, in Prometheus' text format."""
    engine = services.store.engine
    counts = await runs_by_status(engine)
    pending = await pending_reviews(
        engine, now=services.clock(), escalation_hours=escalation_hours(services)
    )
    # Off the event loop: the queue's depths (when this process has a queue) are read
    # from SQS by the registry's collector.
    body = await asyncio.to_thread(
        generate_latest, scrape(list(database_families(counts, pending)))
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
