"""Reference solutions of the notebook exercises (try them yourself first!).

PromQL exercises hold the query; pandas exercises hold a function of the same data the
notebook passes to the check (``access``: the access-log lines of the run). The checks in
analysis.exercises compare *results*, so any equivalent answer is right.
"""

from __future__ import annotations

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

# 5.1 Share of api.list_todos requests answered 5xx over the last minute.
SOLUTIONS["5.1"] = (
    'sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos",status=~"5.."}[1m])) '
    '/ sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos"}[1m]))'
)
