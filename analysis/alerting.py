"""Alerts and SLOs on a run: when an alert *did* fire (the notifications the lab recorded), the
measured delays against the prediction of analysis.alert_rules, the error budget a run spent,
and the charts and report section that show them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis import prom
from analysis.alert_rules import (
    ERRORS,
    LATENCY,
    Delay,
    ErrorBudget,
    Prediction,
    Timers,
    load_rules,
    objectives,
    predict,
    predict_all,
)
from analysis.lab_context import FaultWindow
from app.observability import names

if TYPE_CHECKING:
    from matplotlib.figure import Figure



def processing_allowance(prometheus: prom.Prometheus, start: datetime, end: datetime,
                         notification_s: float = 0.0) -> float:
    """Seconds of processing the timers do not cover, measured by Prometheus over the run:
    the longest scrape, the longest rule-group evaluation and Prometheus's slowest alert
    dispatch (its notification latency summary), plus notification_s for Alertmanager's
    webhook POST (see alertmanager_notification_latency)."""
    window = f"{max(int((end - start).total_seconds()), 1)}s"
    at = prom.require_aware(end, "end")
    parts = [
        f"max(max_over_time(scrape_duration_seconds[{window}]))",
        f"max(max_over_time(prometheus_rule_group_last_duration_seconds[{window}]))",
        f'max(max_over_time(prometheus_notifications_latency_seconds{{quantile="0.99"}}[{window}]))',
    ]
    total = notification_s
    for query in parts:
        value = prometheus.scalar(query, at)
        total += 0.0 if math.isnan(value) else value
    return total


def alertmanager_notification_latency(metrics_text: str) -> float:
    """Upper bound of Alertmanager's slowest webhook notification so far: the smallest bucket
    bound of alertmanager_notification_latency_seconds that holds every observation."""
    from prometheus_client.parser import text_string_to_metric_families

    worst = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "alertmanager_notification_latency_seconds":
            continue
        buckets: dict[str, list[tuple[float, float]]] = {}
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("integration") == "webhook":
                key = json.dumps({k: v for k, v in sample.labels.items() if k != "le"}, sort_keys=True)
                buckets.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
        for series in buckets.values():
            series.sort()
            total = series[-1][1]
            if total:
                bound = next(le for le, count in series if count >= total)
                worst = max(worst, bound if math.isfinite(bound) else series[-2][0])
    return worst


# --- what arrived --------------------------------------------------------------------------


def load_alerts(path: str | Path) -> pd.DataFrame:
    """alerts.jsonl as a frame: one row per alert per notification, times as UTC timestamps
    (received, startsAt, endsAt; endsAt is NaT while Alertmanager sets none)."""
    columns = [names.A_RECEIVED, names.A_STATUS, names.A_ALERTNAME, names.A_LABELS,
               names.A_ANNOTATIONS, names.A_STARTS_AT, names.A_ENDS_AT, names.A_FINGERPRINT]
    source = Path(path)
    lines = source.read_text(encoding="utf-8").splitlines() if source.is_file() else []
    frame = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
    if frame.empty:
        frame = pd.DataFrame(columns=columns)
    for column in (names.A_RECEIVED, names.A_STARTS_AT, names.A_ENDS_AT):
        # Alertmanager writes 0001-01-01T00:00:00Z for "no end": that is NaT, not a date.
        frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
        frame.loc[frame[column] < pd.Timestamp("1970-01-02", tz="UTC"), column] = pd.NaT
    return frame.sort_values(names.A_RECEIVED, ignore_index=True)


def alert_intervals(alerts: pd.DataFrame) -> pd.DataFrame:
    """One row per alert episode (alertname and fingerprint): first firing notification,
    the resolved notification that ended it (NaT while it still fires), startsAt, endsAt."""
    rows = []
    ordered = alerts.sort_values(names.A_RECEIVED)
    keys = [names.A_ALERTNAME, names.A_FINGERPRINT]
    for (alertname, fingerprint), notes in ordered.groupby(keys, sort=False):
        episode: dict[str, Any] | None = None
        for _, note in notes.iterrows():
            if note[names.A_STATUS] == "firing" and episode is None:
                episode = {"alert": alertname, "fingerprint": fingerprint,
                           "starts_at": note[names.A_STARTS_AT], "fired": note[names.A_RECEIVED],
                           "resolved": pd.NaT, "ends_at": pd.NaT}
            elif note[names.A_STATUS] == "resolved" and episode is not None:
                episode.update(resolved=note[names.A_RECEIVED], ends_at=note[names.A_ENDS_AT])
                rows.append(episode)
                episode = None
        if episode is not None:
            rows.append(episode)
    return pd.DataFrame(rows, columns=["alert", "fingerprint", "starts_at", "fired", "resolved", "ends_at"])


def measured_delays(alerts: pd.DataFrame, fault: FaultWindow, alertname: str) -> tuple[float, float]:
    """Seconds from fault on to the first firing notification of alertname after it, and
    from fault off to that episode's resolved notification (NaN when none arrived)."""
    episodes = alert_intervals(alerts)
    mine = episodes[(episodes["alert"] == alertname) & (episodes["fired"] >= pd.Timestamp(fault.on))]
    if mine.empty:
        return math.nan, math.nan
    first = mine.sort_values("fired").iloc[0]
    fired = (first["fired"] - pd.Timestamp(fault.on)).total_seconds()
    resolved = (first["resolved"] - pd.Timestamp(fault.off)).total_seconds() \
        if pd.notna(first["resolved"]) else math.nan
    return fired, resolved


def detection_table(alerts: pd.DataFrame, fault: FaultWindow, bad_shares: Mapping[str, float],
                    **options: Any) -> pd.DataFrame:
    """Predicted bounds against measured delays for one fault, per alert it should trigger."""
    predicted = predict_all(bad_shares, **options)
    rows = []
    for _, row in predicted.iterrows():
        fired, resolved = measured_delays(alerts, fault, row["alert"])
        rows.append({**row.to_dict(), "fired_after_s": fired, "resolved_after_s": resolved,
                     "fire_within": row["fire_earliest_s"] <= fired <= row["fire_latest_s"],
                     "resolve_within": row["resolve_earliest_s"] <= resolved <= row["resolve_latest_s"]})
    return pd.DataFrame(rows)



def error_budget(prometheus: prom.Prometheus, slo: str, start: datetime, end: datetime) -> ErrorBudget:
    """The budget of one SLO ("availability" or "latency") over [start, end], from exact
    counter differences of the web histogram."""
    objective = objectives()[slo]
    count = f"{names.HTTP_REQUEST_DURATION}_count"
    total = prom.counter_increase(prometheus, f'{count}{{job="web"}}', start, end)
    if slo == "availability":
        bad = prom.counter_increase(prometheus, f'{count}{{job="web",status=~"5.."}}', start, end)
    else:
        bucket = f'{names.HTTP_REQUEST_DURATION}_bucket{{job="web",le="{names.LATENCY_OBJECTIVE_SECONDS:g}"}}'
        bad = total - prom.counter_increase(prometheus, bucket, start, end)
    return ErrorBudget(objective, total, 0.0 if math.isnan(bad) else bad)


# --- a recorded load run --------------------------------------------------------------------


def fault_signal(fault: FaultWindow) -> str:
    """ERRORS for an error_rate fault; LATENCY for latency and slow_db (slower answers)."""
    return ERRORS if fault.name.startswith("error_rate") else LATENCY


def fault_episodes(faults: Sequence[FaultWindow], tolerance_s: float = 2.0) -> list[FaultWindow]:
    """Faults of one signal switched on and off together (within tolerance_s) as one episode
    (their names joined by " + "): alerts see the sum of them, not each one."""
    episodes: list[FaultWindow] = []
    for fault in sorted(faults, key=lambda f: f.on):
        for index, episode in enumerate(episodes):
            together = abs((fault.on - episode.on).total_seconds()) <= tolerance_s and \
                abs((fault.off - episode.off).total_seconds()) <= tolerance_s
            if together and fault_signal(fault) == fault_signal(episode) and fault.value == episode.value:
                episodes[index] = FaultWindow(f"{episode.name} + {fault.name}", episode.value,
                                              min(episode.on, fault.on), max(episode.off, fault.off))
                break
        else:
            episodes.append(fault)
    return episodes


def measured_bad_share(prometheus: prom.Prometheus, fault: FaultWindow) -> tuple[float, float]:
    """(share of all web requests the fault made bad, requests per second) over its window,
    from exact counter differences (an endpoint fault dilutes over the other endpoints)."""
    metric, objective = names.HTTP_REQUEST_DURATION, f"{names.LATENCY_OBJECTIVE_SECONDS:g}"
    total = prom.counter_increase(prometheus, f'{metric}_count{{job="web"}}', fault.on, fault.off)
    if fault_signal(fault) == ERRORS:
        bad = prom.counter_increase(prometheus, f'{metric}_count{{job="web",status=~"5.."}}',
                                    fault.on, fault.off)
    else:
        bad = total - prom.counter_increase(prometheus, f'{metric}_bucket{{job="web",le="{objective}"}}',
                                            fault.on, fault.off)
    seconds = (fault.off - fault.on).total_seconds()
    share = (0.0 if math.isnan(bad) else bad) / total if total else math.nan
    return share, total / seconds if seconds > 0 else math.nan


def _span(delay: Delay) -> str:
    if math.isinf(delay.latest_s):
        return f"{delay.earliest_s:.0f}- (near its threshold: may never fire)"
    return f"{delay.earliest_s:.0f}-{delay.latest_s:.0f}"




def run_detection(prometheus: prom.Prometheus, alerts: pd.DataFrame, faults: Sequence[FaultWindow],
                  run_start: datetime, timers: Timers, processing_s: float = 0.0,
                  ) -> tuple[pd.DataFrame, dict[str, tuple[FaultWindow, Prediction]]]:
    """Per fault of a load run and per alert on its signal: the measured bad share, the
    predicted firing and resolved delays, and the measured ones (seconds; NaN: none came).
    Also the predictions to draw (the first fault that should fire each alert)."""
    rows: list[dict[str, Any]] = []
    drawn: dict[str, tuple[FaultWindow, Prediction]] = {}
    rules = load_rules()
    for fault in fault_episodes(faults):
        share, rate = measured_bad_share(prometheus, fault)
        lead = (fault.on - run_start).total_seconds()
        for alert in rules:
            if alert.signal != fault_signal(fault) or math.isnan(share):
                continue
            predicted = predict(alert, timers, share, lead_s=lead, request_rate=rate or None,
                                processing_s=processing_s)
            fired, resolved = measured_delays(alerts, fault, alert.name)
            firing, clearing = predicted.firing, predicted.resolved
            if firing is not None:
                drawn.setdefault(alert.name, (fault, predicted))
            rows.append({
                "fault": f"{fault.name}={fault.value:g}", "alert": alert.name,
                "bad share": round(share, 3),
                "predicted firing (s)": _span(firing) if firing else "should not fire",
                "fired after (s)": round(fired, 1),
                "predicted resolved (s)": _span(clearing) if clearing else "",
                "resolved after (s)": round(resolved, 1),
                "as predicted": (firing is None and math.isnan(fired)) or bool(
                    firing and clearing and firing.contains(fired)
                    and (math.isnan(resolved) or clearing.contains(resolved))),
            })
    return pd.DataFrame(rows), drawn


# --- the timeline plot ---------------------------------------------------------------------


def plot_alert_timeline(prometheus: prom.Prometheus, alerts: pd.DataFrame, start: datetime,
                        end: datetime, faults: Iterable[FaultWindow] = (),
                        predictions: Mapping[str, tuple[FaultWindow, Prediction]] | None = None,
                        ) -> Figure:
    """Load and bad shares on top; below, one row per alert: a red bar from its firing to its
    resolved notification, and hatched boxes where the prediction for that fault puts them.
    Fault windows are shaded in both."""
    import matplotlib.pyplot as plt

    faults, predictions = list(faults), dict(predictions or {})
    fig, (load_ax, alert_ax) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                            gridspec_kw={"height_ratios": [2, 1.4]})
    lo, hi = start - timedelta(seconds=15), end + timedelta(seconds=15)
    window = f"{int(prom.MIN_SCRAPES_PER_WINDOW * prometheus.scrape_interval_s)}s"
    count = f'{names.HTTP_REQUEST_DURATION}_count{{job="web"}}'
    objective = f"{names.LATENCY_OBJECTIVE_SECONDS:g}"
    rate = prometheus.range(f"sum(rate({count}[{window}]))", lo, hi)
    if len(rate):
        load_ax.plot(rate["timestamp"], rate["value"], color="tab:blue", label="requests/s")
    load_ax.set_ylabel("requests/s")
    share_ax = load_ax.twinx()
    shares = (
        (f'sum(rate({names.HTTP_REQUEST_DURATION}_count{{job="web",status=~"5.."}}[{window}])) '
         f"/ sum(rate({count}[{window}]))", "5xx share", "tab:red"),
        (f'1 - sum(rate({names.HTTP_REQUEST_DURATION}_bucket{{job="web",le="{objective}"}}[{window}])) '
         f"/ sum(rate({count}[{window}]))", f"share slower than {objective} s", "tab:purple"),
    )
    for query, label, color in shares:
        frame = prometheus.range(query, lo, hi)
        if len(frame):
            share_ax.plot(frame["timestamp"], frame["value"], color=color, label=label)
    share_ax.set_ylim(0, 1.05)
    share_ax.set_ylabel(f"share (rate[{window}])")
    for index, fault in enumerate(faults):
        color = ("tab:orange", "tab:green", "tab:olive", "tab:cyan")[index % 4]
        for ax in (load_ax, alert_ax):
            ax.axvspan(pd.Timestamp(fault.on), pd.Timestamp(fault.off), color=color, alpha=0.15,
                       label=f"fault {fault.name}={fault.value:g}" if ax is load_ax else None)
    recent = alerts[alerts[names.A_RECEIVED] >= pd.Timestamp(lo)] if len(alerts) else alerts
    episodes = alert_intervals(recent)
    shown = sorted(set(episodes["alert"]) | set(predictions))
    for row, name in enumerate(shown):
        for _, episode in episodes[episodes["alert"] == name].iterrows():
            until = episode["resolved"] if pd.notna(episode["resolved"]) else pd.Timestamp(hi)
            alert_ax.barh(row, until - episode["fired"], left=episode["fired"], height=0.45,
                          color="tab:red", alpha=0.8)
        if name in predictions:
            fault, prediction = predictions[name]
            for moment, delay in ((fault.on, prediction.firing), (fault.off, prediction.resolved)):
                if delay is not None:
                    left = pd.Timestamp(moment) + timedelta(seconds=delay.earliest_s)
                    # A share near its threshold may never fire (latest_s inf): to the plot's edge.
                    right = min(delay.latest_s, (pd.Timestamp(hi) - pd.Timestamp(moment)).total_seconds())
                    alert_ax.barh(row, timedelta(seconds=max(right - delay.earliest_s, 0.0)), left=left,
                                  height=0.8, fill=False, hatch="//", edgecolor="black")
    alert_ax.set_yticks(range(len(shown)), shown)
    alert_ax.set_ylim(-0.7, max(len(shown), 1) - 0.3)
    alert_ax.set_xlabel("time (UTC)")
    alert_ax.set_title("red: firing notification to resolved notification; hatched: predicted "
                       "arrival of each", fontsize=9)
    handles, labels = load_ax.get_legend_handles_labels()
    more_handles, more_labels = share_ax.get_legend_handles_labels()
    load_ax.legend(handles + more_handles, labels + more_labels, loc="upper left", fontsize=8)
    load_ax.set_title("Load, bad shares and alerts against the fault windows")
    fig.tight_layout()
    return fig


def report_section(prometheus: prom.Prometheus, alerts: pd.DataFrame, faults: Sequence[FaultWindow],
                   start: datetime, end: datetime, timers: Timers, processing_s: float = 0.0) -> str:
    """An HTML section for a run's report: the alert timeline plot (embedded PNG) and the
    predicted-against-measured table, with how the bounds were built."""
    import base64
    import html
    import io

    import matplotlib.pyplot as plt

    table, drawn = run_detection(prometheus, alerts, faults, start, timers, processing_s)
    fig = plot_alert_timeline(prometheus, alerts, start, end, fault_episodes(faults), drawn)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    image = base64.b64encode(buffer.getvalue()).decode()
    sent = alert_intervals(alerts[(alerts[names.A_RECEIVED] >= pd.Timestamp(start))]) if len(alerts) \
        else alert_intervals(alerts)
    fired = ", ".join(sorted(set(sent["alert"]))) or "none"
    note = (
        f"Detection delay = seconds from the fault switched on to the firing notification the lab's "
        f"receiver recorded (and from off to resolved). Predicted bounds (analysis.alert_rules.predict) "
        f"from the running configuration: scrape every {timers.scrape_interval_s:g} s, rules every "
        f"{timers.evaluation_interval_s:g} s, each rule's windows and for:, group_wait "
        f"{timers.group_wait_s:g} s, group_interval {timers.group_interval_s:g} s, the fault's "
        f"measured share of bad requests with its binomial noise, plus {processing_s:.2f} s of "
        f"processing measured by Prometheus during the run. Alerts notified during the run: {fired}."
    )
    rows = table.to_html(index=False, na_rep="-", border=0) if len(table) else "<p>no fault injected</p>"
    return (f'<section class="alerts"><h2>Alerts against the faults</h2><p>{html.escape(note)}</p>'
            f'<img alt="alert timeline against the fault windows and the load" '
            f'src="data:image/png;base64,{image}">{rows}</section>')

