"""OpenTelemetry tracing: one trace per run, a span per step and one per external call.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (`configure_tracing`); until then every span
below is OpenTelemetry's no-op and costs next to nothing. Spans go to the OTLP/HTTP
endpoint in batches.

A run's trace id is its run id (the UUID's 128 bits), so every drive of a run (its start,
the resume after a decision, a retry on another worker) lands in one trace, found by the
run id without its dashes. Each drive is a `run` span under a parent that is never
exported (the run itself); each graph step a span under it (`traced_step`, entered by the
node's wrapper, which also records the step's metrics); each external call made through
the retry policy (services/retry.py) a span under its step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from services.metrics import observe_step

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from pydantic import SecretStr

log = logging.getLogger(__name__)

TRACER_NAME = "payments_agent"


class TracingSettings(Protocol):
    """What tracing reads of `Settings` (retry.py, below settings, imports this module)."""

    @property
    def otel_exporter_otlp_endpoint(self) -> str | None: ...
    @property
    def otel_exporter_otlp_headers(self) -> SecretStr | None: ...
    @property
    def otel_service_name(self) -> str: ...


_provider: list[TracerProvider] = []


def configure_tracing(
    settings: TracingSettings, *, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Export spans to OTEL_EXPORTER_OTLP_ENDPOINT (or to `exporter`); None when off.

    Once per process: OpenTelemetry's tracer provider is global. A second call returns the
    provider of the first.
    """
    endpoint = settings.otel_exporter_otlp_endpoint
    if exporter is None and not endpoint:
        return None
    if _provider:
        return _provider[0]
    # The SDK is loaded only when tracing is on.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert endpoint is not None
        headers = settings.otel_exporter_otlp_headers
        exporter = OTLPSpanExporter(
            endpoint=_traces_url(endpoint),
            headers=_parse_headers(headers.get_secret_value()) if headers else None,
        )
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider.append(provider)
    if endpoint:
        log.info("tracing to %s", _traces_url(endpoint).split("?", 1)[0])
    return provider


def _traces_url(endpoint: str) -> str:
    # The OTLP/HTTP convention: the base endpoint takes the signal's path.
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def _parse_headers(value: str) -> dict[str, str]:
    """`key=value,key=value` (OTEL_EXPORTER_OTLP_HEADERS' format)."""
    pairs = (part.split("=", 1) for part in value.split(",") if "=" in part)
    return {key.strip(): val.strip() for key, val in pairs}


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def run_trace_context(run_id: str) -> otel_context.Context:
    """The context whose spans belong to the run's trace (trace id = the run id)."""
    value = UUID(run_id).int
    parent = SpanContext(
        trace_id=value,
        span_id=(value & 0xFFFF_FFFF_FFFF_FFFF) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


class StepTrace:
    """What a traced step returned, for its metrics (the LLM calls its update carries)."""

    update: Any = None


@contextmanager
def traced_step(node: str, *, step: int | None = None) -> Iterator[StepTrace]:
    """A span and the metrics (services/metrics.py) of one graph step.

    Entered by the node's wrapper (workflows/dispute_workflow.py) inside the drive's `run`
    span, so the step's span is the current one while it runs and the external calls it
    makes are its children. An interrupt (`GraphBubbleUp`) is the step waiting for a
    decision, not an error.
    """
    from langgraph.errors import GraphBubbleUp  # loaded with the graph already

    attributes: dict[str, str | int] = {"langgraph.node": node}
    if step is not None:
        attributes["langgraph.step"] = step
    started = time.monotonic()
    outcome = "ok"
    result = StepTrace()
    with tracer().start_as_current_span(
        node, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield result
        except GraphBubbleUp:
            outcome = "interrupted"
            span.set_attribute("langgraph.interrupted", True)
            raise
        except BaseException as error:
            outcome = "error"
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
        finally:
            observe_step(node, time.monotonic() - started, outcome=outcome, update=result.update)


@contextmanager
def traced_run(run_id: str) -> Iterator[trace.Span]:
    """A `run` span for one drive of the run, current while it lasts: the graph's steps
    (`traced_step`) run in tasks that copy this context, so their spans are its children."""
    with tracer().start_as_current_span(
        "run", context=run_trace_context(run_id), attributes={"payments_agent.run_id": run_id}
    ) as span:
        yield span


@contextmanager
def external_call(operation: str) -> Iterator[trace.Span]:
    """A span for one external call (all its attempts), under the current step."""
    with tracer().start_as_current_span(
        operation, kind=trace.SpanKind.CLIENT, attributes={"payments_agent.operation": operation}
    ) as span:
        yield span


def note_retry(attempt: int, delay: float, reason: str) -> None:
    """Mark a failed attempt of the current external call, retried after `delay` s."""
    trace.get_current_span().add_event(
        "retry", {"attempt": attempt, "delay_seconds": round(delay, 3), "reason": reason[:200]}
    )


__all__ = [
    "StepTrace",
    "configure_tracing",
    "external_call",
    "note_retry",
    "run_trace_context",
    "traced_run",
    "traced_step",
    "tracer",
]
