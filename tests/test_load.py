"""Synthetic load: real Locust (headless, in a subprocess) against real gunicorn and a real
Celery worker on PostgreSQL + Redis; plus the load shapes and checks as pure functions."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from loadtests.checks import export_csv_problem
from loadtests.config import LoadConfig, LoadConfigError, parse_wait, parse_weights
from loadtests.run import LoadRunResult, read_user_counts, run_headless
from loadtests.shapes import Profile, Ramp, Spike, make_profile, profile_from
from stack.launch import Running
from tests.support.backends import Backend
from tests.support.processes import BIN, free_port, start, wait_until

# Short think time and equal weights: every user type does plenty in a short run.
FAST_USERS = {"LOAD_WAIT": "0.2,1.0", "LOAD_WEIGHTS": "reader=1,writer=1,exporter=1,api=1"}


@pytest.fixture(scope="module")
def stack(postgres_backend: Backend, live_stacks: Callable[[str], Running]) -> Running:
    """The shared gunicorn (2 workers x 4 threads) and Celery worker on PostgreSQL + Redis,
    over empty tables."""
    postgres_backend.clean()
    return live_stacks("postgres")


@pytest.fixture(scope="module")
def steady_run(stack: Running, tmp_path_factory: pytest.TempPathFactory) -> LoadRunResult:
    """A 25-second steady run with 8 users, two of each type."""
    result = run_headless(
        stack.web.url, make_profile("steady", users=8, duration=25),
        reports_dir=tmp_path_factory.mktemp("reports"), extra_env=FAST_USERS,
    )
    print(result.summary())  # shown with -s / -rP: the figures of this run
    return result


def failures_text(result: LoadRunResult) -> str:
    """Locust's failure table, for assertion messages."""
    return result.failures_csv.read_text(encoding="utf-8") if result.failures_csv.exists() else ""


@pytest.mark.stack
def test_steady_run_without_faults_has_no_failures(steady_run: LoadRunResult) -> None:
    """Nothing fails when no fault is set, and the run leaves its CSV and HTML reports."""
    assert steady_run.requests > 200
    assert steady_run.failures == 0, failures_text(steady_run)
    assert steady_run.failure_ratio == 0.0
    assert steady_run.p50_ms is not None and steady_run.p95_ms is not None
    for path in (steady_run.stats_csv, steady_run.history_csv, steady_run.html):
        assert path.is_file() and path.stat().st_size > 0, path
    assert steady_run.stats_csv.name.startswith("load-") and "-steady" in steady_run.stats_csv.name
    assert "Locust" in steady_run.html.read_text(encoding="utf-8")


@pytest.mark.stack
@pytest.mark.parametrize(
    ("user_type", "method", "name"),
    [
        ("reader", "GET", "/"),
        ("reader", "GET", "/?page=[n]"),
        ("writer", "POST", "/add [json]"),
        ("writer", "POST", "/add [form]"),
        ("writer", "POST", "/add [json, keyed]"),
        ("writer", "POST", "/add [json, retry]"),
        ("writer", "POST", "/toggle/[id]"),
        ("writer", "POST", "/edit/[id]"),
        ("writer", "POST", "/reorder"),
        ("writer", "POST", "/delete/[id]"),
        ("exporter", "POST", "/export"),
        ("exporter", "GET", "/tasks/[id]"),
        ("exporter", "GET", "/download/[id]"),
        ("api", "POST", "/api/todos"),
        ("api", "PATCH", "/api/todos/[id]"),
        ("api", "DELETE", "/api/todos/[id]"),
        ("api", "GET", "/api/todos/[id] [deleted]"),
        ("api", "POST", "/api/todos [invalid]"),
    ],
)
def test_every_user_type_does_its_part(
    steady_run: LoadRunResult, user_type: str, method: str, name: str
) -> None:
    """Each user type sent its own requests, grouped under one name, none failed."""
    stats = steady_run.endpoint(method, name)
    assert stats is not None, f"{user_type} never sent {method} {name}"
    assert stats.requests >= 2, (user_type, stats)
    assert stats.failures == 0, failures_text(steady_run)


@pytest.mark.stack
def test_ids_do_not_explode_the_statistics(steady_run: LoadRunResult) -> None:
    """No request name carries a concrete id or task uuid."""
    names = {e.name for e in steady_run.endpoints}
    assert not [n for n in names if any(ch.isdigit() for ch in n)], names
    assert len(names) < 25, names


@pytest.mark.stack
def test_exports_were_downloaded_and_their_csv_parsed(steady_run: LoadRunResult) -> None:
    """Every export the exporters started finished and its CSV passed the check."""
    downloads = steady_run.endpoint("GET", "/download/[id]")
    exports = steady_run.endpoint("POST", "/export")
    assert downloads is not None and exports is not None
    assert downloads.requests >= 2
    # An export still polling when the run stopped is cut short, never counted as failed.
    assert exports.requests - downloads.requests <= 2
    assert downloads.failures == 0, failures_text(steady_run)


@pytest.mark.stack
def test_requests_are_marked_as_synthetic(steady_run: LoadRunResult, stack: Running) -> None:
    """The app's access log shows the load's User-Agent (and it carries X-Synthetic-Load)."""
    log = stack.web.log_path.read_text(encoding="utf-8", errors="replace")
    assert "todo-lab-loadtest/1.0 (writer; +locust)" in log
    assert "todo-lab-loadtest/1.0 (api; +locust)" in log


@pytest.fixture(scope="module")
def distributed_run(stack: Running, tmp_path_factory: pytest.TempPathFactory) -> LoadRunResult:
    """The same steady scenario from a Locust master and two worker processes."""
    result = run_headless(
        stack.web.url, make_profile("steady", users=8, duration=20),
        reports_dir=tmp_path_factory.mktemp("distributed-reports"), extra_env=FAST_USERS, workers=2,
    )
    print(result.summary())
    return result


@pytest.mark.stack
def test_a_master_and_two_workers_report_as_one_process_does(
    distributed_run: LoadRunResult, steady_run: LoadRunResult
) -> None:
    """`--workers 2`: two worker processes ran users, and the master wrote the same reports."""
    log = distributed_run.log.read_text(encoding="utf-8", errors="replace")
    assert "--processes" in distributed_run.command and distributed_run.workers == 2
    assert "2 workers connected" in log and "to 2 ready workers" in log, log[-2000:]
    assert distributed_run.requests > 100
    assert distributed_run.failures == 0, failures_text(distributed_run)
    for path in (distributed_run.stats_csv, distributed_run.history_csv, distributed_run.html,
                 distributed_run.stats_json):
        assert path.is_file() and path.stat().st_size > 0, path
    # Same request names as one process (every user type did its part), same report columns.
    assert {(e.method, e.name) for e in distributed_run.endpoints} >= {
        (e.method, e.name) for e in steady_run.endpoints if e.requests >= 5}
    assert distributed_run.stats_csv.read_text().splitlines()[0] == \
        steady_run.stats_csv.read_text().splitlines()[0]
    # The master's JSON holds every worker's requests: the same total as its CSV.
    per_endpoint = json.loads(distributed_run.stats_json.read_text(encoding="utf-8"))
    assert sum(e["num_requests"] for e in per_endpoint) == distributed_run.requests
    counts = [c for _, c in read_user_counts(distributed_run.history_csv)]
    assert max(counts) == 8


def plateaus(counts: list[int]) -> list[int]:
    """Consecutive distinct user counts, in order (a history without its repeats)."""
    out: list[int] = []
    for count in counts:
        if not out or out[-1] != count:
            out.append(count)
    return out


@pytest.mark.stack
def test_ramp_steps_up_to_its_peak(stack: Running, tmp_path: Path) -> None:
    """A 20-second ramp to 8 users climbs 2, 4, 6, 8 and never goes down (stats history)."""
    result = run_headless(stack.web.url, make_profile("ramp", users=8, spawn_rate=8, duration=20),
                          reports_dir=tmp_path, extra_env=FAST_USERS)
    assert result.failures == 0, failures_text(result)
    counts = [c for _, c in read_user_counts(result.history_csv) if c > 0]
    assert counts == sorted(counts), counts
    assert [c for c in (2, 4, 6, 8) if c in counts] == [2, 4, 6, 8], counts
    assert max(counts) == 8


@pytest.mark.stack
def test_spike_goes_up_and_comes_back_down(stack: Running, tmp_path: Path) -> None:
    """A 20-second spike to 10 users holds 2, jumps to 10, then drops back to 2."""
    result = run_headless(stack.web.url, make_profile("spike", users=10, duration=20), reports_dir=tmp_path,
                          extra_env={**FAST_USERS, "LOAD_WEIGHTS": "reader=3,api=1,writer=0,"
                                     "exporter=0"})
    assert result.failures == 0, failures_text(result)
    counts = [c for _, c in read_user_counts(result.history_csv) if c > 0]
    steps = plateaus(counts)
    assert max(counts) == 10
    top = steps.index(10)
    assert 2 in steps[:top] and 2 in steps[top:], steps


@pytest.mark.stack
def test_web_ui_starts_the_selected_shape(stack: Running, tmp_path: Path) -> None:
    """The web UI (with our shape class) shows the shape parameters and runs what it is given."""
    port = free_port()
    ui = start(
        "locust-ui",
        [str(BIN / "locust"), "-f", "loadtests/locustfile.py", "--web-host", "127.0.0.1",
         "--web-port", str(port), "--host", stack.web.url],
        {**FAST_USERS, "LOAD_WEIGHTS": "reader=1,api=1,writer=0,exporter=0"},
        tmp_path,
    )
    ui_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(ui_url, timeout=2).status_code == 200, 30,
                   "the Locust web UI")
        page = requests.get(ui_url, timeout=5).text
        assert "shape_users" in page and "ramp" in page
        started = requests.post(ui_url + "/swarm", timeout=5, data={
            "host": stack.web.url, "shape": "steady", "shape_users": "3",
            "shape_spawn_rate": "3", "shape_duration": "30",
        }).json()
        assert started["success"], started

        def running_with_three() -> bool:
            stats = requests.get(ui_url + "/stats/requests", timeout=2).json()
            total = next(s for s in stats["stats"] if s["name"] == "Aggregated")
            return bool(stats["user_count"] == 3 and total["num_requests"] > 5)

        wait_until(running_with_three, 30, "3 users sending requests from the web UI")
        stats = requests.get(ui_url + "/stats/requests", timeout=2).json()
        assert stats["fail_ratio"] == 0, json.dumps(stats["errors"])[:2000]
        requests.get(ui_url + "/stop", timeout=5)
    finally:
        ui.stop()


@pytest.mark.stack
def test_lab_load_of_another_host_runs_and_prints_the_figures(
    stack: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lab load --host URL` loads any deployment of the app (here a stack the lab did not
    start), unrecorded, says how far it is while it runs and where the reports are at the
    end; what it cannot do it refuses."""
    from lab.cli import main as lab_main

    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("LAB_REPORTS_DIR", str(tmp_path / "reports"))
    code = lab_main(["load", "--host", stack.web.url, "--shape", "steady", "--users", "2",
                     "--duration", "12"])
    out = capsys.readouterr().out
    assert code == 0
    assert "failures=0 " in out and "p95=" in out and "run recorded" not in out
    # Never silent while Locust runs: a line every few seconds, with the requests so far.
    said = [re.fullmatch(r"load: (\d+) s of 12 s \((\d+) s left\), (\d+) requests so far, 0 failed", line)
            for line in out.splitlines() if line.startswith("load: ")]
    assert len(said) >= 2 and all(said), out
    elapsed = [int(m.group(1)) for m in said if m]
    assert elapsed == sorted(elapsed) and int(said[-1].group(3)) > 0, out  # type: ignore[union-attr]
    assert list((tmp_path / "reports").glob("load-*-steady.html"))
    assert not (tmp_path / "reports" / "last-run.json").exists()
    assert lab_main(["load", "--host", stack.web.url, "--users", "-1"]) == 2
    assert "users=-1 is out of range" in capsys.readouterr().err
    assert lab_main(["load", "--host", stack.web.url, "--fault", "latency=0.1"]) == 2
    assert "not the lab's to switch" in capsys.readouterr().err


# --- pure functions: shapes as functions of run time, configuration, the CSV check ----------


@pytest.mark.parametrize(
    ("seconds", "users"),
    [(0, 2), (4.9, 2), (5, 4), (9.9, 4), (10, 6), (15, 8), (19.9, 8)],
)
def test_ramp_tick_is_a_staircase(seconds: float, users: int) -> None:
    """Ramp to 8 users in 4 steps of 5 s."""
    assert Ramp(users=8, spawn_rate=8, duration=20).tick(seconds) == (users, 8)


@pytest.mark.parametrize(
    ("seconds", "users"), [(0, 2), (7.9, 2), (8, 10), (11.9, 10), (12, 2), (19.9, 2)]
)
def test_spike_tick_is_baseline_peak_baseline(seconds: float, users: int) -> None:
    """Spike to 10 users in the middle fifth of 20 s, a fifth of that before and after."""
    assert Spike(users=10, spawn_rate=10, duration=20).tick(seconds) == (users, 10)


@pytest.mark.parametrize("shape", ["steady", "ramp", "spike", "soak"])
def test_every_shape_stops_at_its_duration(shape: str) -> None:
    """Each shape runs users until its duration and then ends the test (None)."""
    profile = make_profile(shape, users=6, duration=30)
    assert profile.tick(0) is not None and profile.tick(29.9) is not None
    assert profile.tick(30) is None
    assert max(profile.tick(t)[0] for t in range(30)) == 6  # type: ignore[index]


@pytest.mark.parametrize("shape", ["steady", "soak"])
def test_steady_shapes_hold_their_users(shape: str) -> None:
    """Steady and soak keep the same number of users throughout."""
    profile = make_profile(shape, users=5, spawn_rate="2", duration="40")
    assert {profile.tick(t) for t in range(40)} == {(5, 2.0)}


def test_shape_defaults_and_bad_values() -> None:
    """Each shape has its own defaults; unknown names and non-positive values are refused."""
    assert make_profile("soak").duration > make_profile("steady").duration
    assert make_profile("ramp", users="").users == Ramp.default_users
    with pytest.raises(ValueError, match="unknown load shape"):
        make_profile("sawtooth")
    with pytest.raises(ValueError, match="users=0 is out of range: expected above 0"):
        make_profile("steady", users=0)
    with pytest.raises(ValueError, match="duration='soon' is invalid: expected a number"):
        make_profile("steady", duration="soon")


def test_weights_and_wait_from_the_environment() -> None:
    """LOAD_WEIGHTS names roles (others keep their default); LOAD_WAIT is MIN,MAX."""
    assert parse_weights("reader=2, exporter=0") == {
        "reader": 2, "writer": 3, "exporter": 0, "api": 2
    }
    assert parse_wait("0.5,2") == (0.5, 2.0)
    for bad in ("robot=1", "reader=-1", "reader=x", "reader=0,writer=0,exporter=0,api=0"):
        with pytest.raises(LoadConfigError):
            parse_weights(bad)
    with pytest.raises(LoadConfigError):
        parse_wait("3,1")


def test_export_polling_from_the_environment() -> None:
    """The poll count is a whole number above 0, the interval any number above 0."""
    config = LoadConfig.from_env({"LOAD_EXPORT_MAX_POLLS": "3", "LOAD_EXPORT_POLL_INTERVAL": "0.1"})
    assert (config.export_max_polls, config.export_poll_interval) == (3, 0.1)
    assert LoadConfig.from_env({}).export_max_polls == 60
    for env, message in (({"LOAD_EXPORT_MAX_POLLS": "2.5"}, "LOAD_EXPORT_MAX_POLLS='2.5' is invalid: "
                                                             "expected an integer"),
                         ({"LOAD_EXPORT_POLL_INTERVAL": "soon"}, "expected a number"),
                         ({"LOAD_EXPORT_MAX_POLLS": "0"}, "LOAD_EXPORT_MAX_POLLS=0 is out of range: "
                                                          "expected at least 1")):
        with pytest.raises(LoadConfigError, match=message):
            LoadConfig.from_env(env)


GOOD_CSV = (
    "id,text,done,position,created_at,updated_at\r\n"
    '1,"milk, oat",false,1,2026-01-01T00:00:00,2026-01-01T00:00:00\r\n'
    "2,'=SUM(A1),true,2,2026-01-01T00:00:00,2026-01-01T00:00:00\r\n"
)


def test_export_check_accepts_a_good_csv() -> None:
    """A real-looking export (quoted comma, neutralised formula) passes."""
    assert export_csv_problem(GOOD_CSV, expected_rows=2) is None
    assert list(csv.reader(GOOD_CSV.splitlines()))[1][1] == "milk, oat"


@pytest.mark.parametrize(
    ("text", "rows", "problem"),
    [
        ("", None, "empty"),
        ("id,text\r\n1,a\r\n", None, "header"),
        (GOOD_CSV + "3,short\r\n", None, "cells"),
        (GOOD_CSV.replace("false", "maybe"), None, "done"),
        (GOOD_CSV + '4,"never closed,false,4,x,y\r\n', None, "parse"),
        (GOOD_CSV, 5, "rows"),
    ],
)
def test_export_check_rejects_a_broken_csv(text: str, rows: int | None, problem: str) -> None:
    """A wrong header, a short row, a bad cell, broken quoting or a missing row is reported."""
    found = export_csv_problem(text, expected_rows=rows)
    assert found is not None and problem in found, found


@pytest.mark.parametrize(("variable", "value", "field", "expected"), [
    ("LOAD_SHAPE", "ramp", "name", "ramp"),
    ("LOAD_USERS", "7", "users", 7),
    ("LOAD_SPAWN_RATE", "3.5", "spawn_rate", 3.5),
    ("LOAD_DURATION", "42", "duration", 42.0),
])
def test_each_load_setting_takes_effect_from_the_environment_and_the_option_wins(
        variable: str, value: str, field: str, expected: object) -> None:
    """The one place a load setting becomes a profile (profile_from): each LOAD_* variable takes
    effect, a command-line value wins over it, and a bad one is named."""
    assert getattr(profile_from({variable: value}), field) == expected
    option = {"LOAD_SHAPE": ("shape", "spike"), "LOAD_USERS": ("users", 3),
              "LOAD_SPAWN_RATE": ("spawn_rate", 1.5), "LOAD_DURATION": ("duration", 9)}[variable]
    chosen = profile_from({variable: value}, **{option[0]: option[1]})  # type: ignore[arg-type]
    assert getattr(chosen, field) == (option[1] if field != "duration" else float(option[1]))
    with pytest.raises(ValueError, match=variable):
        profile_from({variable: "nonsense"})


@pytest.mark.parametrize("command", ["lab", "lab --host"])
def test_lab_load_takes_the_load_settings_of_the_environment(
        command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`lab load`, recorded or of another host (LOAD_HOST), hands Locust the profile the LOAD_*
    settings make (the runner is replaced here by one that records what it was given)."""
    import lab.loadrun
    import loadtests.run
    from lab.cli import main as lab_main

    given: list[Profile] = []

    def record(host: str, profile: Profile, *args: object, **kwargs: object) -> LoadRunResult:
        given.append(profile)
        raise loadtests.run.LoadRunError("recorded, not run")

    for name, value in {"LOAD_SHAPE": "ramp", "LOAD_USERS": "5", "LOAD_SPAWN_RATE": "2.5",
                        "LOAD_DURATION": "33", "VAR_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    if command == "lab":
        monkeypatch.setattr(lab.loadrun, "run_headless", record)
        monkeypatch.setattr(lab.loadrun, "require_running", lambda config: None)
        monkeypatch.setattr(lab.loadrun, "quiet_edge", lambda client: None)
        assert lab_main(["load"]) == 1
    else:
        monkeypatch.setenv("LOAD_HOST", "http://127.0.0.1:9")
        monkeypatch.setattr(lab.loadrun, "run_headless", record)
        assert lab_main(["load"]) == 1
    [profile] = given
    assert (profile.name, profile.users, profile.spawn_rate, profile.duration) == ("ramp", 5, 2.5, 33.0)
