"""`lab incident --blind`: a fault drawn from a seed runs unannounced; `lab incident answer`
grades the diagnosis (kind, endpoint, window within a tolerance) and explains what was missed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analysis import logs
from analysis.lab_context import LabContext, wait_for_scrape
from app.faults import QUIET_KEY
from curriculum import blind_incident
from curriculum.blind_incident import RATE_WINDOW_S, Run, WindowTolerance, grade, parse_time, plan
from lab.cli import main
from stack import heartbeat
from tests.support.launcher import lab_env, lab_stack, run_lab

SHORT_S = 12.0  # a blind run in the tests: long enough to see the fault on and off


def test_seeds_draw_different_incidents_and_a_seed_always_the_same() -> None:
    incidents = [plan(seed) for seed in range(1, 13)]
    assert len({i.kind for i in incidents}) == len(blind_incident.BLIND_KINDS)
    assert len({i.endpoint for i in incidents}) >= 4
    assert len({(i.on_s, i.off_s) for i in incidents}) == len(incidents)
    assert plan(5) == plan(5) and plan(5, 120) != plan(5, 300)
    for incident in incidents:
        assert 0 < incident.on_s < incident.off_s < incident.duration
        # Long enough to be seen on a 1m-rate chart and told from the tolerance.
        assert incident.off_s - incident.on_s >= 0.3 * incident.duration
        assert (incident.endpoint is None) == (incident.kind == "slow_db")


def _lab(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.stack
def test_a_blind_incident_runs_unannounced_and_a_right_and_a_wrong_diagnosis_are_graded(
        tmp_path: Path) -> None:
    seed = next(s for s in range(1, 50) if plan(s, SHORT_S).endpoint)  # one with an endpoint
    truth = plan(seed, SHORT_S)
    var = tmp_path / "var"
    env = {**_clean_env(), "VAR_DIR": str(var)}
    faults = var / "faults.json"
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "incident", "--seed", str(seed),
                             "--blind", "--duration", str(SHORT_S)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if faults.is_file():
                text = faults.read_text(encoding="utf-8")
                if text.strip():
                    current = json.loads(text)
                    if set(current) - {QUIET_KEY} and current not in seen:
                        seen.append(current)
            time.sleep(0.1)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    # The drawn fault, switched on quietly (nothing the services write names it: test_faults)...
    assert seen == [{**truth.faults(), QUIET_KEY: True}]
    assert json.loads(faults.read_text(encoding="utf-8")) == {QUIET_KEY: True}  # ...and off at the end
    # Nothing printed gives it away; the record holds no more than the seed and start.
    assert truth.kind not in out and str(truth.endpoint) not in out and "answer --seed" in out
    # Never silent while it runs: the time spent and left, every few seconds, and nothing more.
    beats = [line for line in out.splitlines() if line.startswith("incident (blind) running: ")]
    assert len(beats) >= SHORT_S // heartbeat.BEAT_S - 1, out
    assert all(re.fullmatch(r"incident \(blind\) running: \d+ s of \d+ s \(\d+ s left\)", b) for b in beats)
    record = json.loads(blind_incident.record_path(var, seed).read_text(encoding="utf-8"))
    assert set(record) == {"seed", "duration", "started", "web_replicas"}
    run_record = blind_incident.Run.load(var, seed)

    right = _lab(env, "incident", "answer", "--seed", str(seed), "--fault", truth.kind,
                 "--endpoint", str(truth.endpoint), "--start", f"+{truth.on_s + 3:g}",
                 "--end", f"+{truth.off_s + 30:g}", "--json")
    assert right.returncode == 0, right.stdout + right.stderr
    assert json.loads(right.stdout)["score"] == "4 of 4"

    other_kind = next(k for k in blind_incident.BLIND_KINDS if k not in (truth.kind, "slow_db"))
    wrong = _lab(env, "incident", "answer", "--seed", str(seed), "--fault", other_kind,
                 "--endpoint", "api.nothing", "--start", f"+{truth.on_s + 3:g}",
                 "--end", f"+{truth.off_s + 200:g}")
    assert wrong.returncode == 1
    assert "1 of 4 right" in wrong.stdout
    # Each wrong part says where to look and how to tell, and gives nothing away...
    assert f"not {other_kind}" in wrong.stdout
    assert blind_incident.WHAT_SHOWS[truth.kind] in wrong.stdout  # among what each kind shows
    assert "not api.nothing" in wrong.stdout and "by (endpoint)" in wrong.stdout
    assert "✘ end" in wrong.stdout and "Too late" in wrong.stdout
    assert f"It was {truth.kind}" not in wrong.stdout and str(truth.endpoint) not in wrong.stdout
    # (The learner's own times are echoed back; in a 12 s incident one may fall on the true
    # second by chance, so they are left out of this look.)
    told = re.sub(r"you said \d\d:\d\d:\d\d", "", wrong.stdout)
    assert f"{run_record.fault_off:%H:%M:%S}" not in told
    # ...until the learner asks for it.
    revealed = _lab(env, "incident", "answer", "--seed", str(seed), "--fault", other_kind,
                    "--endpoint", "api.nothing", "--start", f"+{truth.on_s + 3:g}",
                    "--end", f"+{truth.off_s + 200:g}", "--reveal")
    assert f"It was {truth.kind}." in revealed.stdout and f"It was {truth.endpoint}." in revealed.stdout
    assert f"it was {run_record.fault_off:%H:%M:%S} UTC" in revealed.stdout


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("FAULTS_FILE", "FAULTS_TOKEN")}


def test_the_window_tolerance_follows_scrape_interval_and_rate_window() -> None:
    assert WindowTolerance.for_lab(5, 60) == WindowTolerance(10, 65)
    assert WindowTolerance.for_lab(15, 120) == WindowTolerance(30, 135)
    slow = next(s for s in range(1, 50) if plan(s).kind == "slow_db")
    started = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    run = Run(slow, 300, started)
    tolerance = WindowTolerance.for_lab(5, 60)
    on, off = run.fault_on, run.fault_off
    graded = grade(run, "slow_db", "all", on - timedelta(seconds=9), off + timedelta(seconds=64), tolerance)
    assert graded.right, str(graded)
    early = grade(run, "slow_db", "api.list_todos", on - timedelta(seconds=11), off, tolerance)
    assert [p.right for p in early.parts] == [True, False, False, True]
    assert "Too early: nothing was wrong yet" in str(early) and "several rise together" in str(early)
    assert "every endpoint that reads the database" not in str(early)
    assert "every endpoint that reads the database" in str(
        grade(run, "slow_db", "api.list_todos", on, off, tolerance, reveal=True))
    # An end edge too early is told apart from a start too early.
    ended_early = grade(run, "slow_db", "*", on, off - timedelta(seconds=11), tolerance)
    assert [p.right for p in ended_early.parts] == [True, True, True, False]
    assert "the fault was still in force then" in str(ended_early)
    assert "nothing was wrong yet" not in str(ended_early)
    assert f"{off:%H:%M:%S}" not in str(ended_early)


def test_answer_times_may_be_relative_clock_or_iso() -> None:
    started = datetime(2026, 5, 1, 10, 0, 30, tzinfo=UTC)
    assert parse_time("+90", started) == started + timedelta(seconds=90)
    assert parse_time("10:02:05", started) == datetime(2026, 5, 1, 10, 2, 5, tzinfo=UTC)
    assert parse_time("2026-05-01T10:03:00+00:00", started).minute == 3
    with pytest.raises(ValueError, match="not a time"):
        parse_time("soon", started)


def test_answering_an_incident_never_run_here_says_how_to_run_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    code = main(["incident", "answer", "--seed", "3", "--fault", "latency", "--endpoint", "x",
                 "--start", "+1", "--end", "+2"])
    assert code == 2 and "lab incident --seed 3 --blind" in capsys.readouterr().err
    assert main(["incident", "answer", "--seed", "3"]) == 2
    assert "--fault, --endpoint, --start, --end" in capsys.readouterr().err


LIVE_SEED, LIVE_DURATION = 15, 60.0  # error_rate 0.48 on api.list_todos from t+10.7 to t+31 s


@pytest.mark.slow
@pytest.mark.stack
@pytest.mark.skipif(not (shutil.which("caddy") and shutil.which("prometheus")),
                    reason="the Debian packages caddy and prometheus are needed")
def test_a_live_blind_incident_is_found_from_the_logs_and_the_chart_within_the_tolerance(
        tmp_path: Path) -> None:
    """The tolerance's claim, measured: edges read off the access log, and off a 1m-rate chart
    (late by up to a window and a scrape), are both graded right; the logs are the sharper."""
    truth = plan(LIVE_SEED, LIVE_DURATION)
    assert (truth.kind, truth.endpoint) == ("error_rate", "api.list_todos")
    env = lab_env(tmp_path / "var", {"LAB_REPORTS_DIR": str(tmp_path / "reports"),
                                     "LOAD_WAIT": "0.1,0.5"})
    with lab_stack(env) as up:
        assert up.code == 0, up.stderr
        incident = subprocess.Popen(
            [sys.executable, "-m", "lab.cli", "incident", "--seed", str(LIVE_SEED), "--blind",
             "--duration", f"{LIVE_DURATION:g}"], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            load = run_lab(env, "load", "--users", "6", "--duration", f"{LIVE_DURATION:g}", timeout=300)
            assert load.code == 0, load.stdout[-2000:] + load.stderr[-2000:]
            _, err = incident.communicate(timeout=120)
        finally:
            if incident.poll() is None:
                incident.kill()
                incident.wait(10)
        assert incident.returncode == 0, err
        run = Run.load(Path(env["VAR_DIR"]), LIVE_SEED)
        context = LabContext.from_env({"PROMETHEUS_URL": f"http://127.0.0.1:{env['PROMETHEUS_PORT']}",
                                       "LAB_VAR_DIR": env["VAR_DIR"]})
        prometheus = context.prometheus()
        # Let the 1m window drain past the fault's end, then read the chart as a learner would.
        horizon = run.fault_off + timedelta(seconds=RATE_WINDOW_S + 3 * prometheus.scrape_interval_s)
        wait_for_scrape(prometheus, horizon.timestamp(), timeout_s=180)
        failed = 'http_request_duration_seconds_count{endpoint="api.list_todos",status=~"5.."}'
        chart = prometheus.range(f"sum(rate({failed}[1m]))", run.started, horizon,
                                 step_s=prometheus.scrape_interval_s)
        showing = chart[chart["value"] > 0]["timestamp"]
        access = logs.access_lines(context.load_logs().frame)
        errors = access[(access["endpoint"] == "api.list_todos") & (access["status_code"] >= 500)]
    assert len(errors) >= 5 and len(showing) > 0
    # Only the fault made 5xx: every error line lies inside the fault window (plus a request).
    from_log = (errors["timestamp"].min().to_pydatetime(), errors["timestamp"].max().to_pydatetime())
    assert run.fault_on <= from_log[0] and from_log[1] <= run.fault_off + timedelta(seconds=2)
    by_log = grade(run, "error_rate", "api.list_todos", *from_log)
    by_chart = grade(run, "error_rate", "api.list_todos", showing.min().to_pydatetime(),
                     showing.max().to_pydatetime())
    assert by_log.right, str(by_log)
    assert by_chart.right, str(by_chart)
    assert (showing.max().to_pydatetime() - run.fault_off).total_seconds() > \
        (from_log[1] - run.fault_off).total_seconds()  # the chart drains late: why +window


def test_a_fleet_draws_one_bad_replica_for_half_the_seeds_and_a_single_lab_its_old_draws() -> None:
    single = [plan(seed, 300.0, 1) for seed in range(200)]
    assert single == [plan(seed, 300.0) for seed in range(200)]
    assert all(i.replica is None for i in single)
    fleet = [plan(seed, 300.0, 3) for seed in range(200)]
    replica = [i for i in fleet if i.replica is not None]
    assert 70 <= len(replica) <= 130
    assert {i.kind for i in replica} == {"error_rate", "latency", "crash"}
    assert {i.replica for i in replica} == {1, 2, 3}
    assert all(i.endpoint is None for i in replica)
    # The others are the single lab's draws, unchanged.
    assert all(f == s for f, s in zip(fleet, single, strict=True) if f.replica is None)
    bad = next(i for i in replica if i.kind == "error_rate")
    assert bad.faults("127.0.0.1:5001") == {"error_rate@127.0.0.1:5001": bad.value}
    assert next(i for i in replica if i.kind == "crash").faults("127.0.0.1:5001") == {}


def test_a_fleet_incident_is_graded_on_its_replica_without_naming_it(tmp_path: Path) -> None:
    seed = next(s for s in range(500) if plan(s, 300.0, 3).kind == "crash")
    truth = plan(seed, 300.0, 3)
    started = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    run = Run(seed, 300.0, started, web_replicas=3)
    run.save(tmp_path)
    assert "instance" not in json.loads(blind_incident.record_path(tmp_path, seed).read_text())
    fleet = blind_incident.web_instances({"WEB_PORT": 5000}, 3)
    hit = fleet[truth.replica - 1]
    other = next(i for i in fleet if i != hit)
    on, off = run.fault_on + timedelta(seconds=2), run.fault_off + timedelta(seconds=5)
    right = grade(Run.load(tmp_path, seed), "crash", "*", on, off, instance=hit, fleet=fleet)
    assert right.right and right.score == "5 of 5"
    wrong = grade(run, "crash", "*", on, off, instance=other, fleet=fleet)
    part = {p.name: p for p in wrong.parts}["instance"]
    assert not part.right and "by (instance)" in part.explanation and hit not in part.explanation
    revealed = grade(run, "crash", "*", on, off, instance=other, fleet=fleet, reveal=True)
    assert hit in {p.name: p for p in revealed.parts}["instance"].explanation
    # Naming one endpoint of a replica-wide fault is wrong, and says to compare endpoints.
    endpoint = {p.name: p for p in grade(run, "crash", "todos.index", on, off, instance=hit,
                                         fleet=fleet).parts}["endpoint"]
    assert not endpoint.right and "by (endpoint)" in endpoint.explanation
    with pytest.raises(ValueError, match="web instances are needed"):
        grade(run, "crash", "*", on, off, instance=hit)
