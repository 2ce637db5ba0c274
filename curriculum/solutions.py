"""Reference solutions of the notebook exercises (try them yourself first!).

PromQL exercises hold the query; pandas exercises hold a function of the same data the
notebook passes to the check (``access``: the access-log lines of the run). The checks in
curriculum.exercises compare *results*, so any equivalent answer is right.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

SOLUTIONS: dict[str, object] = {}

# 1.1 Requests per second per endpoint over the last minute: rate each series, then sum
#     by the label you want to keep.
SOLUTIONS["1.1"] = "sum by (endpoint) (rate(http_request_duration_seconds_count[1m]))"

# 1.2 p95 latency of the JSON list endpoint alone: filter the buckets, keep `le` in the sum.
SOLUTIONS["1.2"] = (
    "histogram_quantile(0.95, sum by (le) "
    '(rate(http_request_duration_seconds_bucket{endpoint="api.list_todos"}[1m])))'
)


# 2.1 Number of 5xx answers per endpoint (only endpoints that had any).
def errors_per_endpoint(access: pd.DataFrame) -> pd.Series:
    """5xx access lines counted per endpoint."""
    return access[access["status_code"] >= 500].groupby("endpoint").size()


SOLUTIONS["2.1"] = errors_per_endpoint


# 2.2 The p95 of duration_ms of api.list_todos, from the logs alone.
def list_p95_ms(access: pd.DataFrame) -> float:
    """95th percentile (linear interpolation) of the list endpoint's durations."""
    return float(access.loc[access["endpoint"] == "api.list_todos", "duration_ms"].quantile(0.95))


SOLUTIONS["2.2"] = list_p95_ms


# 3.1 The trace id of the slowest request of the run: the log line leads to the trace.
def slowest_trace_id(access: pd.DataFrame) -> str:
    """trace_id of the access line with the largest duration_ms."""
    return str(access.nlargest(1, "duration_ms")["trace_id"].iloc[0])


SOLUTIONS["3.1"] = slowest_trace_id


# --- the workshop's modules (00-07) ---------------------------------------------------------

def up_targets(prometheus: Any, at: Any = None) -> float:
    """0.1: scrape targets Prometheus has up (now, or at a moment)."""
    return float(prometheus.scalar("count(up == 1)", at))


SOLUTIONS["0.1"] = up_targets
SOLUTIONS["0.2"] = 'sum(http_request_duration_seconds_count{endpoint="api.list_todos"})'
SOLUTIONS["0.3"] = "c"

SOLUTIONS["1.3"] = "b"
SOLUTIONS["1.4"] = "a"
SOLUTIONS["1.5"] = "b"
SOLUTIONS["1.6"] = "c"
# 1.7 The SLI of the latency objective: requests within 0.25 s over all requests (exact: a
#     bucket boundary).
SOLUTIONS["1.7"] = (
    'sum(rate(http_request_duration_seconds_bucket{le="0.25"}[1m])) '
    "/ sum(rate(http_request_duration_seconds_count[1m]))"
)

# 1.8 Each endpoint's share of all requests: many (endpoints) to one (the total).
SOLUTIONS["1.8"] = (
    "sum by (endpoint) (rate(http_request_duration_seconds_count[1m])) "
    "/ ignoring (endpoint) group_left sum(rate(http_request_duration_seconds_count[1m]))"
)


# 2.3 Queue time of an export from the logs: access line of the POST to the worker's first line.
def export_queue_seconds(frame: pd.DataFrame, request_id: str) -> float:
    """Seconds between the web's access line and the worker's first line of the same request."""
    mine = frame[frame["request_id"] == request_id]
    sent = mine.loc[mine["logger"] == "app.access", "timestamp"].min()
    picked = mine.loc[mine["service"] == "todo-worker", "timestamp"].min()
    return float((picked - sent).total_seconds())


SOLUTIONS["2.3"] = export_queue_seconds


# 2.4 What the ERROR lines are: reports of 5xx answers (access lines) unless an exception's
#     own line is among them.
def error_lines_kind(frame: pd.DataFrame) -> str:
    """'a' when every ERROR line is an access line of a 5xx answer, else 'b'."""
    access = frame["logger"] == "app.access"
    return "a" if bool(access.all()) and bool((frame.loc[access, "status_code"] >= 500).all()) else "b"


SOLUTIONS["2.4"] = error_lines_kind


# 3.2 Where the slowest request's time went: children cover most of the root, or not.
def where_time_went(spans: list[Any]) -> str:
    """'a' when the root's direct children cover more than half of it, else 'b'."""
    root = next(s for s in spans if s.parent_id is None)
    covered = sum(s.end_ns - s.start_ns for s in spans if s.parent_id == root.span_id)
    return "a" if covered > 0.5 * (root.end_ns - root.start_ns) else "b"


SOLUTIONS["3.2"] = where_time_went


# 3.3 Queue time of an export from its trace: producer span's end to consumer span's start.
def export_queue_ms(spans: list[Any]) -> float:
    """Milliseconds the export's message waited in the broker."""
    producer = next(s for s in spans if s.kind == "PRODUCER")
    consumer = next(s for s in spans if s.kind == "CONSUMER")
    return (consumer.start_ns - producer.end_ns) / 1e6


SOLUTIONS["3.3"] = export_queue_ms
SOLUTIONS["3.4"] = "a"
SOLUTIONS["3.5"] = "a"

SOLUTIONS["4.1"] = "a"


# 4.2 The p95 check's tolerance: the width of the bucket that holds the true p95.
def p95_bucket_width(p95_s: float) -> float:
    """Width in seconds of the histogram bucket holding p95_s."""
    bounds = (0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    upper = next(b for b in bounds[1:] if p95_s <= b)
    return upper - bounds[bounds.index(upper) - 1]


SOLUTIONS["4.2"] = p95_bucket_width
SOLUTIONS["4.3"] = "b"


# 4.4 Four binomial standard deviations of an observed share.
def binomial_4_sigma(n: int, rate: float) -> float:
    """4 * sqrt(p (1 - p) / n)."""
    return 4 * (rate * (1 - rate) / n) ** 0.5


SOLUTIONS["4.4"] = binomial_4_sigma

SOLUTIONS["6.1"] = 'count(http_request_duration_seconds_bucket{job="web"})'


# 6.2 Series of the request histogram labelled by the raw path: 14 per distinct path.
def series_by_path(access: pd.DataFrame) -> int:
    """(11 bounds + +Inf + _count + _sum) x distinct paths."""
    return 14 * int(access["http.path"].nunique())


SOLUTIONS["6.2"] = series_by_path
SOLUTIONS["6.3"] = "b"
SOLUTIONS["6.4"] = "b"


# 6.5 The busiest process role during the run, from process_cpu_seconds_total.
def busiest_role(prometheus: Any, start: Any, end: Any) -> str:
    """The option key of the job/role with the largest CPU-seconds increase between start and end."""
    keys = {("web", "worker"): "a", ("web", "master"): "b", ("worker", "worker-main"): "c",
            ("worker", "pool-child"): "d"}
    seconds = max(1, int((end - start).total_seconds()))
    frame = prometheus.instant('sum by (job, role) (increase(process_cpu_seconds_total'
                               f'{{job=~"web|worker"}}[{seconds}s]))', end)
    best = frame.sort_values("value").iloc[-1]
    return keys[(best["job"], best["role"])]


SOLUTIONS["6.5"] = busiest_role


# 6.6 CPU ms/request that tracing (c) adds over logs + metrics (b) on POST /api/todos.
def tracing_cost_ms() -> float:
    """From docs/benchmarks.md's overhead table."""
    from analysis import benchmarks

    table = benchmarks.overhead()
    mine = table[table["endpoint"] == "POST /api/todos"].set_index("configuration")["CPU ms/request"]
    row = {str(k)[1]: float(v) for k, v in mine.items()}
    return row["c"] - row["b"]


SOLUTIONS["6.6"] = tracing_cost_ms

# 7.1 (was 5.1) Share of api.list_todos requests answered 5xx over the last minute.
SOLUTIONS["7.1"] = (
    'sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos",status=~"5.."}[1m])) '
    '/ sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos"}[1m]))'
)
SOLUTIONS["7.2"] = "a"


# 7.3, 7.4 The blind incident of a seed: its fault kind and endpoint (derived from the seed).
def blind_kind(seed: int, duration: float) -> str:
    """The fault kind the seed draws."""
    from curriculum import blind_incident

    return blind_incident.plan(seed, duration).kind


def blind_endpoint(seed: int, duration: float) -> str:
    """The endpoint the seed's fault hits ('*' for slow_db)."""
    from curriculum import blind_incident

    return blind_incident.plan(seed, duration).endpoint or blind_incident.ALL_ENDPOINTS


SOLUTIONS["7.3"] = blind_kind
SOLUTIONS["7.4"] = blind_endpoint


# The blind incident's window (not an exercise of the bank: graded by
# curriculum.blind_incident.answer with its own tolerance): when the fault went on and off.
def blind_window(run: Any) -> tuple[str, str]:
    """(start, end) of the run's fault, ISO 8601."""
    return run.fault_on.isoformat(), run.fault_off.isoformat()


SOLUTIONS["blind-window"] = blind_window


# 5.1 Share of the availability error budget the run used.
def budget_used(total: float, bad: float, objective: float) -> float:
    """bad / ((1 - objective) * total)."""
    return bad / ((1 - objective) * total)


SOLUTIONS["5.1"] = budget_used
SOLUTIONS["5.2"] = 0.5 / (1 - 0.99)
SOLUTIONS["5.3"] = "b"
SOLUTIONS["5.4"] = "b"
# 5.5 The alert, graded by promtool: the reference fires exactly where it should, so its
#     outcomes are "as it should" in every scenario.
LIST_ERRORS_ALERT = (
    'sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos",status=~"5.."}[2m])) '
    '/ sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos"}[2m])) > 0.1'
)


def rule_outcomes() -> dict[str, str]:
    """What every scenario of curriculum.rule_grader says about a right rule."""
    from curriculum import rule_grader

    return {scenario.name: "as it should" for scenario in rule_grader.SCENARIOS}


SOLUTIONS["5.5"] = rule_outcomes

# 2.5 jq: the request ids of the access lines answered 5xx.
SOLUTIONS["2.5"] = 'select(.logger == "app.access" and .status_code >= 500) | .request_id'
SOLUTIONS["6.7"] = "a"
