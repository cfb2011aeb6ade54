"""Prometheus metrics of this process, in one registry (`REGISTRY`).

Each process counts what it does: the worker its steps, LLM calls and retries; the API the
decisions it records. `/metrics` (api/routes/metrics.py) exposes the registry together
with what the database says at scrape time (runs by status, the pending age); a worker
started alone exposes its registry on METRICS_PORT (`serve_metrics`). Label values come
from fixed sets only (step names, statuses, decisions, channels): never an id, a URL or a
secret.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

STEP_SECONDS = Histogram(
    "payments_agent_step_duration_seconds",
    "Time a graph step took, by step and outcome (ok, error, interrupted).",
    ["step", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
LLM_CALLS = Counter(
    "payments_agent_llm_calls",
    "Drafting model calls, by outcome (ok, rejected, cache_hit, timeout, rate_limited, ...).",
    ["outcome"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "payments_agent_llm_tokens",
    "Drafting model tokens, by kind (input, cached, output).",
    ["kind"],
    registry=REGISTRY,
)
LLM_COST = Counter(
    "payments_agent_llm_cost_usd", "Drafting model cost in USD, as priced.", registry=REGISTRY
)
RUN_RETRIES = Counter(
    "payments_agent_run_retries",
    "Retryable step failures of runs, each scheduling another attempt or parking the run.",
    registry=REGISTRY,
)
DECISIONS = Counter(
    "payments_agent_review_decisions",
    "Reviewer decisions recorded, by decision and channel.",
    ["decision", "channel"],
    registry=REGISTRY,
)

# services/drafting: what a recorded call's `outcome` can be; `http_<status>` is `http_error`.
LLM_OUTCOMES = frozenset(
    {
        "ok",
        "rejected",
        "cache_hit",
        "invalid_output",
        "cut_off",
        "timeout",
        "connection_error",
        "rate_limited",
        "server_error",
        "error",
    }
)


def observe_step(step: str, seconds: float, *, outcome: str, update: Any) -> None:
    """Record one finished step: its duration and the LLM calls its update carries."""
    STEP_SECONDS.labels(step=step, outcome=outcome).observe(max(seconds, 0.0))
    if isinstance(update, Mapping):
        record_llm_calls(update.get("costs") or ())


def record_llm_calls(calls: Iterable[Mapping[str, Any]]) -> None:
    """Count recorded LLM calls (models.domain.LLMCall as JSON), their tokens and cost."""
    for call in calls:
        outcome = str(call.get("outcome") or "ok")
        if outcome not in LLM_OUTCOMES:
            outcome = "http_error" if outcome.startswith("http_") else "other"
        LLM_CALLS.labels(outcome=outcome).inc()
        for kind in ("input", "cached", "output"):
            LLM_TOKENS.labels(kind=kind).inc(int(call.get(f"{kind}_tokens") or 0))
        LLM_COST.inc(float(Decimal(str(call.get("cost_usd") or "0"))))


QueueProbe = Callable[[], Mapping[str, Mapping[str, int]]]


class QueueDepth:
    """The dispute queue and its dead-letter queue, read at scrape time when a process
    has a queue (`watch_queue`); nothing otherwise."""

    def __init__(self) -> None:
        self.probe: QueueProbe | None = None

    def collect(self) -> Iterator[Metric]:
        probe = self.probe
        if probe is None:
            return
        try:
            depths = probe()
        except (BotoCoreError, ClientError) as exc:  # an unreachable queue is not a failed scrape
            log.warning("queue depth unavailable: %s", type(exc).__name__)
            return
        family = GaugeMetricFamily(
            "payments_agent_queue_messages",
            "Messages in the dispute queue (main) and its dead-letter queue (dlq), by state: "
            "visible (waiting: the queue lag), in_flight, delayed.",
            labels=["queue", "state"],
        )
        for queue in ("main", "dlq"):
            for state in ("visible", "in_flight", "delayed"):
                if state in depths.get(queue, {}):
                    family.add_metric([queue, state], depths[queue][state])
        yield family


QUEUE_DEPTH = QueueDepth()
REGISTRY.register(QUEUE_DEPTH)

_SQS_ATTRIBUTES = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}


def sqs_depth_probe(client: Any, queue_url: str) -> QueueProbe:
    """A probe reading the depths of `queue_url` and of its RedrivePolicy's target."""
    dlq_url: list[str] = []

    def depths(url: str) -> dict[str, int]:
        attributes = client.get_queue_attributes(
            QueueUrl=url, AttributeNames=list(_SQS_ATTRIBUTES)
        )["Attributes"]
        return {state: int(attributes.get(name, 0)) for name, state in _SQS_ATTRIBUTES.items()}

    def probe() -> dict[str, dict[str, int]]:
        result = {"main": depths(queue_url)}
        if not dlq_url:
            policy = client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
            )["Attributes"].get("RedrivePolicy")
            if policy:
                name = str(json.loads(policy)["deadLetterTargetArn"]).rsplit(":", 1)[-1]
                dlq_url.append(str(client.get_queue_url(QueueName=name)["QueueUrl"]))
        if dlq_url:
            result["dlq"] = depths(dlq_url[0])
        return result

    return probe


def watch_queue(probe: QueueProbe | None) -> None:
    """Report this queue's depths at every scrape (None: stop reporting)."""
    QUEUE_DEPTH.probe = probe


class _Scrape:
    """The registry plus metric families computed for one scrape."""

    def __init__(self, registry: Collector, extra: Iterable[Metric]) -> None:
        self.registry = registry
        self.extra = list(extra)

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.extra


def scrape(extra: Iterable[Metric] = ()) -> Collector:
    """This process's registry with `extra` families (read from the database, say)."""
    return _Scrape(REGISTRY, extra)


_server_lock = threading.Lock()
_served_on: list[int] = []


def serve_metrics(port: int, *, host: str) -> None:
    """Expose this process's registry on http://host:port/ (once per process)."""
    with _server_lock:
        if _served_on:
            return
        start_http_server(port, addr=host, registry=REGISTRY)
        _served_on.append(port)
        log.info("metrics on http://%s:%s/metrics", host, port)


__all__ = [
    "DECISIONS",
    "LLM_CALLS",
    "LLM_COST",
    "LLM_TOKENS",
    "REGISTRY",
    "RUN_RETRIES",
    "STEP_SECONDS",
    "observe_step",
    "record_llm_calls",
    "scrape",
    "serve_metrics",
    "sqs_depth_probe",
    "watch_queue",
]
