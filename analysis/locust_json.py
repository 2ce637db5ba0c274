"""Locust's --json-file statistics as the same frame as its _stats.csv, but complete.

Locust rewrites _stats.csv on a one-second timer and not at quit, so requests of the last
second (users finishing their task, writers cleaning up in on_stop) can be missing from it.
The JSON file is written at shutdown from every request: per name and method, the counts
and the histogram of rounded response times Locust keeps. From that histogram the
percentiles are computed with Locust's own rule (see analysis.locust_stats), the
Aggregated row is the sum of the entries, as Locust's total is, and Requests/s is each
count over the run's span (first request's start to the last request), as Locust's is.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import locust_stats

PERCENTILES = (0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)


def percentile_from_histogram(response_times: Counter[float], quantile: float) -> float:
    """Locust's percentile of a histogram {rounded ms: count}: walk down from the largest."""
    total = sum(response_times.values())
    if total == 0:
        return math.nan
    allowed_below = int(total * quantile)
    processed = 0
    for value in sorted(response_times, reverse=True):
        processed += response_times[value]
        if total - processed <= allowed_below:
            return float(value)
    return float(min(response_times))


def _row(kind: str, name: str, requests: int, failures: int, total_ms: float,
         histogram: Counter[float], span_s: float) -> dict[str, Any]:
    """One row in the CSV's columns."""
    row: dict[str, Any] = {
        "Type": kind, "Name": name, "Request Count": requests, "Failure Count": failures,
        "Median Response Time": percentile_from_histogram(histogram, 0.5),
        "Average Response Time": total_ms / requests if requests else math.nan,
        "Requests/s": requests / span_s if span_s > 0 else 0.0,
    }
    for quantile in PERCENTILES:
        row[locust_stats.percentile_column(quantile)] = percentile_from_histogram(histogram, quantile)
    return row


def read_stats_json(path: str | Path) -> pd.DataFrame:
    """Rows per (method, name) plus "Aggregated", with the columns read_stats_csv gives."""
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    starts = [float(e["start_time"]) for e in entries if e.get("start_time")]
    lasts = [float(e["last_request_timestamp"]) for e in entries if e.get("last_request_timestamp")]
    span_s = max(lasts) - min(starts) if starts and lasts else 0.0
    rows = []
    overall: Counter[float] = Counter()
    total_requests = total_failures = 0
    total_ms = 0.0
    for entry in sorted(entries, key=lambda e: (str(e["name"]), str(e["method"]))):
        histogram: Counter[float] = Counter(
            {float(ms): int(count) for ms, count in entry["response_times"].items()})
        rows.append(_row(str(entry["method"]), str(entry["name"]), int(entry["num_requests"]),
                         int(entry["num_failures"]), float(entry["total_response_time"]), histogram,
                         span_s))
        overall.update(histogram)
        total_requests += int(entry["num_requests"])
        total_failures += int(entry["num_failures"])
        total_ms += float(entry["total_response_time"])
    rows.append(_row("", locust_stats.AGGREGATED, total_requests, total_failures, total_ms, overall,
                     span_s))
    frame = pd.DataFrame(rows)
    frame["Type"] = frame["Type"].astype("string")
    frame["Name"] = frame["Name"].astype("string")
    return frame


def endpoint_row(frame: pd.DataFrame, method: str, name: str) -> pd.Series:
    """The row of one request name (e.g. GET "/api/todos?page=[n]")."""
    rows = frame[(frame["Type"] == method) & (frame["Name"] == name)]
    if rows.empty:
        raise KeyError(f"Locust made no {method} {name} request")
    return rows.iloc[0]
