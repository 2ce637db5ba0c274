"""Locust's --csv statistics (<prefix>_stats.csv) and how Locust rounds response times.

Checked against Locust 2.47: the header is Type, Name, Request Count, Failure Count,
Median Response Time, Average Response Time, Min Response Time, Max Response Time,
Average Content Size, Requests/s, Failures/s, 50%, 66%, 75%, 80%, 90%, 95%, 98%, 99%,
99.9%, 99.99%, 100%; the last row is Name "Aggregated". Times are milliseconds.

Importing locust here would monkey-patch the process with gevent, so its rounding rule is
restated in ``locust_bucket_ms`` (tests compare it with locust's own in a subprocess).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

AGGREGATED = "Aggregated"
COUNT_COLUMNS = ("Request Count", "Failure Count")


def read_stats_csv(path: str | Path) -> pd.DataFrame:
    """A Locust _stats.csv with counts as integers and times as floats (N/A becomes NaN)."""
    frame = pd.read_csv(path, na_values=["N/A"], keep_default_na=True)
    frame["Type"] = frame["Type"].fillna("").astype("string")
    frame["Name"] = frame["Name"].astype("string")
    for column in frame.columns:
        if column in COUNT_COLUMNS:
            frame[column] = frame[column].astype("int64")
        elif column not in ("Type", "Name"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def aggregated(frame: pd.DataFrame) -> pd.Series:
    """The Aggregated row (all requests of the run)."""
    rows = frame[frame["Name"] == AGGREGATED]
    if rows.empty:
        raise ValueError("no Aggregated row: is this a Locust _stats.csv?")
    return rows.iloc[0]


def percentile_column(quantile: float) -> str:
    """The CSV column of a quantile: 0.95 -> '95%', 0.999 -> '99.9%'."""
    pct = quantile * 100
    return f"{int(pct)}%" if float(pct).is_integer() else f"{round(pct, 6)}%"


def locust_bucket_ms(ms: float) -> int:
    """Locust's stored value of a response time: whole ms below 100, then ~2 significant digits."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return int(round(ms, -1))
    if ms < 10000:
        return int(round(ms, -2))
    return int(round(ms, -3))


def bucket_step_ms(ms: float) -> float:
    """Width of Locust's rounding at ms: 1, 10, 100 or 1000 ms."""
    if ms < 100:
        return 1.0
    return float(10 ** min(3, math.floor(math.log10(ms)) - 1))


def locust_percentile_ms(durations_ms: Iterable[float], quantile: float) -> float:
    """What Locust would report for these response times: rounded, then its rank rule.

    Locust walks the rounded values from the largest down and returns the first at which
    at most int(n * quantile) requests remain below; this is that rule.
    """
    values = np.sort(np.array([locust_bucket_ms(v) for v in durations_ms], dtype="float64"))
    if len(values) == 0:
        return math.nan
    below = int(len(values) * quantile)
    # The value at 0-based index `below` (clamped), i.e. the smallest with > `below` at or under it.
    return float(values[min(below, len(values) - 1)])
