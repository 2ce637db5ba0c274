"""The Jaeger stand-in of `make test-docker` (a fake) and the notebooks' wait for a trace.

Spans go to the fake the way the app sends them (OpenTelemetry's OTLP/HTTP exporter) and come
back through the query API the notebooks read; a trace asked for before its batch arrived
(Jaeger answers 404 then) is waited for, not an error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from analysis.lab_context import LabContext
from tests.support.jaeger_fake import FakeJaeger
from tests.support.processes import free_port


@pytest.fixture
def jaeger() -> Iterator[FakeJaeger]:
    """The fake on three free loopback ports."""
    fake = FakeJaeger("127.0.0.1", (free_port(), free_port(), free_port()))
    yield fake.start()
    fake.stop()


def export_one_span(jaeger: FakeJaeger, service: str = "todo-web") -> str:
    """One SERVER span exported by the SDK's OTLP/HTTP exporter; returns its trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{jaeger.ports[0]}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("GET /api/todos",
                                                           kind=SpanKind.SERVER) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    return trace_id


def context(jaeger: FakeJaeger, tmp_path: Path) -> LabContext:
    """The notebooks' view of a lab whose traces are in this Jaeger."""
    return LabContext.from_env({"JAEGER_URL": f"http://127.0.0.1:{jaeger.ports[1]}",
                                "LAB_VAR_DIR": str(tmp_path)})


def test_the_fake_answers_the_query_api_with_what_the_exporter_sent(
    jaeger: FakeJaeger, tmp_path: Path,
) -> None:
    """Exported over OTLP/HTTP, read back as the notebooks read Jaeger: same span."""
    trace_id = export_one_span(jaeger)
    [span] = context(jaeger, tmp_path).trace(trace_id, wait_s=5)
    assert (span.trace_id, span.name, span.service, span.kind, span.parent_id) == \
        (trace_id, "GET /api/todos", "todo-web", "SERVER", None)
    assert span.end_ns >= span.start_ns > 0
    health = requests.get(f"http://127.0.0.1:{jaeger.ports[2]}/", timeout=5)
    assert health.status_code == 200
    unknown = requests.get(f"http://127.0.0.1:{jaeger.ports[1]}/api/traces/{'0' * 31}1", timeout=5)
    assert unknown.status_code == 404


def test_a_trace_not_exported_yet_is_waited_for(jaeger: FakeJaeger, tmp_path: Path) -> None:
    """Jaeger's 404 before the batch arrives means "not yet": trace() waits for the span."""
    trace_id = export_one_span(jaeger)
    held = jaeger.trace(trace_id)
    jaeger.traces.clear()  # as if the exporter's batch had not arrived yet
    query = f"http://127.0.0.1:{jaeger.ports[1]}/api/traces/{trace_id}"
    assert requests.get(query, timeout=5).status_code == 404
    arrives = threading.Timer(1.5, lambda: jaeger.traces[trace_id].extend(held))
    arrives.start()
    spans = context(jaeger, tmp_path).trace(trace_id, wait_s=30)
    arrives.join()
    assert [s.span_id for s in spans] == [s.span_id for s in held] and len(held) == 1
