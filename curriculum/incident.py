"""Inject a fault, provoke it, and check that what the telemetry shows matches what was injected.

Faults are switched through the lab's one switchboard client (stack.switchboard.FaultSwitch):
the file FAULTS_FILE (default $VAR_DIR/faults.json) that every web and worker process re-reads,
or, when FAULTS_TOKEN is set (compose), the token-protected admin route of the app.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import requests

from analysis import logs, prom
from analysis.lab_context import FaultWindow, LabContext, RunRecord
from analysis.verify import COUNT_SELECTOR, Check
from app.observability import names
from stack.switchboard import FaultSwitch

# A rate check allows this many binomial standard deviations: a correct injector fails it
# about once in 16,000 runs; a wrong rate of 0.1 vs 0.2 over 100 requests fails it.
SIGMAS = 4.0


def switch_for(context: LabContext) -> FaultSwitch:
    """The fault switchboard of the lab the notebook's context describes (its file, or the
    app's admin route when FAULTS_TOKEN is set: stack.switchboard says why)."""
    return FaultSwitch.for_env({**os.environ, "VAR_DIR": str(context.var_dir),
                                "LAB_APP_URL": context.app_url})


def provoke(app_url: str, path: str, count: int) -> pd.DataFrame:
    """GET path count times; one row per answer: status, request_id, trace_id (from traceparent)."""
    from analysis.verify import trace_id_from_traceparent

    rows = []
    with requests.Session() as session:
        session.trust_env = False  # loopback: never through a proxy from the environment
        for _ in range(count):
            answer = session.get(app_url + path, timeout=10)
            rows.append({names.F_STATUS: answer.status_code,
                         names.F_REQUEST_ID: answer.headers.get(names.REQUEST_ID_HEADER),
                         names.F_TRACE_ID: trace_id_from_traceparent(answer.headers.get("traceparent"))})
    return pd.DataFrame(rows)


def binomial_tolerance(rate: float, requests_: int) -> float:
    """SIGMAS standard deviations of an observed share of `requests_` draws at `rate`."""
    return SIGMAS * math.sqrt(rate * (1 - rate) / requests_) if requests_ else math.nan


def endpoint_errors(access: pd.DataFrame, endpoint: str) -> tuple[int, int]:
    """(5xx, all) access lines of one Flask endpoint."""
    mine = access[access[names.F_ENDPOINT] == endpoint]
    return logs.status_share(mine, r"5\d\d")


def fault_window_requests(log_frame: pd.DataFrame, run: RunRecord,
                          fault: FaultWindow) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """(inside, outside, slack_ms): the run's access lines of the fault's endpoint, split by its window.

    A request reads the switchboard when it starts and is logged when it ends: an answer
    that began inside the window can be logged up to one request duration after it, so the
    window is extended by the endpoint's longest duration (slack_ms).
    """
    access = logs.between(logs.access_lines(log_frame), pd.Timestamp(run.start), pd.Timestamp(run.end))
    mine = access[access[names.F_ENDPOINT] == fault.endpoint]
    slack_ms = float(mine[names.F_DURATION_MS].max()) if len(mine) else 0.0
    slack = timedelta(milliseconds=slack_ms)
    stamp = mine[names.F_TIMESTAMP]
    inside = mine[(stamp >= pd.Timestamp(fault.on)) & (stamp < pd.Timestamp(fault.off) + slack)]
    return inside, mine.drop(inside.index), slack_ms


def fault_window_checks(prometheus: prom.Prometheus, log_frame: pd.DataFrame, run: RunRecord,
                        fault: FaultWindow) -> list[Check]:
    """What an injected error_rate on one endpoint must look like in the logs and Prometheus."""
    endpoint = fault.endpoint
    if not fault.name.startswith("error_rate") or endpoint is None:
        raise ValueError(f"{fault.name}: only error_rate.ENDPOINT faults are checked here")
    inside, outside, slack_ms = fault_window_requests(log_frame, run, fault)
    errors_in, total_in = logs.status_share(inside, r"5\d\d")
    errors_out, _ = logs.status_share(outside, r"5\d\d")
    observed_rate = errors_in / total_in if total_in else math.nan
    tolerance = binomial_tolerance(fault.value, total_in)

    selector = f'{COUNT_SELECTOR}{{endpoint="{endpoint}",status=~"5.."}}'
    prom_errors = prom.counter_increase(prometheus, selector, run.start, run.end)
    return [
        Check(f"5xx of {endpoint} outside the fault window (access log)", 0, errors_out, 0,
              f"the fault was only in force from {fault.on:%H:%M:%S} to {fault.off:%H:%M:%S}; "
              f"a request is attributed to the window if logged up to its longest duration "
              f"({slack_ms:.0f} ms) after it ended"),
        Check(f"share of {endpoint} answered 5xx inside the window (access log)", fault.value,
              observed_rate, tolerance,
              f"injected {fault.name}={fault.value:g}; each of the {total_in} requests fails "
              f"independently, so the observed share is binomial: tolerance {SIGMAS:g} standard "
              f"deviations sqrt(p(1-p)/n)"),
        Check(prom.run_increase_query(selector, run.start, run.end), errors_in + errors_out,
              prom_errors, 0, f"5xx of {endpoint} in Prometheus vs the access log: exact counter "
              "difference between the run's quiet edges"),
    ]


def locust_endpoint_check(locust: pd.DataFrame, log_frame: pd.DataFrame, run: RunRecord,
                          endpoint: str, method: str, locust_name: str) -> Check:
    """Locust's failures of one request name against the 5xx the log saw on its endpoint."""
    from analysis.locust_json import endpoint_row

    access = logs.between(logs.access_lines(log_frame), pd.Timestamp(run.start), pd.Timestamp(run.end))
    errors, _ = endpoint_errors(access, endpoint)
    row = endpoint_row(locust, method, locust_name)
    return Check(f"locust {method} {locust_name!r} 'Failure Count'", errors,
                 float(row["Failure Count"]), 0,
                 f"every 5xx of {endpoint} is a Locust failure of {locust_name} (and a 200 "
                 "never is, for this read): the same requests counted at both ends")


@dataclass(frozen=True)
class ErrorShares:
    """One endpoint's 5xx share during a fault, computed the two ways that disagree, and why.

    window_share is what `sum(rate(5xx[W])) / sum(rate(all[W]))` says at the end of the fault:
    the window reaches back W, before the fault, and the requests made then (answered fine)
    count in the denominator only. fault_share is the exact counter difference between the
    fault's edges: the share of the requests made while the fault was on, what a client that
    sent only those requests saw.
    """

    endpoint: str
    window: str
    window_share: float  # the rate-based share over the trailing window
    window_requests: float  # requests of the endpoint in the trailing window (increase)
    fault_errors: float  # exact 5xx between the fault's edges
    fault_requests: float  # exact requests between the fault's edges
    fault_seconds: float
    client_share: float | None = None  # errors / sent as the client counted them, if given
    injected: float | None = None

    @property
    def fault_share(self) -> float:
        """5xx / requests between the fault's edges (NaN when there was no request)."""
        return self.fault_errors / self.fault_requests if self.fault_requests else math.nan

    @property
    def earlier_requests(self) -> float:
        """Requests in the trailing window made before the fault (none when the fault is longer)."""
        if self.fault_seconds >= prom.duration_seconds(self.window):
            return 0.0
        return max(0.0, self.window_requests - self.fault_requests)

    @property
    def diluted_share(self) -> float:
        """The window share predicted from the fault's errors over all the window's requests."""
        return self.fault_errors / self.window_requests if self.window_requests else math.nan

    def explanation(self) -> str:
        """Why the two numbers differ, in this run's numbers."""
        lines = [
            f"over the last {self.window} (rate): {self.window_share:.2f}; between the fault's "
            f"edges (exact counters): {self.fault_errors:.0f}/{self.fault_requests:.0f} = "
            f"{self.fault_share:.2f}",
        ]
        if self.client_share is not None:
            lines.append(f"the client saw {self.client_share:.2f}: the same requests as the "
                         "exact counter difference")
        if self.earlier_requests > 0:
            lines.append(
                f"the {self.window} window also holds about {self.earlier_requests:.0f} requests "
                f"made before the fault ({self.fault_seconds:.0f} s long), answered fine: they "
                f"add to the denominator only. {self.fault_errors:.0f} errors / "
                f"{self.window_requests:.0f} requests = {self.diluted_share:.2f}, the diluted share")
        if self.injected is not None:
            lines.append(f"injected: {self.injected:g}; each request fails independently, so "
                         "the share of n requests scatters around it by sqrt(p(1-p)/n)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explanation()


def error_shares(prometheus: prom.Prometheus, endpoint: str, fault_on: datetime,
                 fault_off: datetime, window: str = "1m", client_errors: int | None = None,
                 client_sent: int | None = None, injected: float | None = None) -> ErrorShares:
    """The endpoint's 5xx share during [fault_on, fault_off], both ways (see ErrorShares).

    fault_on and fault_off should be quiet edges (analysis.lab_context.quiet_edge) for the
    counter difference to be exact.
    """
    prom.check_rate_window(window, prometheus.scrape_interval_s)
    everything = f'{COUNT_SELECTOR}{{endpoint="{endpoint}"}}'
    failed = f'{COUNT_SELECTOR}{{endpoint="{endpoint}",status=~"5.."}}'
    total = f"sum(rate({everything}[{window}]))"
    share = prometheus.scalar(f"{prom.or_zero(f'sum(rate({failed}[{window}]))', total)} / {total}",
                              fault_off)
    in_window = prometheus.scalar(f"sum(increase({everything}[{window}]))", fault_off)
    client = client_errors / client_sent if client_errors is not None and client_sent else None
    return ErrorShares(
        endpoint, window, share, 0.0 if math.isnan(in_window) else in_window,
        prom.counter_increase(prometheus, failed, fault_on, fault_off),
        prom.counter_increase(prometheus, everything, fault_on, fault_off),
        (fault_off - fault_on).total_seconds(), client, injected)
