"""Alert timing, measured on the real stack: `lab up` (web, worker, Caddy, the alert receiver,
Alertmanager, Prometheus), `lab fault set error_rate=0.5` under steady traffic, and the
notifications must arrive within the bounds analysis.alert_rules predicts from the rendered
configuration of this very lab; `lab fault clear`, and the resolved ones too.

The bounds are the model's (analysis/alert_rules.py): every timer phase at its extremes, the
bad share allowed its binomial noise, plus the processing time this run actually took
(longest scrape, rule evaluation and alert dispatch as Prometheus measured them, and
Alertmanager's slowest webhook post), which is what a loaded machine stretches. Nothing
here is a hand-tuned number.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from analysis import alert_rules, alerting, prom
from app.observability import names
from tests.support.launcher import lab_env, lab_stack, run_lab
from tests.support.processes import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.skipif(
    not all(shutil.which(p) for p in ("caddy", "prometheus", "amtool")),
    reason="the Debian packages caddy, prometheus and prometheus-alertmanager are needed "
           "(stack/install-system-deps.sh)",
)]

ALERTS = ("HighErrorRate", "AvailabilityFastBurn")
BAD_SHARE = 0.5  # lab fault set error_rate=0.5
TARGET_RATE = 10.0  # requests per second the driver aims at
LEAD_S = 20.0  # seconds of traffic before the fault


@dataclass
class Traffic:
    """A paced client through Caddy: counts what it sent, until stopped."""

    url: str
    sent: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        session = requests.Session()
        session.trust_env = False
        next_at = time.monotonic()
        while not self.stop.is_set():
            try:
                self.statuses.append(session.get(self.url, timeout=10).status_code)
                self.sent.append(time.time())
            except requests.RequestException:
                pass
            next_at += 1 / TARGET_RATE
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def rate(self, start: float, end: float) -> float:
        """Requests per second sent between two unix times."""
        return sum(start <= t < end for t in self.sent) / (end - start)


def notifications(path: Path) -> list[dict[str, object]]:
    """The receiver's lines so far."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def first(path: Path, alert: str, status: str, after: float) -> dict[str, object] | None:
    """The first notification of alert with status received after a unix time."""
    for line in notifications(path):
        received = datetime.fromisoformat(str(line[names.A_RECEIVED])).timestamp()
        if line[names.A_ALERTNAME] == alert and line[names.A_STATUS] == status and received > after:
            return line
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The whole local stack on free ports."""
    env = lab_env(tmp_path_factory.mktemp("alert-timing") / "var")
    with lab_stack(env) as up:
        assert up.code == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}"
        yield env


def test_error_rate_fault_notifies_within_the_predicted_delays(lab: dict[str, str]) -> None:
    """Firing within the predicted bounds of fault on, resolved within those of fault off."""
    var_dir = Path(lab["VAR_DIR"])
    alerts_file = var_dir / "log" / names.ALERTS_LOG
    faults_file = var_dir / "faults.json"
    prom_url = f"http://127.0.0.1:{lab['PROMETHEUS_PORT']}"
    am_url = f"http://127.0.0.1:{lab['ALERTMANAGER_PORT']}"
    session = requests.Session()
    session.trust_env = False
    # Prometheus delivers to this lab's Alertmanager (what `curl :9090/api/v1/alertmanagers` shows).
    managers = session.get(f"{prom_url}/api/v1/alertmanagers", timeout=5).json()["data"]
    assert [m["url"] for m in managers["activeAlertmanagers"]] == [f"{am_url}/api/v2/alerts"]
    stack_started = datetime.now(UTC)

    traffic = Traffic(f"http://127.0.0.1:{lab['CADDY_PORT']}/api/todos")
    driver = threading.Thread(target=traffic.run, daemon=True)
    driver.start()
    try:
        time.sleep(LEAD_S)
        assert run_lab(lab, "fault", "set", f"error_rate={BAD_SHARE}").code == 0
        fault_on = faults_file.stat().st_mtime  # written atomically: the moment it took effect
        client_lead = fault_on - traffic.sent[0]
        # Every request the web app answered before the fault (the launcher's health checks
        # too) could sit in a window: at most that much traffic "before" the fault.
        prometheus = prom.Prometheus(prom_url)
        wait_until(lambda: time.time() > fault_on + 1, 5, "a moment")

        rules = {r.name: r for r in alert_rules.load_rules()}
        timers = alert_rules.Timers.from_config(var_dir / "prometheus" / "prometheus.yml",
                                             var_dir / "alertmanager" / "alertmanager.yml")
        # The wait is generous; the assertion below is on the predicted bounds.
        rough = max(alert_rules.predict(rules[a], timers, BAD_SHARE).firing.latest_s  # type: ignore[union-attr]
                    for a in ALERTS)
        wait_until(lambda: all(first(alerts_file, a, "firing", fault_on) for a in ALERTS),
                   rough * 2 + 60, f"firing notifications of {ALERTS}", interval=0.5)
        fired = {a: first(alerts_file, a, "firing", fault_on) for a in ALERTS}
        rate_during = traffic.rate(fault_on, time.time())
        answered_before = prometheus.scalar(
            f'sum(max_over_time({names.HTTP_REQUEST_DURATION}_count{{job="web"}}[10m] @ {fault_on:.3f}))')

        assert run_lab(lab, "fault", "clear").code == 0
        fault_off = faults_file.stat().st_mtime
        rough = max(alert_rules.predict(rules[a], timers, BAD_SHARE).resolved.latest_s  # type: ignore[union-attr]
                    for a in ALERTS)
        wait_until(lambda: all(first(alerts_file, a, "resolved", fault_off) for a in ALERTS),
                   rough * 2 + 60, f"resolved notifications of {ALERTS}", interval=0.5)
        resolved = {a: first(alerts_file, a, "resolved", fault_off) for a in ALERTS}
        rate = min(rate_during, traffic.rate(fault_off, time.time()))
    finally:
        traffic.stop.set()
        driver.join(10)

    # What this run's processing took, measured by Prometheus and Alertmanager themselves.
    webhook = alerting.alertmanager_notification_latency(session.get(f"{am_url}/metrics", timeout=5).text)
    processing = alerting.processing_allowance(prometheus, stack_started, datetime.now(UTC), webhook)
    lead = (max(client_lead, 0.0), max(client_lead, answered_before / rate))
    report = []
    for alert in ALERTS:
        predicted = alert_rules.predict(rules[alert], timers, BAD_SHARE, lead_s=lead,
                                     request_rate=rate, processing_s=processing)
        assert predicted.firing is not None and predicted.resolved is not None
        fire_note, resolve_note = fired[alert], resolved[alert]
        assert fire_note is not None and resolve_note is not None
        fire_delay = datetime.fromisoformat(str(fire_note[names.A_RECEIVED])).timestamp() - fault_on
        resolve_delay = datetime.fromisoformat(str(resolve_note[names.A_RECEIVED])).timestamp() - fault_off
        report.append(f"{alert}: fired after {fire_delay:.1f} s (predicted {predicted.firing.earliest_s:.1f}"
                      f"-{predicted.firing.latest_s:.1f}), resolved after {resolve_delay:.1f} s "
                      f"(predicted {predicted.resolved.earliest_s:.1f}-{predicted.resolved.latest_s:.1f}); "
                      f"rate {rate:.1f}/s, lead {lead[0]:.0f}-{lead[1]:.0f} s, processing {processing:.2f} s")
        print(report[-1])
        assert predicted.firing.contains(fire_delay), report[-1]
        assert predicted.resolved.contains(resolve_delay), report[-1]
        # What a notebook reads: the labels, and Prometheus's own start and end times.
        labels = fire_note[names.A_LABELS]
        assert isinstance(labels, dict) and labels["alertname"] == alert and labels["job"] == "web"
        ends = datetime.fromisoformat(str(resolve_note[names.A_ENDS_AT]).replace("Z", "+00:00"))
        assert fault_off - 1 < ends.timestamp() <= datetime.fromisoformat(
            str(resolve_note[names.A_RECEIVED])).timestamp()
    # A cold start pages nobody: only the alerts of the injected fault were sent.
    sent = {str(line[names.A_ALERTNAME]) for line in notifications(alerts_file)}
    assert sent <= {*ALERTS, "AvailabilitySlowBurn"}, sent
    assert not math.isnan(rate) and rate > 1


def test_worker_down_inhibits_no_export_succeeding_in_the_notifications(lab: dict[str, str]) -> None:
    """Alertmanager's inhibition rule, live: with WorkerDown firing, NoExportSucceeding is held
    back (suppressed, inhibited by it) and never reaches the receiver; WorkerDown does.

    The two alerts are posted to the real Alertmanager's API by the test (Prometheus would
    need five minutes of failed exports to raise NoExportSucceeding).
    """
    var_dir = Path(lab["VAR_DIR"])
    alerts_file = var_dir / "log" / names.ALERTS_LOG
    am_url = f"http://127.0.0.1:{lab['ALERTMANAGER_PORT']}"
    session = requests.Session()
    session.trust_env = False
    now = datetime.now(UTC).isoformat()
    posted = [
        {"labels": {"alertname": "WorkerDown", "job": "worker", "severity": "page"}, "startsAt": now},
        {"labels": {"alertname": "NoExportSucceeding", "environment": "test", "severity": "ticket"},
         "startsAt": now},
    ]
    sent_at = time.time()
    assert session.post(f"{am_url}/api/v2/alerts", json=posted, timeout=5).status_code == 200
    timers = alert_rules.Timers.from_config(var_dir / "prometheus" / "prometheus.yml",
                                         var_dir / "alertmanager" / "alertmanager.yml")
    wait_until(lambda: first(alerts_file, "WorkerDown", "firing", sent_at) is not None,
               timers.group_wait_s * 3 + 30, "WorkerDown's notification", interval=0.5)
    # NoExportSucceeding's own group would have notified after the same group_wait.
    time.sleep(timers.group_wait_s)
    assert first(alerts_file, "NoExportSucceeding", "firing", sent_at) is None
    held = session.get(f"{am_url}/api/v2/alerts", params={"filter": 'alertname="NoExportSucceeding"'},
                       timeout=5).json()
    assert [a["status"]["state"] for a in held] == ["suppressed"]
    assert held[0]["status"]["inhibitedBy"], held
