"""Correlate logs, traces and response headers; check Prometheus against independent truth.

Each check is a row of query, expected, observed, tolerance, verdict, explanation, where the
tolerance is derived from how the observed number is produced, never picked to make it pass:

- Counts from Prometheus are the raw counter difference between two instant queries
  pinned with @ at run start and end (no increase() extrapolation): exact, tolerance 0,
  provided no request is in flight within one scrape interval of either edge.
- A quantile from histogram_quantile is only known to lie in the bucket that holds it
  (it interpolates linearly inside the bucket), so the tolerance is that bucket's width.
- Locust stores response times rounded (1 ms below 100 ms, 10 ms below 1 s, 100 ms below
  10 s) and measures at the client, so its percentiles carry that rounding step plus the
  client-side overhead, measured as the difference of the exact averages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from analysis import locust_stats, logs, prom
from analysis.traces import Span
from app.observability import names

VERDICT_COLUMNS = ["query", "expected", "observed", "tolerance", "verdict", "explanation"]
COUNT_SELECTOR = f"{names.HTTP_REQUEST_DURATION}_count"


@dataclass(frozen=True)
class Check:
    """One comparison of an observed number with the truth it should match."""

    query: str
    expected: float
    observed: float
    tolerance: float
    explanation: str

    @property
    def passed(self) -> bool:
        """True when observed is within tolerance of expected (NaN never passes)."""
        if any(math.isnan(v) for v in (self.expected, self.observed, self.tolerance)):
            return False
        return abs(self.observed - self.expected) <= self.tolerance + 1e-9

    def row(self) -> dict[str, object]:
        """The check as a table row."""
        return {"query": self.query, "expected": self.expected, "observed": self.observed,
                "tolerance": self.tolerance, "verdict": "pass" if self.passed else "fail",
                "explanation": self.explanation}


def verdict_table(checks: list[Check]) -> pd.DataFrame:
    """The checks as a table: query, expected, observed, tolerance, verdict, explanation."""
    return pd.DataFrame([c.row() for c in checks], columns=VERDICT_COLUMNS)


def _exact_count_note(scrape_interval_s: float) -> str:
    return ("raw counter difference between instant queries at run start and end (@ modifier), "
            "no extrapolation, so it must match exactly; assumes no request within "
            f"{scrape_interval_s:g}s (one scrape) of either edge and no server restart")


def quantile_check(query: str, expected_s: float, observed_s: float,
                   bounds: tuple[float, ...] = names.HTTP_BUCKETS) -> Check:
    """A histogram_quantile estimate against a quantile of the raw durations (seconds)."""
    if math.isnan(observed_s):
        return Check(query, expected_s, observed_s, math.nan,
                     "Prometheus answered NaN: no observations in the window (0/0)")
    lower, upper = prom.bucket_bounds(observed_s, bounds)
    if math.isinf(upper):
        return Check(query, expected_s, observed_s, math.inf,
                     f"the quantile falls in the +Inf bucket above {lower:g}s: histogram_quantile "
                     "can only say 'more than the largest bound'; add buckets")
    return Check(query, expected_s, observed_s, upper - lower,
                 f"histogram_quantile interpolates inside the bucket ({lower:g}s, {upper:g}s]; "
                 f"the estimate can be anywhere in it, so the tolerance is its width "
                 f"{upper - lower:g}s")


def prometheus_vs_logs(prometheus: prom.Prometheus, log_frame: pd.DataFrame, start: datetime,
                       end: datetime, quantile: float = 0.95) -> list[Check]:
    """Request count, 5xx count, error ratio and a latency quantile: Prometheus vs the access log.

    The access log and the histogram are written by the same hook with the same elapsed
    time, so the log is the ground truth for the histogram.
    """
    start, end = prom.require_aware(start, "start"), prom.require_aware(end, "end")
    access = logs.between(logs.access_lines(log_frame), pd.Timestamp(start), pd.Timestamp(end))
    errors, total = logs.status_share(access, r"5\d\d")
    exact = _exact_count_note(prometheus.scrape_interval_s)
    err_selector = f'{COUNT_SELECTOR}{{status=~"5.."}}'

    total_q = prom.run_increase_query(COUNT_SELECTOR, start, end)
    err_q = prom.run_increase_query(err_selector, start, end)
    observed_total = prom.counter_increase(prometheus, COUNT_SELECTOR, start, end)
    observed_errors = prom.counter_increase(prometheus, err_selector, start, end)
    ratio_observed = observed_errors / observed_total if observed_total else math.nan
    ratio_expected = errors / total if total else math.nan

    quantile_q = prom.run_quantile_query(quantile, start, end)
    observed_q = prometheus.scalar(quantile_q, end)
    expected_q = logs.quantile_ms(access[names.F_DURATION_MS], quantile) / 1000

    return [
        Check(total_q, total, observed_total, 0, "requests: access-log lines vs " + exact),
        Check(err_q, errors, observed_errors, 0, "5xx responses: access-log lines vs " + exact),
        Check(f"({err_q}) / ({total_q})", ratio_expected, ratio_observed, 0,
              "error ratio: both counts are exact, so the ratio is too"
              + ("" if total else "; no requests: the ratio is 0/0 (NaN) and cannot pass")),
        quantile_check(quantile_q, expected_q, observed_q),
    ]


def locust_vs_logs(stats: pd.DataFrame, log_frame: pd.DataFrame, start: datetime, end: datetime,
                   quantile: float = 0.95, failure_status: str = r"[45]\d\d") -> list[Check]:
    """Locust's Aggregated counts and a percentile against the access log of the same run.

    Locust counts a request as failed when its status is 4xx/5xx (its default, unless the
    locustfile decides otherwise: pass failure_status to match).
    """
    row = locust_stats.aggregated(stats)
    access = logs.between(logs.access_lines(log_frame), pd.Timestamp(prom.require_aware(start)),
                          pd.Timestamp(prom.require_aware(end)))
    failures, total = logs.status_share(access, failure_status)
    durations = access[names.F_DURATION_MS].dropna()
    column = locust_stats.percentile_column(quantile)
    expected = locust_stats.locust_percentile_ms(durations, quantile)
    step = locust_stats.bucket_step_ms(max(expected, 1.0)) if not math.isnan(expected) else math.nan
    overhead = max(0.0, float(row["Average Response Time"]) - float(durations.mean()))
    return [
        Check("locust Aggregated 'Request Count'", total, float(row["Request Count"]), 0,
              "every request Locust sent and got an answer to is one access-log line: exact"),
        Check("locust Aggregated 'Failure Count'", failures, float(row["Failure Count"]), 0,
              f"Locust fails statuses matching {failure_status}; counted the same way in the log"),
        Check(f"locust Aggregated '{column}' (ms)", expected, float(row[column]), step + overhead,
              f"expected: the server's duration_ms rounded and ranked as Locust does; tolerance: "
              f"Locust's rounding step {step:g} ms at this magnitude plus the client-side overhead "
              f"{overhead:.2f} ms (Locust's average minus the log's average: network and queueing "
              "the server does not time; assumed about constant per request)"),
    ]


def known_truth(prometheus: prom.Prometheus, start: datetime, end: datetime, requests: int,
                errors: int) -> list[Check]:
    """Prometheus against counts the caller knows it sent (e.g. an injected error rate)."""
    exact = _exact_count_note(prometheus.scrape_interval_s)
    err_selector = f'{COUNT_SELECTOR}{{status=~"5.."}}'
    observed_total = prom.counter_increase(prometheus, COUNT_SELECTOR, start, end)
    observed_errors = prom.counter_increase(prometheus, err_selector, start, end)
    return [
        Check(prom.run_increase_query(COUNT_SELECTOR, start, end), requests, observed_total, 0,
              "requests sent vs " + exact),
        Check(prom.run_increase_query(err_selector, start, end), errors, observed_errors, 0,
              "5xx answers provoked vs " + exact),
    ]


# --- correlation ---------------------------------------------------------------------------

def trace_id_from_traceparent(header: str | None) -> str | None:
    """The trace id (32 lowercase hex) of a W3C traceparent header, or None if malformed."""
    parts = (header or "").strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32:
        return None
    try:
        int(parts[1], 16)
    except ValueError:
        return None
    return parts[1].lower()


def correlate(log_frame: pd.DataFrame, spans: list[Span],
              headers: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per traced access line, joined to its server span (trace_id) and response headers.

    Probes and scrapes (/healthz, /metrics: app/observability/tracing.py) are not traced on
    purpose: their lines carry no trace id and are left out.

    headers, when given, has columns request_id and traceparent as a client saw them.
    Columns added: span_name, span_duration_ms, in_trace (a span with that trace id exists),
    header_trace_id and header_matches (the header's trace id equals the log's).
    """
    access = logs.access_lines(log_frame)
    access = access[access[names.F_TRACE_ID].notna()].reset_index(drop=True)
    server = pd.DataFrame(
        [{names.F_TRACE_ID: s.trace_id, "span_name": s.name, "span_duration_ms": s.duration_ms}
         for s in spans if s.kind == "SERVER" and s.parent_id is None],
        columns=[names.F_TRACE_ID, "span_name", "span_duration_ms"],
    ).drop_duplicates(names.F_TRACE_ID).astype({names.F_TRACE_ID: "string"})
    joined = access.merge(server, on=names.F_TRACE_ID, how="left")
    traced = {s.trace_id for s in spans}
    joined["in_trace"] = joined[names.F_TRACE_ID].isin(traced)
    if headers is not None:
        hdr = headers[[names.F_REQUEST_ID, "traceparent"]].copy()
        hdr["header_trace_id"] = hdr["traceparent"].map(trace_id_from_traceparent).astype("string")
        hdr[names.F_REQUEST_ID] = hdr[names.F_REQUEST_ID].astype("string")
        joined = joined.merge(hdr[[names.F_REQUEST_ID, "header_trace_id"]],
                              on=names.F_REQUEST_ID, how="left")
        same = joined["header_trace_id"] == joined[names.F_TRACE_ID]
        joined["header_matches"] = same.fillna(False).astype(bool)
    return joined


def correlation_checks(joined: pd.DataFrame) -> list[Check]:
    """Every access line with a trace id has its trace; every header agrees with its log line."""
    with_trace = joined[joined[names.F_TRACE_ID].notna()]
    checks = [Check("access lines whose trace_id has spans", len(with_trace),
                    float(with_trace["in_trace"].sum()), 0,
                    "the log's trace_id is the same string as the span's: every traced request "
                    "must be found (spans still buffered at the end would be missing)")]
    if "header_matches" in joined.columns:
        with_header = joined[joined["header_trace_id"].notna()]
        checks.append(Check("traceparent header trace id == log trace_id", len(with_header),
                            float(with_header["header_matches"].sum()), 0,
                            "the response header and the access line are written in the same "
                            "request from the same span: they must agree exactly"))
    return checks
