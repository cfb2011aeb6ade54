"""OpenTelemetry: a run is one trace, across every drive of it, with a span per step
executed and a span per external call under the step that made it."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from models.domain import ReviewDecision
from services.retry import RetryPolicy
from services.settings import Settings
from services.tracing import configure_tracing
from tests.fakes.services import NOW, outage
from tests.integration.conftest import Harness

# OpenTelemetry's provider is global to the process: one exporter for this module's tests.
EXPORTER = InMemorySpanExporter()


@pytest.fixture
def provider() -> TracerProvider:
    configured = configure_tracing(Settings(_env_file=None), exporter=EXPORTER)  # type: ignore[call-arg]
    assert isinstance(configured, TracerProvider)
    EXPORTER.clear()
    return configured


async def no_sleep(seconds: float) -> None:
    return None


def finished(provider: TracerProvider) -> list[ReadableSpan]:
    provider.force_flush()
    return sorted(EXPORTER.get_finished_spans(), key=lambda s: s.start_time or 0)


def approval() -> ReviewDecision:
    return ReviewDecision(
        decision="approved", reviewer="alice", decided_at=datetime.now(NOW.tzinfo), version=1
    )


async def test_a_run_is_one_trace_with_a_span_per_step_and_per_external_call(
    harness: Harness, provider: TracerProvider
) -> None:
    h = harness.with_context(retry=RetryPolicy(max_attempts=2, sleep=no_sleep))
    started = await h.runner.start(case_id="500A")
    assert started.status == "pending"
    # The CRM is down when the case is to be updated: that step fails after its retries.
    h.crm.fail_outcomes_with = outage("crm")
    paused = await h.runner.resume(run_id=started.run_id, decision=approval())
    assert paused.retryable and paused.current_step == "update_case"
    h.crm.fail_outcomes_with = None
    done = await h.runner.continue_run(started.run_id)
    assert done.status == "completed"

    recorded = finished(provider)
    assert {s.context.trace_id for s in recorded} == {UUID(started.run_id).int}
    drives = [s for s in recorded if s.name == "run"]
    assert len(drives) == 3  # start, resume, continue
    drive_ids = {s.context.span_id for s in drives}
    steps = [s for s in recorded if s.parent is not None and s.parent.span_id in drive_ids]
    assert [s.name for s in steps] == [
        "fetch_data",
        "validate_dispute",
        "generate_resolution",
        "route_review",
        "send_human_review",
        "wait_human_review",  # interrupted: waits for the decision
        "wait_human_review",
        "move_money",
        "update_case",  # failed: the CRM was down
        "update_case",
        "store_results",
    ]
    assert steps[5].attributes is not None and steps[5].attributes["langgraph.interrupted"]
    assert steps[8].status.status_code.name == "ERROR"
    assert steps[9].status.status_code.name == "UNSET"

    by_id = {s.context.span_id: s for s in steps}
    calls = [s for s in recorded if s.parent is not None and s.parent.span_id in by_id]
    assert calls, "no external call spans"
    under = {(by_id[s.parent.span_id].name, s.name) for s in calls if s.parent is not None}
    assert {
        ("fetch_data", "crm.case"),
        ("fetch_data", "crm.account"),
        ("fetch_data", "payments.charges"),
        ("move_money", "payments.refund"),
        ("update_case", "crm.record_outcome"),
    } <= under
    # Every span is a drive, a step or an external call: nothing dangles elsewhere.
    assert len(drives) + len(steps) + len(calls) == len(recorded)
    failed_call = next(
        s for s in calls if s.name == "crm.record_outcome" and s.status.status_code.name == "ERROR"
    )
    assert [e.name for e in failed_call.events if e.name == "retry"] == ["retry"]


def test_tracing_is_off_without_an_endpoint() -> None:
    settings = Settings(_env_file=None, otel_exporter_otlp_endpoint=None)  # type: ignore[call-arg]
    assert configure_tracing(settings) is None
