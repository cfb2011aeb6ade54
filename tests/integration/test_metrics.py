"""GET /metrics: Prometheus' text format, read back with its own parser; the families an
operator graphs are there, move with a run, and name no run, case or URL."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from moto.server import ThreadedMotoServer
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.deps import ApiServices
from services.metrics import serve_metrics, sqs_depth_probe, watch_queue
from services.queue import ensure_queue, sqs_client
from services.review.reviewers import ReviewerKeys
from tests.fakes.services import outage
from tests.integration.conftest import Harness

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FAMILIES = {
    "payments_agent_runs",
    "payments_agent_pending_reviews",
    "payments_agent_pending_review_age_seconds",
    "payments_agent_pending_reviews_overdue",
    "payments_agent_step_duration_seconds",
    "payments_agent_llm_calls",
    "payments_agent_llm_tokens",
    "payments_agent_llm_cost_usd",
    "payments_agent_run_retries",
    "payments_agent_review_decisions",
}


def parse(text: str) -> tuple[set[str], Samples]:
    families = list(text_string_to_metric_families(text))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return {f.name for f in families}, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    key = (await ReviewerKeys(harness.store.engine).create("alice")).key
    # Three days on: a run pending now is past REVIEW_ESCALATION_HOURS (48 by default).
    app = create_app(
        ApiServices(
            store=harness.store,
            backends={"crm": "fake"},
            clock=lambda: datetime.now(UTC) + timedelta(days=3),
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client, key


async def scrape(client: httpx.AsyncClient) -> tuple[set[str], Samples, str]:
    response = await client.get("/metrics")  # no key: Prometheus scrapes it as it is
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    names, samples = parse(response.text)
    return names, samples, response.text


async def test_metrics_parse_and_move_with_a_run(
    api: tuple[httpx.AsyncClient, str], harness: Harness
) -> None:
    client, key = api
    _, before, _ = await scrape(client)

    started = await harness.runner.start(case_id="500A")
    assert started.status == "pending"
    names, pending, text = await scrape(client)
    assert names >= FAMILIES
    assert value(pending, "payments_agent_runs", status="pending") == 1
    assert value(pending, "payments_agent_pending_reviews") == 1
    assert value(pending, "payments_agent_pending_reviews_overdue") == 1
    assert value(pending, "payments_agent_pending_review_age_seconds", stat="max") >= 3 * 86400
    step = "payments_agent_step_duration_seconds_count"
    for name in ("fetch_data", "generate_resolution", "send_human_review"):
        assert moved(pending, before, step, step=name, outcome="ok") == 1, name
    assert moved(pending, before, step, step="wait_human_review", outcome="interrupted") == 1
    # The fake drafter's one call: 100 input and 20 output tokens, $0.000027.
    assert moved(pending, before, "payments_agent_llm_calls_total", outcome="ok") == 1
    assert moved(pending, before, "payments_agent_llm_tokens_total", kind="input") == 100
    assert moved(pending, before, "payments_agent_llm_tokens_total", kind="output") == 20
    assert moved(pending, before, "payments_agent_llm_cost_usd_total") == pytest.approx(0.000027)
    # Label values are fixed names: no run, case or customer id, no URL.
    for leak in (started.run_id, "500A", "001A", "http://"):
        assert leak not in text

    # A reviewer's decision by API; the run then fails retryably at the CRM update.
    decided = await client.post(
        "/human-review/decision",
        json={"run_id": started.run_id, "decision": "approved", "comments": "ok"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert decided.status_code == 202, decided.text
    harness.crm.fail_outcomes_with = outage("crm")
    await harness.driver.advance(started.run_id)
    _, after, _ = await scrape(client)
    decisions = "payments_agent_review_decisions_total"
    assert moved(after, before, decisions, decision="approved", channel="api") == 1
    assert moved(after, before, "payments_agent_run_retries_total") == 1
    assert moved(after, before, step, step="update_case", outcome="error") == 1
    assert value(after, "payments_agent_runs", status="pending") == 0
    assert value(after, "payments_agent_runs", status="running") == 1
    assert value(after, "payments_agent_pending_reviews") == 0


@pytest.fixture
def queue() -> Iterator[tuple[object, str, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = sqs_client(region="us-east-1", endpoint_url=f"http://{host}:{port}", embedded=True)
        name = f"disputes-{uuid.uuid4().hex[:8]}"
        url = ensure_queue(client, name=name, max_receive_count=3, visibility=10)
        dlq_url = str(client.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"])
        watch_queue(sqs_depth_probe(client, url))
        yield client, url, dlq_url
    finally:
        watch_queue(None)
        server.stop()


async def test_queue_and_dead_letter_depths_are_read_at_scrape_time(
    api: tuple[httpx.AsyncClient, str], queue: tuple[object, str, str]
) -> None:
    client, _ = api
    sqs, url, dlq_url = queue
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody="{}")  # type: ignore[attr-defined]
    sqs.send_message(QueueUrl=dlq_url, MessageBody="{}")  # type: ignore[attr-defined]
    names, samples, text = await scrape(client)
    assert "payments_agent_queue_messages" in names
    assert value(samples, "payments_agent_queue_messages", queue="main", state="visible") == 2
    assert value(samples, "payments_agent_queue_messages", queue="dlq", state="visible") == 1
    assert url not in text and "disputes-" not in text


def test_a_worker_exposes_its_registry_on_metrics_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve_metrics(port, host="127.0.0.1")
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    names, _ = parse(response.text)
    assert {"payments_agent_step_duration_seconds", "payments_agent_run_retries"} <= names
