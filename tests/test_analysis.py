"""The analysis module on recorded answers of a real run (tests/data/analysis, see record.py).

Prometheus answers are served back over HTTP by a local server, so prometheus-api-client
really makes its requests; the logs, span file, Jaeger answers and Locust CSV are files.
The run is known: 50 requests of which 4 slow 503s, 6 404s; 3 exports that succeeded.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from analysis import locust_stats, logs, prom, traces, verify
from app.observability import names
from stack.small_http import Answer, Request, SmallServer
from tests.data.analysis import recorded_http

DATA = Path(__file__).parent / "data" / "analysis"
META = json.loads((DATA / "meta.json").read_text(encoding="utf-8"))
RUN_START = datetime.fromisoformat(META["run"]["start"])
RUN_END = datetime.fromisoformat(META["run"]["end"])
JOBS_END = datetime.fromisoformat(META["jobs"]["end"])


@pytest.fixture(scope="module")
def prometheus() -> Iterator[prom.Prometheus]:
    """A Prometheus client talking to the recorded answers over HTTP."""
    with recorded_http.serve(DATA / "prometheus") as url:
        yield prom.Prometheus(url, scrape_interval_s=META["scrape_interval_s"])


@pytest.fixture(scope="module")
def log_frame() -> pd.DataFrame:
    """The recorded web and worker logs."""
    load = logs.load_logs(DATA / "web.jsonl", DATA / "worker.jsonl")
    assert load.malformed == 0
    return load.frame


# --- Prometheus --------------------------------------------------------------------------

def test_naive_datetimes_are_refused_with_a_clear_message(prometheus: prom.Prometheus) -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        prometheus.range("up", datetime(2026, 1, 1), datetime(2026, 1, 1, 1))
    with pytest.raises(ValueError, match="has no timezone"):
        prometheus.instant("up", datetime(2026, 1, 1))


@pytest.mark.parametrize(("window", "scrape", "step"), [
    (timedelta(minutes=1), 5.0, 5.0),      # never finer than a scrape
    (timedelta(hours=1), 5.0, 12.0),       # 3600 s / 300 points
    (timedelta(hours=6), 15.0, 72.0),
])
def test_the_range_step_follows_the_window(window: timedelta, scrape: float, step: float) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert prom.choose_step(start, start + window, scrape) == step


def test_a_rate_window_shorter_than_four_scrapes_is_refused() -> None:
    with pytest.raises(ValueError, match="4 x the 15s scrape interval"):
        prom.red_queries(window="30s", scrape_interval_s=15)
    assert len(prom.red_queries(window="1m", scrape_interval_s=15)) == 4


def test_red_queries_carry_their_promql_and_values(prometheus: prom.Prometheus) -> None:
    table = prom.red_summary(prometheus, at=RUN_END).set_index("name")
    assert table.loc["p95 latency", "promql"] == (
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))")
    assert table.loc["request rate", "value"] > 0
    # 4 of the 1m window's requests were 503s: a rate strictly between 0 and 1.
    assert 0 < table.loc["error rate", "value"] < 1
    # The slow 503s (~0.3 s) are the top 5%: the p95 lies in the (0.25, 0.5] bucket.
    assert 0.25 < table.loc["p95 latency", "value"] <= 0.5
    assert not table["no_traffic"].any()


def test_job_success_rate_after_the_export_phase(prometheus: prom.Prometheus) -> None:
    result = prom.evaluate(prometheus, prom.job_success_query("5m"), at=JOBS_END)
    assert result.value == 1.0
    assert "background_jobs_total" in result.promql and 'status="succeeded"' in result.promql


def test_range_queries_come_back_tidy_and_timezone_aware(prometheus: prom.Prometheus) -> None:
    frame = prom.evaluate_range(prometheus, prom.request_rate_query("1m"), RUN_START, RUN_END)
    assert list(frame.columns) == ["timestamp", "value"]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["timestamp"].is_monotonic_increasing and len(frame) >= 3
    assert (frame["value"] > 0).all()


def test_zero_traffic_is_reported_as_nan_with_a_note() -> None:
    query = prom.error_rate_query("1m")
    result = prom.QueryResult(query, math.nan, None, prom.tidy([]), True, prom.NO_TRAFFIC_NOTE)
    assert result.no_traffic and "0/0" in result.note
    # The same from a real Prometheus answer that said NaN:
    frame = prom.tidy([{"metric": {}, "value": [1.0, "NaN"]}])
    assert math.isnan(frame["value"].iloc[0])


def test_histogram_buckets_of_the_run_are_the_known_traffic(prometheus: prom.Prometheus) -> None:
    buckets = prom.histogram_buckets(prometheus, RUN_START, RUN_END)
    assert buckets[math.inf] == META["run"]["requests"]
    # Everything but the 4 slow 503s finished within the 0.25 s objective.
    assert buckets[names.LATENCY_OBJECTIVE_SECONDS] == META["run"]["requests"] - 4


# --- Logs --------------------------------------------------------------------------------

def test_logs_are_typed(log_frame: pd.DataFrame) -> None:
    assert str(log_frame[names.F_TIMESTAMP].dt.tz) == "UTC"
    assert str(log_frame[names.F_STATUS].dtype) == "Int64"
    assert log_frame[names.F_DURATION_MS].dtype == "float64"
    assert set(log_frame[names.F_SERVICE].dropna()) == {"todo-web", "todo-worker"}


def test_compose_prefixed_and_malformed_lines(tmp_path: Path) -> None:
    lines = (DATA / "web.jsonl").read_text(encoding="utf-8").splitlines()[:10]
    compose = [f"todo-web-1  | {lines[0]}", f"web-1  | {lines[1]}", *lines[2:],
               "web-1  | Traceback (most recent call last):", '{"truncated": ', "[1, 2]", ""]
    path = tmp_path / "compose.log"
    path.write_text("\n".join(compose), encoding="utf-8")
    load = logs.load_logs(path)
    assert len(load.frame) == 10
    assert load.malformed == 3
    assert set(load.frame["container"].dropna()) == {"todo-web-1", "web-1"}


def test_access_lines_errors_slow_requests_and_percentiles(log_frame: pd.DataFrame) -> None:
    run = logs.between(log_frame, pd.Timestamp(RUN_START), pd.Timestamp(RUN_END))
    assert len(logs.access_lines(run)) == META["run"]["requests"]
    errors = logs.errors_by_endpoint(run).set_index(names.F_ENDPOINT)
    assert errors.loc["health.background", "errors"] == 4
    assert errors["errors"].sum() == 4  # the 404s are not 5xx
    slow = logs.slow_requests(run, top=4)
    assert (slow[names.F_ENDPOINT] == "health.background").all()
    assert slow[names.F_TRACE_ID].str.fullmatch(r"[0-9a-f]{32}").all()
    per_endpoint = logs.latency_percentiles(run).set_index(names.F_ENDPOINT)
    assert per_endpoint.loc["api.list_todos", "requests"] == 30
    assert per_endpoint.index[0] == "health.background"  # slowest p99 first


# --- Traces ------------------------------------------------------------------------------

def test_jaeger_answer_and_span_file_give_the_same_spans() -> None:
    trace_id = META["traces"]["export"]
    from_jaeger = traces.parse_jaeger(json.loads((DATA / "jaeger-export.json").read_text()))
    from_file = traces.read_span_file(DATA / "spans.jsonl", trace_id).spans
    key = lambda s: (s.span_id, s.parent_id, s.name, s.service)  # noqa: E731
    assert sorted(map(key, from_jaeger)) == sorted(map(key, from_file))
    # Jaeger stores microseconds: durations agree to the microsecond.
    by_id = {s.span_id: s for s in from_file}
    for span in from_jaeger:
        assert abs(span.duration_ms - by_id[span.span_id].duration_ms) <= 0.002


def test_fetch_jaeger_trace_over_http(tmp_path: Path) -> None:
    trace_id = META["traces"]["slow_503"]
    recorded = (DATA / "jaeger-slow_503.json").read_bytes()

    def query_api(request: Request) -> Answer:  # Jaeger's answer for the recorded trace only
        if request.path == f"/api/traces/{trace_id}":
            return Answer(200, recorded)
        return Answer.json(404, {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]})

    with SmallServer(query_api) as server:
        spans = traces.fetch_jaeger_trace(server.url, trace_id)
        with pytest.raises(LookupError):
            traces.fetch_jaeger_trace(server.url, "0" * 32)
    root = traces.root_of(spans)
    assert root.span.name == "GET /healthz/background" and root.span.kind == "SERVER"
    assert root.span.duration_ms > 250  # the slow 503


def test_export_trace_critical_path_stays_in_the_request_as_jaeger_computes_it() -> None:
    spans = traces.parse_jaeger(json.loads((DATA / "jaeger-export.json").read_text()))
    root = traces.root_of(spans)
    path = traces.critical_path(root)
    assert path[0].name == "POST /export"
    # The worker's task ends long after the answer: nobody waited for it, so it is off the path.
    assert max(spans, key=lambda s: s.end_ns) not in path
    assert {s.service for s in path} == {"todo-web"}
    assert any(s.name.startswith("apply_async/") for s in path)  # enqueueing is waited for
    # Jaeger's sections tile the request exactly: every moment of it is someone's.
    sections = traces.critical_path_sections(root)
    assert sections[0].start_ns == root.span.start_ns and sections[-1].end_ns == root.span.end_ns
    assert all(a.end_ns == b.start_ns for a, b in itertools.pairwise(sections))
    text = traces.render_tree(spans)
    assert text.splitlines()[0].startswith("*") and "run/exports.export_todos [todo-worker]" in text
    worker_line = next(line for line in text.splitlines() if "run/exports.export_todos" in line)
    assert not worker_line.startswith("*")


def _span(sid: str, parent: str | None, start: int, end: int, kind: str = "INTERNAL") -> traces.Span:
    return traces.Span("t" * 32, sid, parent, sid, "svc", start, end, kind=kind)


def test_critical_path_bounds_each_child_by_its_parent_as_jaeger_does() -> None:
    # b1 ends after its parent b (and after the root): it counts only up to b's end, so the
    # branch that keeps the root waiting longest is a, not b.
    spans = [_span("root", None, 0, 100), _span("a", "root", 10, 90), _span("b", "root", 5, 40),
             _span("b1", "b", 20, 120), _span("a1", "a", 15, 60)]
    root = traces.root_of(spans)
    assert [s.span_id for s in traces.critical_path(root)] == ["root", "a", "a1"]
    assert [(s.span.span_id, s.start_ns, s.end_ns) for s in traces.critical_path_sections(root)] == [
        ("root", 0, 10), ("a", 10, 15), ("a1", 15, 60), ("a", 60, 90), ("root", 90, 100)]
    frame = traces.waterfall_frame(spans).set_index("span_id")
    assert frame.loc["b1", "depth"] == 2
    assert frame["critical"].sum() == 3 and frame.loc["a", "critical_ms"] == pytest.approx(35e-6)


def test_follows_from_children_and_children_after_their_parent_are_off_the_critical_path() -> None:
    spans = [_span("root", None, 0, 100, "SERVER"), _span("enqueue", "root", 10, 50, "PRODUCER"),
             # Consumed while the producer still runs: a follows-from child, not waited for.
             _span("task", "enqueue", 30, 400, "CONSUMER"),
             _span("late", "root", 150, 160)]  # starts after its parent ended: dropped
    path = [s.span_id for s in traces.critical_path(traces.root_of(spans))]
    assert path == ["root", "enqueue"]
    assert sum(s.end_ns - s.start_ns for s in traces.critical_path_sections(traces.root_of(spans))) == 100


def test_waterfall_plot(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    spans = traces.read_span_file(DATA / "spans.jsonl", META["traces"]["slow_503"]).spans
    ax = traces.plot_waterfall(spans)
    assert len(ax.patches) == len(spans)
    ax.figure.savefig(tmp_path / "waterfall.png")
    assert (tmp_path / "waterfall.png").stat().st_size > 0


def test_malformed_span_lines_are_counted(tmp_path: Path) -> None:
    good = (DATA / "spans.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join([*good, "{not json", '{"trace_id": "x"}']) + "\n", encoding="utf-8")
    load = traces.read_span_file(path)
    assert (len(load.spans), load.malformed) == (3, 2)


# --- Locust ------------------------------------------------------------------------------

def test_locust_stats_csv_is_read_with_its_real_header() -> None:
    stats = locust_stats.read_stats_csv(DATA / "locust_stats.csv")
    row = locust_stats.aggregated(stats)
    assert row["Request Count"] == META["run"]["requests"]
    assert row["Failure Count"] == META["run"]["failures"]
    assert {"95%", "99.9%", "Average Response Time"} <= set(stats.columns)


def test_our_rounding_is_locusts_rounding() -> None:
    samples = [0.4, 2.5, 99.4, 99.6, 147, 999, 3432, 58760]
    code = ("import json, sys; from locust.stats import bucket_response_time as b; "
            f"print(json.dumps([b(v) for v in {samples}]))")
    # In a subprocess: importing locust monkey-patches the interpreter with gevent.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [locust_stats.locust_bucket_ms(v) for v in samples]


# --- Verification ------------------------------------------------------------------------

def test_verification_table_on_the_recorded_run(prometheus: prom.Prometheus,
                                                log_frame: pd.DataFrame) -> None:
    stats = locust_stats.read_stats_csv(DATA / "locust_stats.csv")
    checks = [
        *verify.known_truth(prometheus, RUN_START, RUN_END, META["run"]["requests"],
                            META["run"]["errors_5xx"]),
        *verify.prometheus_vs_logs(prometheus, log_frame, RUN_START, RUN_END),
        *verify.locust_vs_logs(stats, log_frame, RUN_START, RUN_END),
    ]
    table = verify.verdict_table(checks)
    assert list(table.columns) == verify.VERDICT_COLUMNS
    assert (table["verdict"] == "pass").all(), table.to_string()
    p95 = table[table["query"].str.startswith("histogram_quantile")].iloc[0]
    assert p95["tolerance"] == 0.25 and "(0.25s, 0.5s]" in p95["explanation"]


def test_a_wrong_expectation_fails(prometheus: prom.Prometheus) -> None:
    checks = verify.known_truth(prometheus, RUN_START, RUN_END, META["run"]["requests"] + 1,
                                META["run"]["errors_5xx"] - 1)
    assert [c.passed for c in checks] == [False, False]
    assert verify.quantile_check("q", expected_s=0.02, observed_s=0.34).passed is False


def test_correlation_of_logs_spans_and_headers(log_frame: pd.DataFrame) -> None:
    spans = traces.read_span_file(DATA / "spans.jsonl").spans
    access = logs.access_lines(log_frame)
    # Probes (/healthz) are not traced (app/observability/tracing.py): no traceparent to echo.
    access = access[access[names.F_TRACE_ID].notna()].reset_index(drop=True)
    assert len(access) > 50
    headers = pd.DataFrame({
        names.F_REQUEST_ID: access[names.F_REQUEST_ID],
        "traceparent": "00-" + access[names.F_TRACE_ID] + "-" + access[names.F_SPAN_ID] + "-01",
    })
    joined = verify.correlate(log_frame, spans, headers)
    assert len(joined) == len(access)
    assert joined["in_trace"].all() and joined["header_matches"].all()
    assert verify.verdict_table(verify.correlation_checks(joined))["verdict"].eq("pass").all()
    # A header from another trace is caught.
    headers.loc[0, "traceparent"] = "00-" + "f" * 32 + "-" + "1" * 16 + "-01"
    broken = verify.correlation_checks(verify.correlate(log_frame, spans, headers))
    assert [c.passed for c in broken] == [True, False]
