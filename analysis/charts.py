"""The plots the notebooks show: latency against the objective, error rate, job outcomes.

Each function queries Prometheus over a run's window and draws on one matplotlib Axes,
shading the windows when a fault was injected, so a learner sees cause and effect.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from analysis import prom
from analysis.lab_context import FaultWindow
from app.observability import names

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def rate_window(prometheus: prom.Prometheus) -> str:
    """The shortest rate window that spans four scrapes (whole seconds), e.g. 20s at 5 s."""
    seconds = int(prom.MIN_SCRAPES_PER_WINDOW * prometheus.scrape_interval_s)
    return prom.check_rate_window(f"{max(seconds, 1)}s", prometheus.scrape_interval_s)


def _axes(ax: Axes | None) -> Axes:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.5))
    return ax


def _shade(ax: Axes, faults: Iterable[FaultWindow]) -> None:
    """Shade each fault window and label it once."""
    for index, fault in enumerate(faults):
        ax.axvspan(pd.Timestamp(fault.on), pd.Timestamp(fault.off), color="tab:orange",
                   alpha=0.15, label=f"fault {fault.name}={fault.value:g}" if index == 0 else None)


def _padded(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The window with a little margin, so the rate's ramp up and down is visible."""
    return start - timedelta(seconds=10), end + timedelta(seconds=10)


def plot_latency(prometheus: prom.Prometheus, start: datetime, end: datetime,
                 faults: Iterable[FaultWindow] = (), ax: Axes | None = None) -> pd.DataFrame:
    """p50 and p95 latency over time with the objective line; returns the plotted frame."""
    ax = _axes(ax)
    window = rate_window(prometheus)
    lo, hi = _padded(start, end)
    frames = []
    for quantile in (0.5, 0.95):
        query = prom.p95_latency_query(window, quantile)
        frame = prom.evaluate_range(prometheus, query, lo, hi).assign(series=query.name)
        frames.append(frame)
        ax.plot(frame["timestamp"], frame["value"], label=query.name)
    ax.axhline(names.LATENCY_OBJECTIVE_SECONDS, color="tab:red", linestyle="--",
               label=f"objective {names.LATENCY_OBJECTIVE_SECONDS:g} s")
    _shade(ax, faults)
    ax.set_ylabel("seconds")
    ax.set_title(f"Request latency (histogram_quantile over rate[{window}])")
    ax.legend(loc="upper left")
    return pd.concat(frames, ignore_index=True)


def plot_error_rate(prometheus: prom.Prometheus, start: datetime, end: datetime,
                    faults: Iterable[FaultWindow] = (), ax: Axes | None = None) -> pd.DataFrame:
    """Share of 5xx per endpoint over time (endpoints that had any), fault windows shaded."""
    ax = _axes(ax)
    window = rate_window(prometheus)
    metric = f"{names.HTTP_REQUEST_DURATION}_count"
    query = (f'sum by (endpoint) (rate({metric}{{status=~"5.."}}[{window}])) '
             f"/ sum by (endpoint) (rate({metric}[{window}]))")
    lo, hi = _padded(start, end)
    frame = prometheus.range(query, lo, hi)
    for endpoint, group in frame.groupby("endpoint") if len(frame) else []:
        ax.plot(group["timestamp"], group["value"], label=str(endpoint))
    overall = prom.evaluate_range(prometheus, prom.error_rate_query(window), lo, hi)
    ax.plot(overall["timestamp"], overall["value"], color="black", linewidth=2, label="all endpoints")
    _shade(ax, faults)
    ax.set_ylabel("share of requests answered 5xx")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Error rate per endpoint (rate[{window}] of 5xx / all)")
    ax.legend(loc="upper left", fontsize="small")
    return frame


def plot_request_rate(prometheus: prom.Prometheus, start: datetime, end: datetime,
                      faults: Iterable[FaultWindow] = (), ax: Axes | None = None) -> pd.DataFrame:
    """Requests per second over time, all endpoints together."""
    ax = _axes(ax)
    window = rate_window(prometheus)
    lo, hi = _padded(start, end)
    frame = prom.evaluate_range(prometheus, prom.request_rate_query(window), lo, hi)
    ax.plot(frame["timestamp"], frame["value"], label="requests/s")
    _shade(ax, faults)
    ax.set_ylabel("requests / s")
    ax.set_title(f"Request rate (sum of rate[{window}])")
    ax.legend(loc="upper left")
    return frame


def job_outcomes(prometheus: prom.Prometheus, start: datetime, end: datetime) -> pd.Series:
    """Background jobs per status counted between start and end (exact counter differences)."""
    statuses = (names.JOB_ENQUEUED, names.JOB_STARTED, names.JOB_SUCCEEDED, names.JOB_FAILED,
                names.JOB_RETRIED)
    return pd.Series({status: prom.counter_increase(
        prometheus, f'{names.BACKGROUND_JOBS}{{status="{status}"}}', start, end)
        for status in statuses}, name="jobs")


def plot_job_outcomes(prometheus: prom.Prometheus, start: datetime, end: datetime,
                      ax: Axes | None = None) -> pd.Series:
    """A bar per job status: how many exports were enqueued, started, succeeded, failed, retried."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    counts = job_outcomes(prometheus, start, end)
    colours = ["tab:gray", "tab:blue", "tab:green", "tab:red", "tab:orange"]
    ax.bar(counts.index, counts.to_numpy(), color=colours)
    ax.set_ylabel("jobs")
    ax.set_title("Background job outcomes during the run")
    return counts


def plot_rate_windows(prometheus: prom.Prometheus, template: str, windows: Iterable[str],
                      start: datetime, end: datetime, faults: Iterable[FaultWindow] = (),
                      ax: Axes | None = None, step_s: float | None = None,
                      title: str = "the same query, one line per rate window") -> pd.DataFrame:
    """One line per rate window of the same query (`{w}` in template stands for it), fault shaded.

    The windows are not checked against the scrape interval: showing what a too-short
    window does is the point. Returns the plotted points with a `window` column.
    """
    ax = _axes(ax)
    lo, hi = _padded(start, end)
    frames = []
    for window in windows:
        frame = prometheus.range(template.replace("{w}", window), lo, hi, step_s).assign(window=window)
        frames.append(frame)
        ax.plot(frame["timestamp"], frame["value"], marker=".", markersize=3, label=f"[{window}]")
    _shade(ax, faults)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_latency_by_endpoint(prometheus: prom.Prometheus, start: datetime, end: datetime,
                             quantile: float = 0.95, ax: Axes | None = None,
                             endpoints: Iterable[str] | None = None) -> pd.DataFrame:
    """One latency-quantile line per endpoint (keep `le` and `endpoint`), objective dashed."""
    ax = _axes(ax)
    window = rate_window(prometheus)
    query = (f"histogram_quantile({quantile:g}, sum by (le, endpoint) "
             f"(rate({names.HTTP_REQUEST_DURATION}_bucket[{window}])))")
    frame = prometheus.range(query, *_padded(start, end))
    wanted = set(endpoints) if endpoints is not None else None
    for endpoint, group in frame.groupby("endpoint") if len(frame) else []:
        if wanted is None or endpoint in wanted:
            ax.plot(group["timestamp"], group["value"], label=str(endpoint))
    ax.axhline(names.LATENCY_OBJECTIVE_SECONDS, color="tab:red", linestyle="--",
               label=f"objective {names.LATENCY_OBJECTIVE_SECONDS:g} s")
    ax.set_ylabel("seconds")
    ax.set_title(f"p{quantile * 100:g} latency per endpoint (rate[{window}])")
    ax.legend(loc="upper left", fontsize="small")
    return frame
