"""OpenTelemetry tracing shared by web and worker.

Configured through the standard OTEL_* variables. Call setup_tracing() after fork
(gunicorn post_fork, Celery worker_process_init): a provider created in a parent process
would be locked in there and the spans it buffers would be lost.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from app.settings import Settings

log = logging.getLogger(__name__)

_configured_pid: int | None = None
_instrumented: set[str] = set()


def _iso_ns(ns: int | None) -> str | None:
    """Nanoseconds since the epoch as an ISO-8601 UTC string."""
    if ns is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """The local span-file record of one span (one JSON object per line)."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": format(ctx.trace_id, "032x") if ctx else None,
        "span_id": format(ctx.span_id, "016x") if ctx else None,
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "service": span.resource.attributes.get("service.name"),
        "kind": span.kind.name,
        "start": _iso_ns(span.start_time),
        "end": _iso_ns(span.end_time),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
    }


class JsonLinesSpanExporter(SpanExporter):
    """Append spans as JSON lines to a local file, for offline correlation in notebooks."""

    def __init__(self, path: str | Path) -> None:
        """Write to path, creating its directory."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append one line per span in a single write (O_APPEND keeps processes apart)."""
        payload = "".join(json.dumps(span_to_dict(s), default=str) + "\n" for s in spans)
        try:
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(payload)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


class OnceLoggingExporter(SpanExporter):
    """Wrap an exporter so that an unreachable collector is logged once, not per batch."""

    def __init__(self, inner: SpanExporter, target: str) -> None:
        """Wrap inner, naming target in the messages."""
        self.inner = inner
        self.target = target
        self.failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export; log the first failure and the recovery, drop the spans meanwhile."""
        try:
            result = self.inner.export(spans)
        except Exception:  # the exporter must never take the process down
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.FAILURE and not self.failing:
            self.failing = True
            log.warning("trace export to %s failing; spans are dropped until it recovers", self.target)
        elif result is SpanExportResult.SUCCESS and self.failing:
            self.failing = False
            log.info("trace export to %s recovered", self.target)
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)


def otlp_endpoint() -> str:
    """The configured OTLP endpoint, or an empty string."""
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or ""
    ).strip()


def setup_tracing(settings: Settings, default_service: str) -> bool:
    """Install this process's TracerProvider once; True when tracing is on."""
    global _configured_pid
    if not settings.tracing_enabled:
        return False
    if _configured_pid == os.getpid():
        return True
    service = os.environ.get("OTEL_SERVICE_NAME", "").strip() or default_service
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    endpoint = otlp_endpoint()
    exporter: SpanExporter
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The exporter logs every failed batch; OnceLoggingExporter says it once instead.
        logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
        exporter = OnceLoggingExporter(OTLPSpanExporter(), endpoint)
    else:
        path = settings.trace_file or str(settings.var_dir / "log" / "spans.jsonl")
        exporter = JsonLinesSpanExporter(path)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured_pid = os.getpid()
    _instrument_libraries()
    return True


def _instrument_libraries() -> None:
    """Instrument the process-wide libraries once: Celery (both sides), Redis, requests."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    for name, instrumentor in (
        ("celery", CeleryInstrumentor()),
        ("redis", RedisInstrumentor()),
        ("requests", RequestsInstrumentor()),
    ):
        if name not in _instrumented and not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
        _instrumented.add(name)


def instrument_engine(engine: Any) -> None:
    """Trace SQL through SQLAlchemy (the only DB instrumentor, so no duplicate spans)."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine, enable_commenter=False)


def flush_tracing(timeout_ms: int = 5000) -> None:
    """Flush buffered spans (at worker or child shutdown)."""
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush(timeout_ms)


def traceparent_header() -> str | None:
    """The W3C traceparent of the current span, for the response header."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def current_trace_id() -> str | None:
    """The current trace id as Jaeger shows it (32 lowercase hex), if a span is active."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
