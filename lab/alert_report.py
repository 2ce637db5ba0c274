"""The report's alert section for a recorded load run (what `lab demo` adds to its report)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from analysis import alert_rules, alerting
from analysis.lab_context import RunRecord
from app.observability import names
from lab.loadrun import prometheus_client
from stack import alertmanager_config, processes
from stack.config import LabConfig

# After the load, how long to wait at most for alerts still firing to resolve.
RESOLVE_WAIT_S = 120.0


def alert_section(config: LabConfig, record: RunRecord) -> str:
    """The alert timeline against the run's faults and load, with predicted and measured
    detection delays; first waits (bounded) for alerts that should resolve to do so."""
    path = config.log_dir / names.ALERTS_LOG
    client = prometheus_client(config)
    timers = alert_rules.config_timers(config.var_dir)
    if record.faults:
        # Wait as long as the latest predicted resolution of what should have fired.
        _, drawn = alerting.run_detection(client, alerting.load_alerts(path), record.faults,
                                          record.start, timers)
        longest = max((p.resolved.latest_s for _, p in drawn.values()
                       if p.resolved and p.resolved.latest_s < float("inf")), default=0.0)
        deadline = max(f.off for f in record.faults).timestamp() + min(longest, RESOLVE_WAIT_S)
        while alerting.alert_intervals(alerting.load_alerts(path))["resolved"].isna().any():
            if time.time() >= deadline:
                print("alerts still firing; the report shows them as they are", flush=True)
                break
            print("waiting for firing alerts to resolve ...", flush=True)
            time.sleep(5)
    try:
        metrics = processes.http_session().get(f"{alertmanager_config.url(config)}/metrics", timeout=5).text
    except OSError:
        metrics = ""
    processing = alerting.processing_allowance(client, record.start, datetime.now(UTC),
                                               alerting.alertmanager_notification_latency(metrics))
    return alerting.report_section(client, alerting.load_alerts(path), record.faults, record.start,
                                   datetime.now(UTC), timers, processing)
