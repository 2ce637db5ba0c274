"""The local launcher, end to end: `lab up` runs the real stack, a user works through Caddy,
Prometheus sees it all, and `lab down` leaves nothing behind."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from analysis.lab_context import RunRecord
from stack.config import LabConfig
from stack.databases import reserved_redis_db, temporary_pg_database
from tests.support.launcher import (
    SERVICES,
    LabRun,
    kill_sessions,
    lab_env,
    lab_stack,
    recorded_pids,
    run_lab,
    session_processes,
)
from tests.support.processes import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.skipif(
    not (shutil.which("caddy") and shutil.which("prometheus")),
    reason="the Debian packages caddy and prometheus are needed (stack/install-system-deps.sh)",
)]


# What the module's `lab up` printed, per VAR_DIR.
UP: dict[Path, LabRun] = {}


@pytest.fixture(scope="module")
def own_postgres_and_redis() -> Iterator[dict[str, str]]:
    """A PostgreSQL database and a Redis database number of this module's own.

    Not the session's: another test module's worker would consume our export tasks.
    """
    with temporary_pg_database("todolab_launcher", migrate=False) as url, reserved_redis_db() as broker:
        yield {"DATABASE_URL": url, "CELERY_BROKER_URL": broker}


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabConfig]:
    """`lab up` from a clean VAR_DIR on free ports: embedded defaults, then PostgreSQL+Redis."""
    extra = request.getfixturevalue("own_postgres_and_redis") if request.param == "postgres" else {}
    var_dir = tmp_path_factory.mktemp(f"lab-{request.param}") / "var"
    env = lab_env(var_dir, extra)
    with lab_stack(env) as up:
        assert up.code == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}"
        UP[var_dir] = up
        yield LabConfig.from_env(env)


def test_up_prints_the_urls_and_status_shows_every_service_healthy(lab: LabConfig) -> None:
    """The user sees where everything is and that it all runs."""
    assert "all 6 services healthy in" in UP[lab.var_dir].stdout
    for url in (lab.environment.app_url, lab.url("PROMETHEUS_PORT"),
                lab.url("WORKER_METRICS_PORT", "/metrics"), lab.url("WEB_PORT"),
                lab.url("ALERTMANAGER_PORT")):
        assert url in UP[lab.var_dir].stdout
    status = run_lab(lab.env, "status")
    assert status.code == 0, status.stdout + status.stderr
    pids = recorded_pids(lab.var_dir)
    port_of = {"web": lab.env["WEB_PORT"], "worker": lab.env["WORKER_METRICS_PORT"],
               "caddy": lab.env["CADDY_PORT"], "prometheus": lab.env["PROMETHEUS_PORT"],
               "alertmanager": lab.env["ALERTMANAGER_PORT"],
               "alert-receiver": lab.env["ALERT_RECEIVER_PORT"]}
    for service in SERVICES:
        line = next(ln for ln in status.stdout.splitlines() if ln.startswith(service + " "))
        assert line.split()[1:] == ["running", str(pids[service]), port_of[service], "ok"], line


def test_a_todo_added_through_caddy_is_in_the_downloaded_export(lab: LabConfig) -> None:
    """Add a todo, export, wait for the worker, download the CSV: it holds exactly that todo."""
    session = requests.Session()
    session.trust_env = False
    added = session.post(f"{lab.environment.app_url}/add", data={"task": "Buy milk via Caddy"},
                         allow_redirects=False, timeout=10)
    assert added.status_code == 303
    assert added.headers.get("X-Request-ID")

    started = session.post(f"{lab.environment.app_url}/export", timeout=10)
    assert started.status_code == 202, started.text
    task_id = started.json()["task_id"]

    def finished() -> bool:
        return session.get(f"{lab.environment.app_url}/tasks/{task_id}", timeout=5).json()["state"] in (
            "succeeded", "failed")

    wait_until(finished, 60, "the export to finish")
    assert session.get(f"{lab.environment.app_url}/tasks/{task_id}", timeout=5).json()["state"] == "succeeded"

    download = session.get(f"{lab.environment.app_url}/download/{task_id}", timeout=10)
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [row["text"] for row in rows] == ["Buy milk via Caddy"]


def _json_lines(text: str) -> list[dict]:  # type: ignore[type-arg]
    """The JSON objects among text's lines (a Python warning on stderr is not one)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_logs_and_spans_of_that_work_are_under_var_log(lab: LabConfig) -> None:
    """`lab logs` shows the app's JSON lines; with no OTLP endpoint spans go to the span file."""
    logs = run_lab(lab.env, "logs", "-n", "100000")
    assert logs.code == 0, logs.stderr
    records = _json_lines(logs.stdout)
    assert any(r.get("service") == "todo-web" and r.get("endpoint") == "todos.add"
               for r in records)
    assert any(r.get("service") == "todo-worker" and r.get("task_id") for r in records)
    assert _json_lines(run_lab(lab.env, "logs", "web", "-n", "3").stdout)

    span_file = lab.var_dir / "log" / "spans.jsonl"

    def services_traced() -> set[str]:
        return {str(s.get("service")) for s in _json_lines(span_file.read_text())}

    wait_until(lambda: {"todo-web", "todo-worker"} <= services_traced(), 30,
               "web and worker spans in the local span file")


def _query(lab: LabConfig, promql: str) -> list[dict]:  # type: ignore[type-arg]
    """The result vector of an instant PromQL query."""
    answer = requests.get(lab.url("PROMETHEUS_PORT", "/api/v1/query"), params={"query": promql}, timeout=5)
    answer.raise_for_status()
    return list(answer.json()["data"]["result"])


def test_prometheus_scrapes_every_target_and_counts_the_requests_just_made(lab: LabConfig) -> None:
    """Every target is up, and the request histogram holds the add made through Caddy."""
    targets = requests.get(lab.url("PROMETHEUS_PORT", "/api/v1/targets"), timeout=5).json()["data"]
    health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
    assert health == {"web": "up", "worker": "up", "caddy": "up", "prometheus": "up"}

    rules = requests.get(lab.url("PROMETHEUS_PORT", "/api/v1/rules"), timeout=5).json()["data"]["groups"]
    assert rules, "the rule files of stack/prometheus/rules are loaded"
    # Alerts go to the lab's own Alertmanager.
    managers = requests.get(lab.url("PROMETHEUS_PORT", "/api/v1/alertmanagers"), timeout=5).json()["data"]
    assert [m["url"] for m in managers["activeAlertmanagers"]] == [
        lab.url("ALERTMANAGER_PORT", "/api/v2/alerts")]

    promql = 'sum(http_request_duration_seconds_count{endpoint="todos.add"})'
    # The add happened in the previous test; wait for a scrape that saw it (5 s interval).
    wait_until(lambda: bool(_query(lab, promql)), 30, "Prometheus to scrape the add request")
    assert float(_query(lab, promql)[0]["value"][1]) == 1.0


def test_load_with_two_locust_workers_is_recorded_for_the_notebooks(lab: LabConfig, tmp_path: Path) -> None:
    """`lab load --workers 2`: a Locust master and two workers load the lab through Caddy; the
    run record and the reports are those of a one-process run."""
    reports = tmp_path / "reports"
    env = {**lab.env, "LAB_REPORTS_DIR": str(reports), "LOAD_WAIT": "0.2,1.0"}
    done = run_lab(env, "load", "--workers", "2", "--users", "4", "--duration", "10", timeout=300)
    assert done.code == 0, done.stdout + done.stderr
    assert "workers=2" in done.stdout and "failures=0 " in done.stdout, done.stdout
    record = RunRecord.from_json((reports / "last-run.json").read_text(encoding="utf-8"))
    assert record.users == 4 and record.host == lab.environment.app_url
    assert record.end > record.start
    for path in (record.stats_csv, record.stats_json, record.html):
        assert path.is_file() and path.parent == reports, path
    with open(record.stats_csv, newline="", encoding="utf-8") as fh:
        total = next(row for row in csv.DictReader(fh) if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 10 and total["Failure Count"] == "0"
    log = next(reports.glob("load-*.log")).read_text(encoding="utf-8")
    assert "2 workers connected" in log


@pytest.mark.skipif(not shutil.which("amtool"), reason="amtool comes with prometheus-alertmanager")
def test_lab_alerts_lists_silences_and_expires_them_through_amtool(lab: LabConfig) -> None:
    """A silence added with `lab alerts silence` is listed by `lab alerts`, then expired."""
    listed = run_lab(lab.env, "alerts")
    assert listed.code == 0, listed.stderr
    assert "firing, not silenced or inhibited" in listed.stdout and "silences:" in listed.stdout
    added = run_lab(lab.env, "alerts", "silence", "alertname=WorkerDown", "--duration", "10m",
                    "--comment", "planned worker restart")
    assert added.code == 0, added.stderr
    silence_id = re.search(r"silence ([0-9a-f-]{36}) added for 10m", added.stdout)
    assert silence_id, added.stdout
    shown = run_lab(lab.env, "alerts").stdout
    assert silence_id[1] in shown and 'alertname="WorkerDown"' in shown and "planned worker restart" in shown
    silences = requests.get(lab.url("ALERTMANAGER_PORT", "/api/v2/silences"), timeout=5).json()
    assert {s["id"]: s["status"]["state"] for s in silences}[silence_id[1]] == "active"
    assert run_lab(lab.env, "alerts", "expire", silence_id[1]).code == 0
    silences = requests.get(lab.url("ALERTMANAGER_PORT", "/api/v2/silences"), timeout=5).json()
    assert {s["id"]: s["status"]["state"] for s in silences}[silence_id[1]] == "expired"
    bad = run_lab(lab.env, "alerts", "silence", "alertname=WorkerDown", "--duration", "soon")
    assert bad.code == 1 and "amtool silence add" in bad.stderr


def test_a_second_up_reports_what_runs_and_starts_nothing(lab: LabConfig) -> None:
    """`lab up` again: every service is reported as running, with the same pids."""
    before = recorded_pids(lab.var_dir)
    again = run_lab(lab.env, "up")
    assert again.code == 0, again.stdout + again.stderr
    for service, pid in before.items():
        assert f"{service}: already running (pid {pid})" in again.stdout
    assert "started" not in again.stdout
    assert recorded_pids(lab.var_dir) == before


def test_up_after_a_service_died_starts_only_that_service(lab: LabConfig) -> None:
    """Caddy is killed behind the lab's back: `lab up` restarts it and nothing else."""
    before = recorded_pids(lab.var_dir)
    os.killpg(before["caddy"], signal.SIGKILL)
    wait_until(lambda: not session_processes({before["caddy"]}), 10, "caddy to die")

    again = run_lab(lab.env, "up")

    assert again.code == 0, again.stdout + again.stderr
    assert "caddy: started" in again.stdout
    after = recorded_pids(lab.var_dir)
    assert after["caddy"] != before["caddy"]
    assert {k: v for k, v in after.items() if k != "caddy"} == {
        k: v for k, v in before.items() if k != "caddy"}
    assert requests.get(f"{lab.environment.app_url}/healthz", timeout=5).status_code == 200


def test_down_stops_every_process_it_started(lab: LabConfig) -> None:
    """After `lab down` no process of any service's session (workers, pool children) is left."""
    sessions = set(recorded_pids(lab.var_dir).values())
    assert len(sessions) == len(SERVICES)
    # gunicorn's workers and Celery's pool children are there to be stopped too.
    assert len(session_processes(sessions)) >= len(SERVICES) + 2 + 2

    down = run_lab(lab.env, "down")

    assert down.code == 0, down.stdout + down.stderr
    for service in SERVICES:
        assert f"{service}: stopped" in down.stdout
    assert session_processes(sessions) == []
    assert recorded_pids(lab.var_dir) == {}
    status = run_lab(lab.env, "status")
    assert status.code == 3
    assert "running" not in status.stdout


def test_up_names_the_debian_package_when_caddy_is_missing(tmp_path: Path) -> None:
    """Without caddy on PATH, `lab up` says which package to install and starts nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    prometheus = shutil.which("prometheus")
    assert prometheus
    (bin_dir / "prometheus").symlink_to(prometheus)
    env = lab_env(tmp_path / "var", {"PATH": str(bin_dir)})

    result = run_lab(env, "up")

    assert result.code == 1
    assert "caddy not found on PATH" in result.stderr
    assert "apt-get install caddy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert recorded_pids(tmp_path / "var") == {}


def test_up_refuses_a_port_taken_by_another_program(tmp_path: Path) -> None:
    """A foreign listener on WEB_PORT: `lab up` names the port and variable, starts nothing."""
    env = lab_env(tmp_path / "var")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["WEB_PORT"])))
        squatter.listen()
        result = run_lab(env, "up")

    assert result.code == 1
    assert f"port {env['WEB_PORT']} (WEB_PORT) for web is already in use" in result.stderr
    assert recorded_pids(tmp_path / "var") == {}


def test_down_never_signals_a_process_whose_pid_was_recycled(tmp_path: Path) -> None:
    """A pid file naming a live pid with another start time: `lab down` leaves that process."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run_dir = tmp_path / "var" / "run"
        run_dir.mkdir(parents=True)
        (run_dir / "web.pid").write_text(
            f'{{"service": "web", "pid": {bystander.pid}, "create_time": {time.time() - 3600},'
            f' "port": 5000, "argv": []}}\n'
        )
        env = lab_env(tmp_path / "var")

        status = run_lab(env, "status")
        down = run_lab(env, "down")

        assert "stale" in status.stdout
        assert "web: was not running (stale pid file removed)" in down.stdout
        assert bystander.poll() is None
        assert recorded_pids(tmp_path / "var") == {}
    finally:
        bystander.kill()
        bystander.wait()


def test_a_service_that_fails_to_start_is_named_and_the_rest_is_stopped(tmp_path: Path) -> None:
    """A broken Caddy config: `lab up` names caddy, shows its log, and leaves nothing running."""
    broken = tmp_path / "Caddyfile"
    broken.write_text(":{$CADDY_PORT} {\n\tno_such_directive\n}\n")
    var_dir = tmp_path / "var"
    env = lab_env(var_dir, {"LAB_CADDYFILE": str(broken)})
    started: set[int] = set()
    try:
        result = run_lab(env, "up")
        started = {int(ln.rsplit("pid ", 1)[1].rstrip(")")) for ln in result.stdout.splitlines()
                   if ": started (pid " in ln}

        assert result.code == 1
        assert "caddy exited with code" in result.stderr
        assert "no_such_directive" in result.stderr  # the tail of caddy.log
        assert len(started) == 6
        assert session_processes(started) == []
        assert recorded_pids(var_dir) == {}
    finally:
        kill_sessions(started)


def test_two_services_on_one_port_are_refused(tmp_path: Path) -> None:
    """WEB_PORT equal to CADDY_PORT cannot work: `lab up` says so and starts nothing."""
    env = lab_env(tmp_path / "var")
    env["WEB_PORT"] = env["CADDY_PORT"]

    result = run_lab(env, "up")

    assert result.code == 1
    assert f"are both {env['WEB_PORT']}: give each its own port" in result.stderr
    assert recorded_pids(tmp_path / "var") == {}


def test_a_bad_setting_stops_up_before_anything_starts(tmp_path: Path) -> None:
    """A malformed port is reported in one line naming the variable."""
    env = lab_env(tmp_path / "var", {"WEB_PORT": "fivethousand"})

    result = run_lab(env, "up")

    assert result.code == 2
    assert result.stderr.strip() == "lab up: WEB_PORT='fivethousand' is invalid: expected an integer"
    assert recorded_pids(tmp_path / "var") == {}
