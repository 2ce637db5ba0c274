"""analysis.alert_rules, analysis.alerting and the alert receiver, without a running stack:
the configuration is read as Prometheus and Alertmanager read it, the delay model's
arithmetic, the receiver's records as a notebook loads them, and the error budget."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests

from analysis import alert_rules, alerting
from analysis.lab_context import FaultWindow
from app.observability import names
from stack import alert_receiver
from tests.support.promdata import FAULT, RecordedPrometheus, requests_between

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> dict[str, alert_rules.AlertRule]:
    """The lab's alerting rules by name."""
    return {r.name: r for r in alert_rules.load_rules()}


@pytest.fixture(scope="module")
def timers() -> alert_rules.Timers:
    """The configured intervals."""
    return alert_rules.Timers.from_config()


def test_the_timers_come_from_the_config_files_and_are_lab_sized(timers: alert_rules.Timers) -> None:
    """Scrape and evaluation every 5 s; Alertmanager waits seconds, not minutes."""
    assert (timers.scrape_interval_s, timers.evaluation_interval_s) == (5.0, 5.0)
    assert 0 < timers.group_wait_s < timers.group_interval_s <= 60
    assert timers.group_interval_s < timers.repeat_interval_s <= 600
    # Alertmanager checks repeats on group_interval ticks.
    assert timers.repeat_interval_s % timers.group_interval_s == 0


def test_objectives_are_stated_once_in_the_rules() -> None:
    """99% not 5xx and 95% under 0.25 s, read from todo-slo.yml."""
    assert alert_rules.objectives() == {"availability": 0.99, "latency": 0.95}


def test_burn_rate_alerts_are_the_workbooks_windows_scaled_down(
        rules: dict[str, alert_rules.AlertRule]) -> None:
    """Fast: 14.4x over 1h and 5m; slow: 6x over 6h and 30m; both divided by the lab's scale."""
    assert alert_rules.burn_rate_threshold(0.02, timedelta(hours=1)) == pytest.approx(14.4)
    assert alert_rules.burn_rate_threshold(0.05, timedelta(hours=6)) == pytest.approx(6.0)
    scale = alert_rules.LAB_TIME_SCALE
    expected = {
        "AvailabilityFastBurn": (14.4 * 0.01, [3600 / scale, 300 / scale], "errors"),
        "AvailabilitySlowBurn": (6 * 0.01, [6 * 3600 / scale, 1800 / scale], "errors"),
        "LatencyFastBurn": (14.4 * 0.05, [3600 / scale, 300 / scale], "latency"),
        "LatencySlowBurn": (6 * 0.05, [6 * 3600 / scale, 1800 / scale], "latency"),
    }
    for name, (threshold, windows, signal) in expected.items():
        alert = rules[name]
        assert [c.window_s for c in alert.conditions] == windows, name
        assert all(c.threshold == pytest.approx(threshold) for c in alert.conditions), name
        assert alert.signal == signal and alert.for_s == 0, name
    assert rules["HighErrorRate"].conditions[0].threshold == pytest.approx(0.05)
    assert rules["LatencyObjectiveBreached"].conditions[0].threshold == pytest.approx(0.05)
    assert rules["HighErrorRate"].reads_other_group  # its ratio is recorded by todo-http
    assert not rules["AvailabilityFastBurn"].reads_other_group


def test_every_alert_is_understood_by_the_model(rules: dict[str, alert_rules.AlertRule]) -> None:
    """A ratio alert has its conditions parsed; only scrape-failure style alerts have none."""
    for alert in rules.values():
        uses_ratio = ":ratio_rate" in alert.expr or ":p95_" in alert.expr
        assert bool(alert.conditions) == uses_ratio, alert.name
    instant = {a.name for a in rules.values() if not a.conditions}
    assert instant == {"WorkerDown", "NoExportSucceeding", "WebReplicaDown"}


def test_an_instant_alert_is_for_plus_group_wait_plus_one_scrape_and_evaluation(
    rules: dict[str, alert_rules.AlertRule], timers: alert_rules.Timers,
) -> None:
    """WorkerDown: 30 s of `for` and the group_wait always; a scrape and an evaluation at most."""
    found = alert_rules.predict(rules["WorkerDown"], timers, processing_s=1.5)
    assert found.firing is not None and found.resolved is not None
    assert found.firing.earliest_s == 30 + timers.group_wait_s
    assert found.firing.latest_s == 30 + timers.group_wait_s + 5 + 5 + 1.5
    assert found.resolved.earliest_s == 0
    assert found.resolved.latest_s == 5 + 5 + timers.group_interval_s + 1.5


def test_a_burn_rate_alert_waits_for_its_long_window_and_resets_with_its_short_one(
    rules: dict[str, alert_rules.AlertRule], timers: alert_rules.Timers,
) -> None:
    """Half the requests fail, full windows: the 6m window needs 0.288 x 360 s = 104 s; after
    the fault the 30s window drains below 14.4% in 30 x (1 - 0.288) = 21 s."""
    found = alert_rules.predict(rules["AvailabilityFastBurn"], timers, bad_share=0.5)
    assert found.firing is not None and found.resolved is not None
    fill = found.firing.terms["window filling"]
    assert fill[0] == pytest.approx(0.288 * 355 - 5) and fill[1] == pytest.approx(0.288 * 360)
    assert found.firing.latest_s == pytest.approx(0.288 * 360 + 10 + 5 + timers.group_wait_s)
    drain = found.resolved.terms["window draining"]
    assert drain[1] == pytest.approx(30 * (1 - 0.288))
    assert found.resolved.latest_s == pytest.approx(30 * 0.712 + 5 + 5 + timers.group_interval_s)


def test_traffic_that_began_just_before_the_fault_fills_the_window_sooner(
    rules: dict[str, alert_rules.AlertRule], timers: alert_rules.Timers,
) -> None:
    """With 20 s of traffic before the fault, 10% of a 1m window means 2.2 s of errors, not 6."""
    full = alert_rules.predict(rules["HighErrorRate"], timers, bad_share=0.5)
    early = alert_rules.predict(rules["HighErrorRate"], timers, bad_share=0.5, lead_s=20)
    assert early.firing is not None and full.firing is not None
    assert early.firing.terms["window filling"][1] == pytest.approx(0.1 * 25 / 0.9)
    assert full.firing.terms["window filling"][1] == pytest.approx(6.0)
    # HighErrorRate reads a series another group records: one more evaluation at worst.
    assert full.firing.terms["evaluation"] == (0.0, 10.0)


def test_a_fault_too_weak_for_the_threshold_is_predicted_not_to_fire(
    rules: dict[str, alert_rules.AlertRule], timers: alert_rules.Timers,
) -> None:
    """10% errors never cross the fast burn's 14.4%; near the threshold, noise decides."""
    assert alert_rules.predict(rules["AvailabilityFastBurn"], timers, bad_share=0.10).firing is None
    # 16% against 14.4% at 2 requests/s: within the noise, it may fire late or never.
    near = alert_rules.predict(rules["AvailabilityFastBurn"], timers, bad_share=0.16, request_rate=2)
    assert near.firing is not None and math.isinf(near.firing.latest_s)
    noisy = alert_rules.predict(rules["AvailabilityFastBurn"], timers, bad_share=0.5, request_rate=5)
    exact = alert_rules.predict(rules["AvailabilityFastBurn"], timers, bad_share=0.5)
    assert noisy.firing is not None and exact.firing is not None
    assert noisy.firing.earliest_s < exact.firing.earliest_s <= exact.firing.latest_s < noisy.firing.latest_s
    with pytest.raises(ValueError, match="bad_share"):
        alert_rules.predict(rules["HighErrorRate"], timers)


def test_predict_all_tabulates_the_alerts_of_a_signal() -> None:
    """A latency fault predicts only latency alerts; the slow burn fires, the fast one not at 50%."""
    table = alert_rules.predict_all({"latency": 0.5}).set_index("alert")
    assert set(table.index) == {"LatencyObjectiveBreached", "LatencyFastBurn", "LatencySlowBurn"}
    assert math.isnan(table.loc["LatencyFastBurn", "fire_latest_s"])
    assert table.loc["LatencySlowBurn", "fire_earliest_s"] <= table.loc["LatencySlowBurn", "fire_latest_s"]


def test_error_budget_arithmetic() -> None:
    """1,000 requests at 99%: 10 may fail; 4 failed leaves 60% of the budget, burn rate 0.4."""
    budget = alert_rules.ErrorBudget(objective=0.99, total=1000, bad=4)
    assert budget.allowed == pytest.approx(10)
    assert budget.remaining == pytest.approx(0.6)
    assert budget.burn_rate == pytest.approx(0.4)
    assert alert_rules.ErrorBudget(0.99, 1000, 25).remaining == pytest.approx(-1.5)
    assert math.isnan(alert_rules.ErrorBudget(0.99, 0, 0).remaining)


def test_durations_are_read_like_prometheus_reads_them() -> None:
    assert alert_rules.duration_s("1m30s") == 90
    assert alert_rules.duration_s("250ms") == 0.25
    assert alert_rules.duration_s(None, 60) == 60
    with pytest.raises(ValueError):
        alert_rules.duration_s("5 minutes")


# --- the receiver --------------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The receiver on a free port in this process, recording into tmp_path."""
    path = tmp_path / "log" / names.ALERTS_LOG
    with alert_receiver.serve("127.0.0.1", 0, path) as server:
        yield server.url, path


def webhook(status: str, alerts: list[dict[str, object]]) -> dict[str, object]:
    """A payload shaped like Alertmanager 0.25's webhook (version 4)."""
    return {"version": "4", "groupKey": '{}:{alertname="HighErrorRate"}', "status": status,
            "receiver": "lab-recorder", "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
            "truncatedAlerts": 0, "alerts": alerts}


def an_alert(status: str, starts: datetime, ends: str, fingerprint: str = "f1",
             environment: str = "test") -> dict[str, object]:
    return {"status": status, "labels": {"alertname": "HighErrorRate", "severity": "page",
                                         "job": "web", "environment": environment},
            "annotations": {"summary": "errors"}, "startsAt": starts.isoformat().replace("+00:00", "Z"),
            "endsAt": ends, "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint}


def test_the_receiver_records_one_line_per_alert_and_a_notebook_loads_them(
    receiver: tuple[str, Path],
) -> None:
    """A firing notification of two alerts and a resolved one: three lines, episodes paired."""
    url, path = receiver
    firing = webhook("firing", [an_alert("firing", T0, "0001-01-01T00:00:00Z"),
                                an_alert("firing", T0, "0001-01-01T00:00:00Z", "f2", "other")])
    answer = requests.post(url + "/alerts", json=firing, timeout=5)
    assert answer.status_code == 200 and answer.json() == {"recorded": 2}
    ended = (T0 + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    resolved = webhook("resolved", [an_alert("resolved", T0, ended)])
    assert requests.post(url + "/alerts", json=resolved, timeout=5).status_code == 200

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["status"], line["labels"]["environment"]) for line in lines] == [
        ("firing", "test"), ("firing", "other"), ("resolved", "test")]
    assert {"status", "alertname", "labels", "startsAt", "endsAt", "received"} <= set(lines[0])

    frame = alerting.load_alerts(path)
    assert list(frame[names.A_STATUS]) == ["firing", "firing", "resolved"]
    assert frame[names.A_ENDS_AT].isna().sum() == 2  # Alertmanager's zero time is "no end"
    assert frame[names.A_STARTS_AT].iloc[0] == pd.Timestamp(T0)
    episodes = alerting.alert_intervals(frame).set_index("fingerprint")
    assert pd.notna(episodes.loc["f1", "resolved"]) and pd.isna(episodes.loc["f2", "resolved"])
    assert episodes.loc["f1", "ends_at"] == pd.Timestamp(T0 + timedelta(minutes=2))

    on = frame[names.A_RECEIVED].iloc[0].to_pydatetime() - timedelta(seconds=70)
    off = frame[names.A_RECEIVED].iloc[2].to_pydatetime() - timedelta(seconds=20)
    fired, cleared = alerting.measured_delays(frame, FaultWindow("error_rate", 0.5, on, off), "HighErrorRate")
    assert fired == pytest.approx(70) and cleared == pytest.approx(20)


def test_the_receiver_refuses_what_is_not_a_webhook_and_answers_health(receiver: tuple[str, Path]) -> None:
    """Bad bodies get 400/413 with a JSON error and nothing is written."""
    url, path = receiver
    assert requests.get(url + "/healthz", timeout=5).json()["status"] == "ok"
    for body in (b"not json", b'{"alerts": "none"}', b'{"alerts": [{"labels": 3}]}', b"[]"):
        answer = requests.post(url + "/alerts", data=body, timeout=5)
        assert answer.status_code == 400 and "error" in answer.json(), body
    big = requests.post(url + "/alerts", data=b"x" * (alert_receiver.MAX_BODY + 1), timeout=5)
    assert big.status_code == 413
    assert requests.post(url + "/other", json={}, timeout=5).status_code == 404
    assert not path.exists() or path.read_text() == ""


def test_an_empty_or_missing_alert_log_is_an_empty_frame(tmp_path: Path) -> None:
    frame = alerting.load_alerts(tmp_path / "missing.jsonl")
    assert frame.empty and names.A_STATUS in frame.columns
    assert alerting.alert_intervals(frame).empty


def test_alertmanager_notification_latency_is_read_from_its_histogram() -> None:
    """The smallest bucket bound that holds every webhook notification."""
    text = "\n".join([
        "# TYPE alertmanager_notification_latency_seconds histogram",
        'alertmanager_notification_latency_seconds_bucket{integration="webhook",le="0.005"} 0',
        'alertmanager_notification_latency_seconds_bucket{integration="webhook",le="0.1"} 3',
        'alertmanager_notification_latency_seconds_bucket{integration="webhook",le="1"} 4',
        'alertmanager_notification_latency_seconds_bucket{integration="webhook",le="+Inf"} 4',
        'alertmanager_notification_latency_seconds_sum{integration="webhook"} 0.4',
        'alertmanager_notification_latency_seconds_count{integration="webhook"} 4', ""])
    assert alerting.alertmanager_notification_latency(text) == 1.0


def test_faults_switched_together_are_one_episode() -> None:
    """Two error faults on and off together are one episode; a latency fault stays apart."""
    on, off = T0, T0 + timedelta(seconds=100)
    faults = [FaultWindow("error_rate.todos.index", 0.5, on, off),
              FaultWindow("error_rate.api.list_todos", 0.5, on + timedelta(seconds=0.01), off),
              FaultWindow("latency.todos.index", 0.4, off + timedelta(seconds=20),
                          off + timedelta(seconds=120))]
    episodes = alerting.fault_episodes(faults)
    assert [e.name for e in episodes] == ["error_rate.todos.index + error_rate.api.list_todos",
                                          "latency.todos.index"]
    assert alerting.fault_signal(episodes[0]) == "errors" and alerting.fault_signal(episodes[1]) == "latency"


def test_the_report_section_measures_the_fault_and_draws_its_alerts(synthetic: RecordedPrometheus) -> None:
    """On a real Prometheus with known traffic: the fault's bad share is the truth, every
    errors alert gets a row, and a prediction that may never fire is drawn too."""
    on, off = synthetic.end + timedelta(seconds=FAULT[0]), synthetic.end + timedelta(seconds=FAULT[1])
    fault = FaultWindow("error_rate.todos.toggle", 1.0, on, off)
    share, rate = alerting.measured_bad_share(synthetic.client, fault)
    truth = requests_between(*FAULT, status="5") / requests_between(*FAULT)
    assert share == pytest.approx(truth, abs=0.01)
    assert rate == pytest.approx(requests_between(*FAULT) / (FAULT[1] - FAULT[0]), rel=0.05)
    timers = alert_rules.Timers.from_config()
    no_alerts = alerting.load_alerts(Path("/nonexistent/alerts.jsonl"))
    table, drawn = alerting.run_detection(synthetic.client, no_alerts, [fault],
                                          synthetic.end - timedelta(minutes=10), timers)
    errors_alerts = {a.name for a in alert_rules.load_rules() if a.signal == "errors"}
    assert set(table["alert"]) == errors_alerts
    assert (table["bad share"] == round(share, 3)).all()
    # Nothing was notified: an alert predicted to fire is not "as predicted".
    assert not table.set_index("alert").loc[list(drawn), "as predicted"].any()
    near = alert_rules.Prediction("Near", 0.16, alert_rules.Delay(10.0, math.inf, {}), None)
    html = alerting.report_section(synthetic.client, no_alerts, [fault], on - timedelta(minutes=1),
                                   off + timedelta(seconds=5), timers, 0.5)
    assert "data:image/png;base64," in html and "predicted firing (s)" in html
    import matplotlib.pyplot as plt

    figure = alerting.plot_alert_timeline(synthetic.client, no_alerts, on, off, [fault],
                                          {"Near": (fault, near)})
    alert_axes = figure.axes[1]
    assert [label.get_text() for label in alert_axes.get_yticklabels()] == ["Near"]
    assert any(patch.get_hatch() == "//" for patch in alert_axes.patches)  # open-ended, drawn
    plt.close(figure)
