"""OpenTelemetry traces from the real web and worker, received by a fake OTLP/HTTP collector
that decodes the protobuf payload: one trace from request to finished export, ids equal
in headers, logs and spans, and no request harmed when the collector is down or mute."""

from __future__ import annotations

import json
import logging
import re
import statistics
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import psutil
import pytest
import requests
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from app.observability import names, tracing
from stack.databases import reserved_redis_db
from stack.launch import Running
from stack.processes import Proc
from tests.support.observed import access_lines, json_lines
from tests.support.otlp import (
    FakeOtlpReceiver,
    ReceivedSpan,
    SilentCollector,
    closed_port_endpoint,
)
from tests.support.plugin import StackFactory
from tests.support.processes import wait_until

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
FAILING = "trace export to "
SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"


# Tracing on, with a fast batch schedule so that spans arrive within a test's patience.
TRACED = {"TRACING_ENABLED": "true", "OTEL_BSP_SCHEDULE_DELAY": "200"}


def ids(traceparent: str) -> tuple[str, str]:
    """(trace_id, span_id) of a traceparent header."""
    match = TRACEPARENT.match(traceparent)
    assert match, traceparent
    return match.group(1), match.group(2)


@pytest.fixture(scope="module")
def collector() -> Iterator[FakeOtlpReceiver]:
    """The fake OTLP/HTTP collector the traced stack exports to."""
    receiver = FakeOtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def traced(
        pg_database_url: str, collector: FakeOtlpReceiver, stack_factory: StackFactory) -> Iterator[Running]:
    """gunicorn and a prefork worker exporting spans over OTLP/HTTP to the fake, on a Redis
    database of our own."""
    with reserved_redis_db() as broker, stack_factory({
            **TRACED, "DATABASE_URL": pg_database_url, "CELERY_BROKER_URL": broker,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}) as running:
        yield running


@pytest.mark.stack
def test_an_export_is_one_trace_from_the_request_to_the_finished_task(
        traced: Running, collector: FakeOtlpReceiver) -> None:
    response = requests.post(traced.web.url + "/export", timeout=10)
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    trace_id, server_span_id = ids(response.headers["traceparent"])
    wait_until(
        lambda: requests.get(f"{traced.web.url}/tasks/{task_id}", timeout=10).json()["state"]
        == "succeeded",
        60, "the export to succeed",
    )

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        return any(s.name == "run/exports.export_todos" for s in mine) and any(
            s.span_id == server_span_id for s in mine
        )

    collector.wait_for(complete)
    time.sleep(0.5)  # the worker's last DB spans follow its run span in the next batch
    spans = collector.trace(trace_id)
    by_id = {s.span_id: s for s in spans}

    server = by_id[server_span_id]
    assert (server.service, server.name, server.kind, server.parent_id) == (
        "todo-web", "POST /export", SERVER, ""
    )
    publish = [s for s in spans if s.name == "apply_async/exports.export_todos"]
    assert len(publish) == 1
    assert (publish[0].service, publish[0].kind, publish[0].parent_id) == (
        "todo-web", PRODUCER, server.span_id
    )
    run = [s for s in spans if s.name == "run/exports.export_todos"]
    assert len(run) == 1
    assert (run[0].service, run[0].kind, run[0].parent_id) == (
        "todo-worker", CONSUMER, publish[0].span_id
    )

    # SQL in both services, from exactly one instrumentor: one span per statement.
    db_spans = [s for s in spans if s.attributes.get("db.system") == "postgresql"]
    assert {s.scope for s in db_spans} == {SQLALCHEMY_SCOPE}
    assert not [s for s in spans if "psycopg" in s.scope]
    inserts = [s for s in db_spans if s.parent_id == server.span_id
               and str(s.attributes.get("db.statement")).startswith("INSERT INTO exports")]
    assert len(inserts) == 1
    assert [s for s in db_spans if s.service == "todo-worker" and s.parent_id == run[0].span_id]

    # The log lines of the request and of the task name the same ids, as Jaeger shows them.
    access = [r for r in access_lines(traced.web.output())
              if r[names.F_REQUEST_ID] == response.headers["X-Request-ID"]]
    assert len(access) == 1
    assert (access[0][names.F_TRACE_ID], access[0][names.F_SPAN_ID]) == (trace_id, server_span_id)
    task_lines = [r for r in json_lines(traced.worker.output()) if r.get("task_id") == task_id
                  and r[names.F_LOGGER] == names.TASK_LOGGER]
    assert task_lines
    for line in task_lines:
        assert (line[names.F_TRACE_ID], line[names.F_SPAN_ID]) == (trace_id, run[0].span_id)


@pytest.mark.stack
def test_every_traced_response_names_its_span_in_traceparent(
        traced: Running, collector: FakeOtlpReceiver) -> None:
    paths = ("/", "/healthz/background", "/api/todos", "/api/todos/999999", "/no-such-page")
    answers = [requests.get(traced.web.url + path, timeout=10) for path in paths]
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 404]
    keys = [ids(a.headers["traceparent"]) for a in answers]

    spans = collector.wait_for(
        lambda spans: set(keys) <= {(s.trace_id, s.span_id) for s in spans}
    )
    servers = {(s.trace_id, s.span_id): s for s in spans if s.kind == SERVER}
    assert set(keys) <= set(servers)
    assert all(servers[key].service == "todo-web" for key in keys)
    # Named after the Flask route, parameters as placeholders; no route: the path.
    assert [servers[key].name for key in keys] == [
        "GET /", "GET /healthz/background", "GET /api/todos", "GET /api/todos/<todo_id>",
        "GET /no-such-page"]
    assert [servers[key].attributes.get("http.route") for key in keys] == [
        "/", "/healthz/background", "/api/todos", "/api/todos/<todo_id>", None]
    assert [servers[key].attributes.get("http.status_code") for key in keys] == [
        200, 200, 200, 404, 404]


@pytest.mark.stack
def test_a_page_is_traced_as_its_request_and_its_one_statement(
        traced: Running, collector: FakeOtlpReceiver) -> None:
    """Taking a pooled connection makes no `connect` span (docs/benchmarks.md, change 13),
    and the count of todos rides on the page's query."""
    assert requests.post(traced.web.url + "/api/todos", json={"text": "traced"}, timeout=10).ok
    trace_id, span_id = ids(requests.get(traced.web.url + "/", timeout=10).headers["traceparent"])
    # The statement's span ends before the request's: once that has arrived, so has it.
    collector.wait_for(lambda spans: any(s.span_id == span_id for s in spans))
    spans = sorted(collector.trace(trace_id), key=lambda s: s.kind)
    assert [(s.kind, s.parent_id) for s in spans] == [(SERVER, ""), (CLIENT, span_id)], [
        s.name for s in spans]
    assert str(spans[1].attributes.get("db.statement")).startswith("SELECT")
    assert not [s for s in collector.snapshot() if s.name == "connect"]


@pytest.mark.stack
def test_an_incoming_traceparent_is_continued(traced: Running, collector: FakeOtlpReceiver) -> None:
    caller_trace, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    response = requests.get(traced.web.url + "/api/todos", timeout=10,
                            headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
    trace_id, span_id = ids(response.headers["traceparent"])
    assert trace_id == caller_trace and span_id != caller_span
    spans = collector.wait_for(lambda spans: any(s.span_id == span_id for s in spans))
    server = next(s for s in spans if s.span_id == span_id)
    assert server.parent_id == caller_span


@pytest.mark.stack
def test_scrapes_and_health_probes_make_no_spans(traced: Running, collector: FakeOtlpReceiver) -> None:
    for path in ("/metrics", "/healthz", "/readyz"):
        answer = requests.get(traced.web.url + path, timeout=10)
        assert answer.status_code == 200
        assert "traceparent" not in answer.headers, path
    # A traced request after them: once its span has arrived, theirs would have too.
    later = ids(requests.get(traced.web.url + "/api/todos", timeout=10).headers["traceparent"])
    spans = collector.wait_for(lambda spans: any(s.span_id == later[1] for s in spans))
    untraced = {"GET /metrics", "GET /healthz", "GET /readyz"}
    assert not [s for s in spans if s.name in untraced]
    assert not [s for s in collector.snapshot() if s.name in untraced]


def test_otlp_timeout_is_read_in_seconds_with_a_short_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    exporter = tracing._otlp_exporter("http://127.0.0.1:9")
    assert isinstance(exporter, tracing.OnceLoggingExporter)
    assert exporter.inner._client._timeout == tracing.DEFAULT_EXPORT_TIMEOUT_S  # type: ignore[attr-defined]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1.5")
    exporter = tracing._otlp_exporter("http://127.0.0.1:9")
    assert exporter.inner._client._timeout == 1.5  # type: ignore[attr-defined]


@pytest.mark.stack
def test_without_a_collector_spans_go_to_a_local_file(stack_factory: StackFactory) -> None:
    with stack_factory(TRACED, ("web",), workers=1, threads=2) as running:
        span_file = running.config.layout.span_file
        response = requests.get(running.web.url + "/api/todos", timeout=10)
        trace_id, span_id = ids(response.headers["traceparent"])

        def written() -> list[dict[str, Any]]:
            if not span_file.exists():
                return []
            return [json.loads(line) for line in span_file.read_text().splitlines()]

        wait_until(lambda: any(s["span_id"] == span_id for s in written()), 15,
                   "the span in the file")
    records = written()
    server = next(s for s in records if s["span_id"] == span_id)
    assert {"trace_id", "span_id", "parent_id", "name", "service", "start", "end",
            "attributes", "status"} <= set(server)
    assert (server["trace_id"], server["parent_id"], server["name"], server["service"]) == (
        trace_id, None, "GET /api/todos", "todo-web"
    )
    assert server["start"] <= server["end"] and server["start"].endswith("+00:00")
    children = [s for s in records if s["parent_id"] == span_id]
    assert children and all(s["trace_id"] == trace_id for s in children)


def latencies(base: str, n: int = 300) -> list[float]:
    """n sequential GET /api/todos on one connection; client-side milliseconds."""
    measured = []
    with requests.Session() as session:
        for _ in range(n):
            started = time.perf_counter()
            response = session.get(base + "/api/todos?per_page=5", timeout=30)
            measured.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
    return measured


def figure(label: str, ms: list[float]) -> str:
    """p50/p95/max of a latency sample, for the printed comparison."""
    q = statistics.quantiles(ms, n=100)
    return f"{label:>28}: p50 {q[49]:6.2f} ms  p95 {q[94]:6.2f} ms  max {max(ms):7.2f} ms"


def failing_warnings(output: str) -> dict[int, int]:
    """How many 'trace export ... failing' warnings each process logged."""
    counts: dict[int, int] = {}
    for record in json_lines(output):
        if str(record[names.F_MESSAGE]).startswith(FAILING):
            counts[record[names.F_PID]] = counts.get(record[names.F_PID], 0) + 1
    return counts


@pytest.mark.stack
def test_requests_never_suffer_from_a_dead_or_mute_collector(
        traced: Running, stack_factory: StackFactory) -> None:
    figures = [figure("collector up", latencies(traced.web.url))]
    mute = SilentCollector()
    try:
        for label, endpoint in (("collector down (closed port)", closed_port_endpoint()),
                                ("collector mute (never reads)", mute.endpoint)):
            with stack_factory({**TRACED, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, ("web",)) as degraded:
                web = degraded.web
                try:
                    figures.append(figure(label, latencies(web.url)))
                    # The workers that made spans (the start-up probe of /healthz makes none).
                    served = {r[names.F_PID] for r in access_lines(web.output())
                              if r[names.F_PATH] == "/api/todos"}

                    def reported(web: Proc = web, served: set[int] = served) -> bool:
                        return served <= set(failing_warnings(web.output()))

                    wait_until(reported, 20, "the failing export to be reported")
                    workers = {c.pid for c in psutil.Process(web.popen.pid).children()}
                finally:
                    stop_started = time.perf_counter()
                    web.stop()
                    stop_s = time.perf_counter() - stop_started
            figures.append(f"{'':>28}  gunicorn stopped in {stop_s:.2f} s after SIGTERM")
            output = web.output()
            counts = failing_warnings(output)
            # Reported once per process that tried to export, never per batch or per span.
            assert counts and set(counts) <= workers and set(counts.values()) == {1}, counts
            queue_full = [r for r in json_lines(output) if "Queue full" in r[names.F_MESSAGE]]
            assert len(queue_full) <= len(workers)
            assert "SIGKILL" not in output  # shutdown did not hang until gunicorn killed it
            assert web.popen.returncode == 0
    finally:
        mute.stop()
    print("\n" + "\n".join(figures))


@pytest.mark.stack
def test_the_worker_reports_a_dead_collector_once_and_still_runs_exports(
    pg_database_url: str, stack_factory: StackFactory
) -> None:
    dead = {**TRACED, "DATABASE_URL": pg_database_url, "OTEL_EXPORTER_OTLP_ENDPOINT": closed_port_endpoint()}
    with reserved_redis_db() as broker, \
            stack_factory({**dead, "CELERY_BROKER_URL": broker}, workers=1, threads=4) as running:
        base, worker = running.web.url, running.worker
        try:
            task_ids = [requests.post(base + "/export", timeout=10).json()["task_id"]
                        for _ in range(6)]
            wait_until(lambda: all(
                requests.get(f"{base}/tasks/{t}", timeout=10).json()["state"] == "succeeded"
                for t in task_ids), 60, "every export to succeed")
            wait_until(lambda: bool(failing_warnings(worker.output())), 20,
                       "the worker to report the failing export")
        finally:
            started = time.perf_counter()
            worker.stop()
            print(f"\nworker stopped in {time.perf_counter() - started:.2f} s with a dead "
                  "collector")
    counts = failing_warnings(worker.output())
    assert set(counts.values()) == {1}, counts
    assert worker.popen.pid not in counts  # the main process exports nothing: no provider


class _Refusing(SpanExporter):
    """A collector that is down: every export fails (after blocking, if asked to)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        return SpanExportResult.FAILURE


def test_a_full_span_queue_is_reported_once_not_per_span(caplog: pytest.LogCaptureFixture) -> None:
    # The SDK itself only drops *consecutive* repeats within a 20 s window: over an outage
    # of an hour, or with any other SDK message in between, "Queue full" comes back again
    # and again. Ours is said once per process.
    tracing._quiet_exporter_logs()
    gate = threading.Event()
    processor = BatchSpanProcessor(_Refusing(gate), max_queue_size=4, max_export_batch_size=4,
                                   schedule_delay_millis=60_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("story")
    sdk_log = logging.getLogger("opentelemetry.sdk._shared_internal")
    with caplog.at_level("INFO"):
        for i in range(200):  # the export thread is stuck: the queue overflows
            tracer.start_span(f"span {i}").end()
            if i % 50 == 0:
                sdk_log.warning("some other SDK message")
    gate.set()
    provider.shutdown()
    assert len([r for r in caplog.records if r.getMessage().startswith("Queue full")]) == 1


def test_a_failing_collector_is_reported_once_then_its_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner = _Refusing()
    exporter = tracing.OnceLoggingExporter(inner, "http://collector:4318", retry_after_s=0.0)
    with caplog.at_level("INFO"):
        results = [exporter.export([]) for _ in range(50)]
        inner.export = lambda spans: SpanExportResult.SUCCESS  # type: ignore[method-assign]
        recovered = exporter.export([])
        exporter.export([])
    assert set(results) == {SpanExportResult.FAILURE} and recovered is SpanExportResult.SUCCESS
    messages = [r.getMessage() for r in caplog.records if r.name == tracing.log.name]
    assert messages == [
        "trace export to http://collector:4318 failing; spans are dropped until it recovers",
        "trace export to http://collector:4318 recovered (0 spans dropped)",
    ]


def test_while_failing_batches_are_dropped_without_calling_the_collector() -> None:
    inner = _Refusing()
    exporter = tracing.OnceLoggingExporter(inner, "http://collector:4318", retry_after_s=60.0)
    for _ in range(20):
        assert exporter.export([]) is SpanExportResult.FAILURE
    assert inner.calls == 1  # a dead collector costs one attempt per retry window


def test_a_bad_exclusion_pattern_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import SettingsError

    monkeypatch.delenv("OTEL_PYTHON_EXCLUDED_URLS", raising=False)
    monkeypatch.delenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", raising=False)
    assert tracing.excluded_urls() == tracing.DEFAULT_EXCLUDED_URLS
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "/metrics$, /health(z")
    with pytest.raises(SettingsError, match=r"OTEL_PYTHON_FLASK_EXCLUDED_URLS: '/health\(z'"):
        tracing.excluded_urls()
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "/metrics$,/internal/")
    assert tracing.excluded_urls() == "/metrics$,/internal/"
