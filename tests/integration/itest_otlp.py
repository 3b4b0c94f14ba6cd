"""Spans sent as an instrumented application sends them: the OpenTelemetry SDK's OTLP/HTTP
exporter (gzip), signed in, to the experiment MLflow's header names."""

from __future__ import annotations

from itest_hostile import basic
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SPAN_NS = 1_000_000
"""Each span's length when they are backdated: a millisecond."""


def export_spans(
    base_url: str,
    experiment_id: str,
    login: tuple[str, str],
    names: list[str],
    *,
    start_ns: int | None = None,
) -> tuple[SpanExportResult, str]:
    """One trace: `names[0]` the root, the rest its children; backdated to `start_ns` when
    given. Returns the export's result and MLflow's ID of the trace (`tr-` + its OTel ID)."""
    exporter = OTLPSpanExporter(
        endpoint=f"{base_url}/v1/traces",
        headers={"x-mlflow-experiment-id": experiment_id, "Authorization": basic(*login)},
        compression=Compression.Gzip,
        timeout=30,
    )
    recorded = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "itest"}))
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    tracer = provider.get_tracer("itest")
    ticks = (start_ns + i * SPAN_NS for i in range(2 * len(names))) if start_ns else None

    def at() -> int | None:
        """The next instant of the backdated trace; None: the SDK's clock."""
        return next(ticks) if ticks else None

    root = tracer.start_span(names[0], start_time=at())
    parent = trace.set_span_in_context(root)
    for name in names[1:]:
        tracer.start_span(name, context=parent, start_time=at()).end(end_time=at())
    root.end(end_time=at())
    trace_id = f"tr-{root.get_span_context().trace_id:032x}"
    result = exporter.export(recorded.get_finished_spans())
    exporter.shutdown()
    provider.shutdown()
    return result, trace_id
