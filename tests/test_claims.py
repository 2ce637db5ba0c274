"""Claims the workshop makes about how Prometheus behaves, asserted against the real Prometheus
the lab runs (Debian's, 2.42 on this machine), on the synthetic traffic of tests/support/promdata.py.

A sentence in a notebook about a tool is a claim; each one here names the notebook or exercise
that makes it. When a Prometheus release changes the behaviour, this file fails and the text
is corrected with it.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from curriculum.exercise_bank import EXERCISES
from tests.support.processes import free_port, http_ok, start, wait_until
from tests.support.promdata import FAULT, RecordedPrometheus

pytestmark = pytest.mark.stack

COUNT = "http_request_duration_seconds_count"
WINDOW_S = 60


Samples = list[tuple[float, float]]


def raw_samples(synthetic: RecordedPrometheus, selector: str,
                at: datetime) -> list[tuple[dict[str, str], Samples]]:
    """Every series of selector with its raw samples in the minute before at."""
    answer = synthetic.client.client.custom_query(f"{selector}[{WINDOW_S}s]", params={"time": at.timestamp()})
    return [(series["metric"], [(float(t), float(v)) for t, v in series["values"]]) for series in answer]


def rate_by_hand(samples: Samples, at: float) -> float:
    """01-metrics' sentence, computed as Prometheus 2.42 does: the increase between the window's
    first and last samples; towards the start, a counter no further back than where it would reach
    zero; each edge's gap added when it is under 1.1 average spacings, else half a spacing; all
    divided by the window's length."""
    (t0, v0), (t1, v1) = samples[0], samples[-1]
    increase, sampled = v1 - v0, t1 - t0
    spacing = sampled / (len(samples) - 1)
    to_start, to_end = t0 - (at - WINDOW_S), at - t1
    if increase > 0 and v0 >= 0:
        to_start = min(to_start, sampled * v0 / increase)  # a counter does not start below zero
    to_start = to_start if to_start < 1.1 * spacing else spacing / 2
    to_end = to_end if to_end < 1.1 * spacing else spacing / 2
    return increase * (sampled + to_start + to_end) / sampled / WINDOW_S


def moments(synthetic: RecordedPrometheus) -> list[datetime]:
    """Before, at the start of, inside and after the synthetic fault (FAULT, relative to the end),
    off the scrape grid (the window's edges fall between samples) and on it."""
    end = synthetic.end
    return [end - timedelta(seconds=s) for s in (202.5, -FAULT[0] - 3.5, -FAULT[0] - 21, -FAULT[1] + 7.2, 0)]


def test_rate_is_the_extrapolated_increase_divided_by_the_window(synthetic: RecordedPrometheus) -> None:
    """01-metrics: "`rate(x[1m])` ... extrapolates that increase towards the window's edges ...
    then divides by the window's length" (not by the time between the first and last sample)."""
    checked = differs = 0
    for at in moments(synthetic):
        prometheus = synthetic.client.instant(f"rate({COUNT}[{WINDOW_S}s])", at)
        for labels, samples in raw_samples(synthetic, COUNT, at):
            if len(samples) < 2:
                continue
            row = prometheus[(prometheus["endpoint"] == labels["endpoint"])
                             & (prometheus["status"] == labels["status"])]
            (t0, v0), (t1, v1) = samples[0], samples[-1]
            # Equal to float rounding (Prometheus takes the query's time to the millisecond).
            assert float(row["value"].iloc[0]) == pytest.approx(rate_by_hand(samples, at.timestamp()),
                                                                rel=1e-7)
            # ... which is not the increase divided by the time between the first and last sample
            # where the counter's pace changes inside the window (the fault's edges).
            if v1 > v0 and float(row["value"].iloc[0]) != pytest.approx((v1 - v0) / (t1 - t0), rel=1e-6):
                differs += 1
            checked += 1
    assert checked >= 20 and differs >= 1


def test_a_series_born_inside_the_window_is_extrapolated_back_towards_zero(tmp_path: Path) -> None:
    """Exercise 7.2's advice: a series born inside the window (the lab's labelled series appear
    with their first request) is extrapolated from its own samples back towards where it would
    be zero, so the two sides of a ratio are not scaled by the same factor.

    On Prometheus's own engine (promtool test rules, the lab's version): `steady` counts 1
    request/s from t=0; `born` appears at t=60 s already at 5 and counts 1/s on. At t=90 s, over
    [1m]: steady's increase is its exact 60 (samples on both edges: factor 1); born's sampled
    increase is 30 over 30 s, extended 5 s back (to where it would be 0, under 1.1 spacings):
    35, a factor of 7/6, here its true count because its pace was steady.
    """
    assert "born inside the window" in EXERCISES["7.2"].mistakes["b"].advice
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed"
    (tmp_path / "rules.yml").write_text("groups: []\n", encoding="utf-8")
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "5s", "tests": [{
        "interval": "5s",
        "input_series": [{"series": "requests_total{series=\"steady\"}", "values": "0+5x24"},
                         {"series": "requests_total{series=\"born\"}", "values": "_x12 5+5x12"}],
        "promql_expr_test": [
            {"expr": "increase(requests_total[1m])", "eval_time": "90s",
             "exp_samples": [{"labels": "{series=\"steady\"}", "value": 60},
                             {"labels": "{series=\"born\"}", "value": 35}]},
            {"expr": "requests_total", "eval_time": "90s",  # what was really counted
             "exp_samples": [{"labels": "requests_total{series=\"steady\"}", "value": 90},
                             {"labels": "requests_total{series=\"born\"}", "value": 35}]},
        ]}]}
    (tmp_path / "claims.yml").write_text(yaml.safe_dump(test), encoding="utf-8")
    done = subprocess.run([promtool, "test", "rules", "claims.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_quantile_without_le_is_silently_empty(synthetic: RecordedPrometheus) -> None:
    """01-metrics: "Without `le` ... `histogram_quantile` quietly returns nothing. No error, no
    warning" (on the lab's Prometheus 2.42; later releases attach a warning annotation), while
    the same query that keeps `le` answers."""
    bucket = "http_request_duration_seconds_bucket"
    at = synthetic.end.timestamp()

    def ask(query: str) -> dict[str, object]:
        answer = requests.get(f"{synthetic.client.url}/api/v1/query", params={"query": query, "time": at},
                              timeout=10)
        answer.raise_for_status()
        body: dict[str, object] = answer.json()
        return body

    dropped = ask(f"histogram_quantile(0.95, sum(rate({bucket}[1m])))")
    assert dropped["status"] == "success" and dropped["data"] == {"resultType": "vector", "result": []}
    assert "warnings" not in dropped and "infos" not in dropped
    kept = ask(f"histogram_quantile(0.95, sum by (le) (rate({bucket}[1m])))")
    assert len(kept["data"]["result"]) == 1  # type: ignore[index]


def test_a_window_shorter_than_the_step_sees_only_its_share_of_the_requests(
        synthetic: RecordedPrometheus) -> None:
    """Exercise 1.9 and 01-metrics' "window and step": one point of `increase(x[w])` per step
    looks at the window before it only. Summed over a chart of steady traffic, `[15s]` points one
    minute apart see a quarter of the requests; `[60s]` (window = step) see all of them."""
    assert EXERCISES["1.9"].solution == pytest.approx(0.25)
    first, last = synthetic.end - timedelta(minutes=8), synthetic.end - timedelta(minutes=1)
    total = synthetic.client.scalar(f"sum({COUNT} @ {last.timestamp():.0f}) - sum({COUNT} @ "
                                    f"{(first - timedelta(minutes=1)).timestamp():.0f})", last)
    seen = {}
    for window in ("15s", "60s"):
        points = synthetic.client.range(f"sum(increase({COUNT}[{window}]))", first, last, step_s=60)
        assert len(points) == 8
        seen[window] = points["value"].sum()
    assert seen["15s"] / total == pytest.approx(0.25, rel=0.02)
    assert seen["60s"] / total == pytest.approx(1.0, rel=0.02)


def test_an_instant_query_takes_the_newest_sample_of_the_last_five_minutes(
        synthetic: RecordedPrometheus) -> None:
    """05-alerting, "When the series are gone": an instant query takes each series' newest
    sample no older than 5 minutes (the default lookback delta). The synthetic series end at
    `end` without stale markers (imported blocks have none), as a series whose scrapes simply
    stopped coming: 2 minutes later it still answers with its last sample; 6 minutes later not."""
    later = synthetic.end + timedelta(minutes=2)
    age = synthetic.client.instant('time() - timestamp(up{job="web"})', later)
    assert list(age["value"]) == [pytest.approx(120)]
    assert synthetic.client.instant('up{job="web"}', synthetic.end + timedelta(minutes=6)).empty
    absent = synthetic.client.instant('absent(up{job="no-such-job"})', synthetic.end)
    assert absent[["job", "value"]].to_dict("records") == [{"job": "no-such-job", "value": 1.0}]
    assert synthetic.client.instant('absent(up{job="web"})', synthetic.end).empty


def test_a_target_that_stops_answering_leaves_no_series_at_once(tmp_path: Path) -> None:
    """Exercise 5.8: when a target's scrape fails, Prometheus writes stale markers: its series
    vanish from instant queries at the next evaluation (not after the 5-minute lookback), `up`
    is 0, a `[1m]` range still holds the samples from before, and `absent()` says 1."""
    from stack.small_http import Answer, Request, SmallServer

    assert "stale" in EXERCISES["5.8"].why
    served = {"count": 0, "failing": False}

    def metrics(request: Request) -> Answer:
        if served["failing"]:  # a hung or broken target: the scrape fails
            return Answer(503, b"unavailable", "text/plain")
        served["count"] += 1
        return Answer(200, f"# TYPE demo_requests counter\ndemo_requests_total {served['count']}\n".encode(),
                      "text/plain; version=0.0.4")

    target = SmallServer(metrics).start()
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "demo",
                            "static_configs": [{"targets": [f"127.0.0.1:{target.port}"]}]}],
    }), encoding="utf-8")
    binary = shutil.which("prometheus")
    assert binary, "prometheus (Debian package prometheus) is needed"
    proc = start("prometheus-staleness", [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                          f"--storage.tsdb.path={tmp_path / 'data'}",
                                          f"--web.listen-address=127.0.0.1:{port}"], {}, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{base}/-/ready"), 60, "Prometheus")

        def query(expr: str) -> list[dict[str, object]]:
            answer = requests.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
            answer.raise_for_status()
            return list(answer.json()["data"]["result"])

        wait_until(lambda: len(query("demo_requests_total")) == 1 and served["count"] >= 3, 30,
                   "three scrapes of the demo target")
        served["failing"] = True
        wait_until(lambda: query('up{job="demo"}')[0]["value"][1] == "0", 30, "a failed scrape")
        assert query("demo_requests_total") == []  # gone at once: stale, not its last value
        assert len(query("demo_requests_total[1m]")) == 1  # the samples before are still there
        assert [r["value"][1] for r in query("absent(demo_requests_total)")] == ["1"]
    finally:
        proc.stop()
        target.stop()
