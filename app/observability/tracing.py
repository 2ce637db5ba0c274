"""OpenTelemetry tracing shared by web and worker.

Configured through the standard OTEL_* variables. Call setup_tracing() after fork
(gunicorn post_fork, Celery worker_process_init): a provider created in a parent process
would be locked in there and the spans it buffers would be lost.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from app.settings import Settings, SettingsError

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

_configured_pid: int | None = None
# A parent that forks the processes doing the work (the Celery main process) builds the
# app, but must not own a provider: its children install their own after fork.
_deferred_pid: int | None = None
_instrumented: set[str] = set()

# OTEL_EXPORTER_OTLP_TIMEOUT is read in *seconds* by the Python exporter (the spec says
# milliseconds). Its default of 10 s would hold a worker's shutdown that long for each
# batch when the collector is dead or mute, so without an explicit setting we use 3 s:
# long enough for a healthy collector on a busy machine, short enough for a quick exit.
DEFAULT_EXPORT_TIMEOUT_S = 3.0
# After a failed export, batches are dropped without calling the collector for this long:
# a dead collector then costs nothing, and a flush at shutdown does not wait per batch.
RETRY_AFTER_S = 5.0


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
        "instance": span.resource.attributes.get("service.instance.id"),
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
    """Wrap an exporter so that an unreachable collector is logged once, not per batch.

    While the collector fails, batches are dropped at once for retry_after_s seconds
    before the next attempt, so a dead or silent collector neither busies the export
    thread nor makes a flush at shutdown wait once per batch.
    """

    def __init__(
        self, inner: SpanExporter, target: str, retry_after_s: float = RETRY_AFTER_S
    ) -> None:
        """Wrap inner, naming target in the messages."""
        self.inner = inner
        self.target = target
        self.retry_after_s = retry_after_s
        self.failing = False
        self.dropped = 0
        self._next_attempt = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export; log the first failure and the recovery, drop the spans meanwhile."""
        if self.failing and time.monotonic() < self._next_attempt:
            self.dropped += len(spans)
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception:  # the exporter must never take the process down
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.FAILURE:
            self.dropped += len(spans)
            self._next_attempt = time.monotonic() + self.retry_after_s
            if not self.failing:
                self.failing = True
                log.warning(
                    "trace export to %s failing; spans are dropped until it recovers", self.target
                )
        elif self.failing:
            self.failing = False
            log.info("trace export to %s recovered (%d spans dropped)", self.target, self.dropped)
            self.dropped = 0
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)


# Requests that are not traced unless OTEL_PYTHON_FLASK_EXCLUDED_URLS (or the generic
# OTEL_PYTHON_EXCLUDED_URLS) says otherwise: Prometheus scrapes and health probes. Compose
# and orchestrators probe every few seconds; traced, they would bury the user's requests
# in Jaeger and cost a span each (docs/benchmarks.md). The fault switchboard's route is an
# operator's action, not traffic; traced, a blind incident's switches would show its window.
# Regular expressions, comma-separated as OpenTelemetry defines the variable, searched in the
# request's path.
DEFAULT_EXCLUDED_URLS = "/metrics$,/healthz$,/readyz$,/admin/faults$"


def excluded_urls() -> str:
    """The requests left untraced: comma-separated regular expressions.

    A pattern that is not a regular expression stops the process with one line naming
    the variable (SettingsError), not a traceback from the instrumentation.
    """
    for name in ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"):
        value = os.environ.get(name, "").strip()
        if value:
            for pattern in value.split(","):
                try:
                    re.compile(pattern.strip())
                except re.error as exc:
                    raise SettingsError(
                        f"{name}: {pattern.strip()!r} is not a regular expression ({exc})"
                    ) from None
            return value
    return DEFAULT_EXCLUDED_URLS


def otlp_endpoint() -> str:
    """The configured OTLP endpoint, or an empty string."""
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or ""
    ).strip()


class _OncePerProcess(logging.Filter):
    """Let the first record of a kind through in each process, drop the repeats.

    The SDK's batch processor warns "Queue full, dropping span." for every dropped span:
    with the collector down that would be a log line per span.
    """

    def __init__(self, prefix: str) -> None:
        """Filter records whose message starts with prefix."""
        super().__init__()
        self.prefix = prefix
        self._seen_pid: int | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        """True for the first matching record of this process and for all other records."""
        if not str(record.msg).startswith(self.prefix):
            return True
        if self._seen_pid == os.getpid():
            return False
        self._seen_pid = os.getpid()
        return True


def _quiet_exporter_logs() -> None:
    """Leave the reporting of a failing collector to OnceLoggingExporter."""
    # The exporter logs every failed batch (and every retry) at ERROR.
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
    queue_logger = logging.getLogger("opentelemetry.sdk._shared_internal")
    if not any(isinstance(f, _OncePerProcess) for f in queue_logger.filters):
        queue_logger.addFilter(_OncePerProcess("Queue full"))


def _otlp_exporter(endpoint: str) -> SpanExporter:
    """The OTLP/HTTP exporter, with a bounded timeout, wrapped to report failure once."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    configured = any(
        os.environ.get(name, "").strip()
        for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    )
    # When set, the exporter reads the variable itself (in seconds).
    timeout = None if configured else DEFAULT_EXPORT_TIMEOUT_S
    _quiet_exporter_logs()
    return OnceLoggingExporter(OTLPSpanExporter(timeout=timeout), endpoint)


def defer_tracing_until_fork() -> None:
    """Mark this process as a parent that forks the real workers (the Celery main process).

    setup_tracing() called here afterwards instruments libraries (their tracers resolve
    the provider lazily) but installs no provider; each child installs its own after fork,
    under its own service name.
    """
    global _deferred_pid
    _deferred_pid = os.getpid()


def setup_tracing(settings: Settings, default_service: str) -> bool:
    """Install this process's TracerProvider once; True when tracing is on."""
    global _configured_pid
    if not settings.tracing_enabled:
        return False
    if _configured_pid == os.getpid():
        return True
    if _deferred_pid == os.getpid():
        _instrument_libraries()
        return True
    service = os.environ.get("OTEL_SERVICE_NAME", "").strip() or default_service
    # service.instance.id names the replica, as the logs' `instance` field and Prometheus do.
    provider = TracerProvider(resource=Resource.create({
        "service.name": service, "service.instance.id": settings.instance_id(default_service)}))
    endpoint = otlp_endpoint()
    exporter: SpanExporter
    if endpoint:
        exporter = _otlp_exporter(endpoint)
    else:
        path = settings.trace_file or str(settings.layout.span_file)
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


def instrument_flask(app: Flask) -> None:
    """One SERVER span per request, named after the Flask route, except excluded paths.

    OpenTelemetry's WSGI middleware makes the span; a before_request hook names it after
    the matched route ("GET /api/todos/<todo_id>") and sets http.route. The Flask
    instrumentation package gives the same span but collects the request attributes
    twice, sets them twice and rebuilds the full URL three times per request: twice the
    CPU for the server span (bench/findings.md). Register before any other hook, so that
    the span is current in all of them.
    """
    from flask import request
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    from opentelemetry.util.http import parse_excluded_urls

    excluded = parse_excluded_urls(excluded_urls())
    plain = app.wsgi_app
    traced = OpenTelemetryMiddleware(plain)

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if excluded.url_disabled(path):
            return plain(environ, start_response)
        return traced(environ, start_response)

    app.wsgi_app = wsgi_app  # type: ignore[method-assign]

    @app.before_request
    def _name_span_after_route() -> None:
        rule = request.url_rule
        if rule is None:  # no route matched (404, 405): the span keeps "METHOD /path"
            return
        span = trace.get_current_span()
        if span.is_recording():
            span.update_name(f"{request.method} {rule.rule}")
            span.set_attribute("http.route", rule.rule)


def instrument_engine(engine: Any) -> None:
    """Trace SQL through SQLAlchemy (the only DB instrumentor, so no duplicate spans): one
    span per statement, and none for taking a connection from the pool."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.instrumentation.utils import unwrap
    from sqlalchemy.engine import Engine

    # The instrumentor declares "sqlalchemy < 2.1" and otherwise silently instruments
    # nothing (no DB spans at all). The engine events it uses are unchanged in 2.1, and
    # tests/test_tracing.py proves the spans, so the version check is skipped.
    SQLAlchemyInstrumentor().instrument(
        engine=engine, enable_commenter=False, skip_dep_check=True
    )
    # The instrumentor also wraps Engine.connect in a `connect` span: a pool checkout and
    # its pre-ping, in every request that touches the database. It was one span in three
    # on GET / and one in four on POST /api/todos, and a large share of tracing's CPU
    # (docs/benchmarks.md, change 13). Not kept: the checkout's time stays in the trace as
    # the request span's own time before its first statement. The statement spans (the
    # engine's events) are unchanged; unwrap does nothing when the wrapper is not there.
    unwrap(Engine, "connect")


def flush_tracing(timeout_ms: int = 5000) -> None:
    """Flush buffered spans (at worker or child shutdown), waiting at most timeout_ms."""
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is None:
        return
    # The SDK's force_flush ignores its timeout and exports batch after batch: run it on
    # a daemon thread so that a slow collector cannot hold a shutdown past timeout_ms.
    flusher = threading.Thread(target=flush, args=(timeout_ms,), name="trace-flush", daemon=True)
    flusher.start()
    flusher.join(timeout_ms / 1000)


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
