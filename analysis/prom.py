"""Prometheus queries into tidy pandas DataFrames, and the README's RED queries.

Every frame has one row per (series, timestamp): the series' labels as columns, then
``timestamp`` (timezone-aware UTC) and ``value`` (float). Times passed in must be
timezone-aware: a naive datetime is ambiguous (local time or UTC?) and silently shifts a
window by hours, so it is refused.

Zero traffic is a case, not an accident: a ratio over no requests is 0/0, which PromQL
answers with NaN (or with no series at all when nothing was ever recorded). The RED
helpers report both as ``value = NaN`` with ``no_traffic = True`` and say so in ``note``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pandas as pd
from prometheus_api_client import MetricRangeDataFrame, MetricSnapshotDataFrame, PrometheusConnect

from app.environment import DEFAULT_SCRAPE_INTERVAL_S
from app.observability import names

__all__ = ["DEFAULT_SCRAPE_INTERVAL_S", "Prometheus"]

# Aim for a plot-friendly number of points per series in range queries.
TARGET_POINTS = 300
# rate() needs at least this many scrapes per window to survive a missed scrape.
MIN_SCRAPES_PER_WINDOW = 4

NO_TRAFFIC_NOTE = (
    "NaN: no requests (or jobs) in the window, so the ratio/quantile is 0/0 and undefined; "
    "it is not zero and not an error."
)


def require_aware(moment: datetime, name: str = "time") -> datetime:
    """Return moment in UTC; refuse a naive datetime with a message that says why."""
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise ValueError(
            f"{name}={moment.isoformat()} has no timezone: pass an aware datetime, e.g. "
            "datetime.now(UTC) or datetime(..., tzinfo=UTC)"
        )
    return moment.astimezone(UTC)


def choose_step(start: datetime, end: datetime,
                scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
                target_points: int = TARGET_POINTS) -> float:
    """A range-query step in whole seconds: about target_points points, never below a scrape."""
    start, end = require_aware(start, "start"), require_aware(end, "end")
    window = (end - start).total_seconds()
    if window <= 0:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    # A step finer than the scrape interval only repeats the same sample.
    return float(max(math.ceil(scrape_interval_s), math.ceil(window / target_points)))


def check_rate_window(window: str, scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S) -> str:
    """Return window if it spans at least 4 scrapes; raise otherwise."""
    seconds = duration_seconds(window)
    if seconds < MIN_SCRAPES_PER_WINDOW * scrape_interval_s:
        raise ValueError(
            f"rate window {window} is shorter than {MIN_SCRAPES_PER_WINDOW} x the "
            f"{scrape_interval_s:g}s scrape interval: rate() would see too few samples"
        )
    return window


def duration_seconds(text: str) -> float:
    """Seconds in a simple PromQL duration such as 30s, 1m, 2h (one unit)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for suffix in ("ms", "s", "m", "h", "d"):
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return int(text[: -len(suffix)]) * units[suffix]
    raise ValueError(f"{text!r} is not a PromQL duration like 30s, 1m or 2h")


def tidy(result: Any) -> pd.DataFrame:
    """A Prometheus API result (vector, matrix or scalar) as a tidy DataFrame."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        result = [{"metric": {}, "value": result}]  # a scalar: one unlabelled point
    if not result:
        return pd.DataFrame({"timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                             "value": pd.Series([], dtype="float64")})
    if "values" in result[0]:
        with warnings.catch_warnings():
            # prometheus-api-client calls set_index(inplace=True), which pandas 3.1 deprecates.
            warnings.filterwarnings("ignore", message="The inplace keyword")
            frame = pd.DataFrame(MetricRangeDataFrame(result, ts_as_datetime=False)).reset_index()
    else:
        frame = pd.DataFrame(MetricSnapshotDataFrame(result, ts_as_datetime=False))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype("float64"), unit="s", utc=True)
    frame["value"] = frame["value"].astype("float64")
    labels = sorted(c for c in frame.columns if c not in ("timestamp", "value"))
    return frame[[*labels, "timestamp", "value"]].sort_values([*labels, "timestamp"],
                                                              ignore_index=True)


class Prometheus:
    """A Prometheus HTTP API client that answers in tidy DataFrames."""

    def __init__(self, url: str, scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
                 timeout_s: int = 10) -> None:
        """Talk to the Prometheus at url (e.g. http://127.0.0.1:9090)."""
        self.url = url.rstrip("/")
        self.scrape_interval_s = scrape_interval_s
        self.client = PrometheusConnect(url=self.url, disable_ssl=True, timeout=timeout_s)

    def instant(self, query: str, at: datetime | None = None) -> pd.DataFrame:
        """Evaluate query at one moment (now when at is None)."""
        params = {} if at is None else {"time": require_aware(at, "at").timestamp()}
        return tidy(self.client.custom_query(query, params=params))

    def range(self, query: str, start: datetime, end: datetime,
              step_s: float | None = None) -> pd.DataFrame:
        """Evaluate query from start to end; the step is chosen from the window when not given."""
        start, end = require_aware(start, "start"), require_aware(end, "end")
        step = step_s or choose_step(start, end, self.scrape_interval_s)
        return tidy(self.client.custom_query_range(query, start, end, step=f"{step:g}"))

    def scalar(self, query: str, at: datetime | None = None) -> float:
        """The single value of a query that yields at most one series (NaN if none)."""
        frame = self.instant(query, at)
        if len(frame) > 1:
            raise ValueError(f"{query} returned {len(frame)} series, expected at most one")
        return float(frame["value"].iloc[0]) if len(frame) else math.nan


@dataclass(frozen=True)
class RedQuery:
    """One documented query: its name, its PromQL and what its value means."""

    name: str
    promql: str
    unit: str
    meaning: str


@dataclass
class QueryResult:
    """A query together with what Prometheus answered."""

    query: RedQuery
    value: float
    at: datetime | None
    frame: pd.DataFrame = field(repr=False)
    no_traffic: bool = False
    note: str = ""

    @property
    def promql(self) -> str:
        """The PromQL that produced the value."""
        return self.query.promql


def request_rate_query(window: str = "1m") -> RedQuery:
    """Requests per second over all endpoints: rate per series, then sum."""
    return RedQuery(
        "request rate",
        f"sum(rate({names.HTTP_REQUEST_DURATION}_count[{window}]))",
        "req/s", "requests per second handled by the app, averaged over the window",
    )


def p95_latency_query(window: str = "1m", quantile: float = 0.95) -> RedQuery:
    """The p95 latency: histogram_quantile over buckets summed by le (le must survive the sum)."""
    return RedQuery(
        f"p{quantile * 100:g} latency",
        f"histogram_quantile({quantile:g}, sum by (le) "
        f"(rate({names.HTTP_REQUEST_DURATION}_bucket[{window}])))",
        "s", f"{quantile:.0%} of requests finished faster than this (interpolated in a bucket)",
    )


def or_zero(part: str, total: str) -> str:
    """`(part or 0 * total)`: part, or 0 for each series of total that part has no match for.

    Before the first 5xx there is no 5xx series at all and the ratio would be empty; `or
    vector(0)` fills in a single unlabelled 0, which only matches when nothing is grouped,
    while `0 * total` has total's labels, so it also works under `sum by (...)`. The recording
    rules (stack/prometheus/rules) use the same form.
    """
    return f"({part} or 0 * {total})"


def error_rate_query(window: str = "1m") -> RedQuery:
    """Share of requests answered 5xx; `or 0 * total` makes 'no errors' 0 rather than empty."""
    metric = f"{names.HTTP_REQUEST_DURATION}_count"
    total = f"sum(rate({metric}[{window}]))"
    failed = f'sum(rate({metric}{{status=~"5.."}}[{window}]))'
    return RedQuery(
        "error rate",
        f"{or_zero(failed, total)} / {total}",
        "ratio", "share of requests answered with a 5xx status",
    )


def job_success_query(window: str = "5m") -> RedQuery:
    """Share of finished background jobs that succeeded (retries are not finished)."""
    metric = names.BACKGROUND_JOBS
    finished = f'sum(rate({metric}{{status=~"{names.JOB_SUCCEEDED}|{names.JOB_FAILED}"}}[{window}]))'
    succeeded = f'sum(rate({metric}{{status="{names.JOB_SUCCEEDED}"}}[{window}]))'
    return RedQuery(
        "job success rate",
        f"{or_zero(succeeded, finished)} / {finished}",
        "ratio", "share of finished background jobs that succeeded",
    )


def evaluate(prom: Prometheus, query: RedQuery, at: datetime | None = None) -> QueryResult:
    """Run a RED query at one moment; NaN or an empty answer is reported as no traffic."""
    frame = prom.instant(query.promql, at)
    value = float(frame["value"].iloc[0]) if len(frame) else math.nan
    no_traffic = math.isnan(value)
    return QueryResult(query, value, at, frame, no_traffic, NO_TRAFFIC_NOTE if no_traffic else "")


def evaluate_range(prom: Prometheus, query: RedQuery, start: datetime, end: datetime,
                   step_s: float | None = None) -> pd.DataFrame:
    """Run a RED query over a window; NaN points (no traffic at that moment) are kept."""
    return prom.range(query.promql, start, end, step_s)


def red_queries(window: str = "1m", scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
                job_window: str = "5m") -> list[RedQuery]:
    """The README's RED queries, with rate windows checked against the scrape interval."""
    check_rate_window(window, scrape_interval_s)
    check_rate_window(job_window, scrape_interval_s)
    return [request_rate_query(window), p95_latency_query(window), error_rate_query(window),
            job_success_query(job_window)]


def red_summary(prom: Prometheus, at: datetime | None = None, window: str = "1m",
                job_window: str = "5m") -> pd.DataFrame:
    """One row per RED query: name, promql, value, unit, no_traffic, note."""
    rows = []
    for query in red_queries(window, prom.scrape_interval_s, job_window):
        result = evaluate(prom, query, at)
        rows.append({"name": query.name, "promql": query.promql, "value": result.value,
                     "unit": query.unit, "no_traffic": result.no_traffic, "note": result.note})
    return pd.DataFrame(rows)


def _at(moment: datetime) -> str:
    """A moment as the argument of PromQL's @ modifier (unix seconds)."""
    return f"{require_aware(moment).timestamp():.3f}"


def run_increase_query(selector: str, start: datetime, end: datetime) -> str:
    """PromQL for the exact increase of sum(selector) between two moments.

    Unlike increase() over a window, which extrapolates to the window's edges, this is the
    raw difference of the counters as last scraped before each moment (the @ modifier pins
    each side to its moment). No series at start means nothing counted yet: 0. It differences
    a sum, so a replica that restarts in between (its counter starts again from 0) makes it
    wrong: counter_increase, which the lab's checks use, sums each series' own increase.
    """
    after = f"sum({selector} @ {_at(end)})"
    return f"{after} - {or_zero(f'sum({selector} @ {_at(start)})', after)}"


def run_quantile_query(quantile: float, start: datetime, end: datetime,
                       metric: str = names.HTTP_REQUEST_DURATION, matcher: str = "") -> str:
    """PromQL for a quantile of the observations made between two moments (raw bucket deltas)."""
    buckets = f"{metric}_bucket{{{matcher}}}" if matcher else f"{metric}_bucket"
    after = f"sum by (le) ({buckets} @ {_at(end)})"
    before = f"sum by (le) ({buckets} @ {_at(start)})"
    # Without series at start every bucket starts from 0: `or 0 * after` supplies the zeros.
    return f"histogram_quantile({quantile:g}, {after} - ({before} or 0 * {after}))"


# How far back an instant query looks for a sample (Prometheus's default lookback delta).
LOOKBACK_S = 300


# The start time of each replica's main process (gunicorn's master, Celery's main process):
# when it changes, that replica restarted, whatever its counters did.
RESTART_MARKER = 'process_start_time_seconds{role=~"master|worker-main"}'


def _raw(prom: Prometheus, selector: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The raw samples of selector from the lookback before start to end, series by series."""
    span = max(1, math.ceil((end - start).total_seconds()) + LOOKBACK_S)
    result: list[dict[str, Any]] = prom.client.custom_query(f"{selector}[{span}s] @ {_at(end)}")
    return result


def _incarnations(prom: Prometheus, start: datetime, end: datetime) -> dict[tuple[str, str], list[
        tuple[float, float]]]:
    """(job, instance) -> [(scrape time, its main process's start time)], in time order."""
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for series in _raw(prom, RESTART_MARKER, start, end):
        key = (series["metric"].get("job", ""), series["metric"].get("instance", ""))
        found.setdefault(key, []).extend((float(t), float(v)) for t, v in series["values"])
    return {key: sorted(points) for key, points in found.items()}


def series_increases(prom: Prometheus, selector: str, start: datetime, end: datetime) -> list[
        tuple[dict[str, str], float]]:
    """The exact increase of every series of selector from start to end: (labels, increase).

    From the raw samples, series by series. A step counts as a restart (the new value is all
    increase) when the counter went down, Prometheus's own rule, and also when the replica's
    main process changed in between (its process_start_time_seconds): a restarted replica
    that counted past its old value before the next scrape hides its reset from the first
    rule, and rate() undercounts it. The start value is the last sample at or before start
    (within the 5-minute lookback), 0 for a series born later. Summing these per-series
    increases stays exact across restarts, where differencing a sum (run_increase_query)
    reads a restart as lost requests.
    """
    start, end = require_aware(start, "start"), require_aware(end, "end")
    lives = _incarnations(prom, start, end)
    found = []
    for series in _raw(prom, selector, start, end):
        labels = dict(series["metric"])
        life = lives.get((labels.get("job", ""), labels.get("instance", "")), [])

        def started(moment: float, life: list[tuple[float, float]] = life) -> float | None:
            earlier = [value for t, value in life if t <= moment]
            return earlier[-1] if earlier else None

        points = [(float(t), float(v)) for t, v in series["values"]]
        before = [(t, v) for t, v in points if t <= start.timestamp()]
        steps = ([before[-1]] if before else [(start.timestamp(), 0.0)]) + \
            [(t, v) for t, v in points if t > start.timestamp()]
        total = 0.0
        for (t0, v0), (t1, v1) in pairwise(steps):
            restarted = started(t0) is not None and started(t1) is not None and started(t0) != started(t1)
            total += v1 if restarted or v1 < v0 else v1 - v0
        found.append((labels, total))
    return found


def counter_increase(prom: Prometheus, selector: str, start: datetime, end: datetime) -> float:
    """Exact increase of sum(selector) from start to end: the sum of every series' own increase
    (series_increases). Without a restart it equals run_increase_query's answer."""
    return float(sum(value for _, value in series_increases(prom, selector, start, end)))


def histogram_buckets(prom: Prometheus, start: datetime, end: datetime,
                      metric: str = names.HTTP_REQUEST_DURATION) -> pd.Series:
    """Observations per cumulative bucket (le -> count) made between start and end, summed over
    every series' own increase (exact across restarts, as counter_increase)."""
    totals: dict[float, float] = {}
    for labels, value in series_increases(prom, f"{metric}_bucket", start, end):
        le = float(labels["le"])
        totals[le] = totals.get(le, 0.0) + value
    return pd.Series(totals, dtype="float64").sort_index()


def bucket_bounds(value: float,
                  bounds: tuple[float, ...] = names.HTTP_BUCKETS) -> tuple[float, float]:
    """The histogram bucket (lower, upper] that holds value."""
    lower = 0.0
    for upper in bounds:
        if value <= upper:
            return lower, upper
        lower = upper
    return lower, math.inf
