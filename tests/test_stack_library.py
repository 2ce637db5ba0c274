"""The stack library's pieces on their own: the layout, building the topology, stopping by
session, and an attached stack that always tears down (the end-to-end runs are in
test_launcher.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from app.layout import Layout
from app.settings import PORT_DEFAULTS, Settings
from lab.cli import chosen_command
from stack import caddy_config, launch, processes, prometheus_config, topology
from stack.config import LabConfig
from stack.errors import StackError
from tests.support.processes import ROOT

# A program that ends on SIGTERM, one that shrugs it off, and one that leaves a child behind
# in its session when it ends (the child must not outlive the stop).
POLITE = "import time; time.sleep(300)"
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
FAMILY = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"


def test_the_layout_puts_everything_under_var_dir(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.log("web") == tmp_path / "log" / "web.jsonl"
    assert layout.log("caddy") == tmp_path / "log" / "caddy.log"
    assert layout.span_file == tmp_path / "log" / "spans.jsonl"
    assert layout.pid_file("worker") == tmp_path / "run" / "worker.pid"
    assert layout.faults_file == tmp_path / "faults.json"
    assert layout.prometheus_data == tmp_path / "prometheus" / "data"
    settings = Settings.from_env({"VAR_DIR": str(tmp_path)})
    assert settings.layout == layout
    assert (settings.faults_file, settings.export_dir) == (layout.faults_file, layout.export_dir)
    assert settings.database_url == f"sqlite:///{layout.database_file}"


def test_build_describes_each_service_once_on_the_configs_ports(tmp_path: Path) -> None:
    config = LabConfig.private(tmp_path, worker_concurrency=3, worker_args=("--loglevel=INFO",))
    services = topology.build(config)
    assert [s.name for s in services] == list(topology.SERVICE_NAMES)
    assert [s.name for s in services][:3] == ["web", "worker", "caddy"]
    assert services[-1].name == "prometheus"  # started last: every target it scrapes is up
    ports = [port for s in services for port in s.ports(config).values()]
    assert len(ports) == len(set(ports)) and set(ports).isdisjoint(PORT_DEFAULTS.values())
    worker, caddy = services[1:3]
    assert worker.argv[-2:] == ["--concurrency=3", "--loglevel=INFO"]
    assert caddy.env["CADDY_UPSTREAMS"] == str(config.layout.caddy_upstreams)
    assert f"to 127.0.0.1:{config.port('WEB_PORT')}\n" in caddy_config.render_upstreams(config)
    assert all(s.log_path(config) == config.layout.log(s.name) for s in services)
    jobs = topology.scrape_jobs(config, services)
    assert jobs == {name: [f"127.0.0.1:{config.port(var)}"] for name, var in (
        ("web", "WEB_PORT"), ("worker", "WORKER_METRICS_PORT"), ("caddy", "CADDY_METRICS_PORT"),
        ("prometheus", "PROMETHEUS_PORT"))}
    prometheus_config.write_config(config, jobs)
    for job, targets in jobs.items():
        written = json.loads(prometheus_config.targets_file(config, job).read_text())
        assert written == [{"targets": targets, "labels": {}}]
        rendered = config.layout.prometheus_config.read_text()
        assert json.dumps(str(prometheus_config.targets_file(config, job))) in rendered


def test_a_fleet_gives_each_replica_its_port_metrics_directory_instance_and_node_name(tmp_path: Path) -> None:
    config = LabConfig.private(tmp_path, {"WEB_REPLICAS": "3", "WORKER_REPLICAS": "2"},
                               worker_args=("--hostname=t-7@%h",))
    services = topology.build(config)
    web, worker = config.port("WEB_PORT"), config.port("WORKER_METRICS_PORT")
    assert [s.name for s in services][:5] == ["web", "web-2", "web-3", "worker", "worker-2"]
    assert [s.instance(config) for s in services[:5]] == [
        f"127.0.0.1:{web}", f"127.0.0.1:{web + 1}", f"127.0.0.1:{web + 2}",
        f"127.0.0.1:{worker}", f"127.0.0.1:{worker + 1}"]
    for service in services[:5]:
        assert service.env["LAB_INSTANCE"] == service.instance(config)
        assert service.env["PROMETHEUS_MULTIPROC_DIR"] == str(config.layout.metrics_dir(service.name))
    # Celery tells workers apart by node name: each replica has its own.
    assert [s.argv[-1] for s in services[3:5]] == ["--hostname=t-7-1@%h", "--hostname=t-7-2@%h"]
    assert topology.scrape_jobs(config, services)["web"] == [s.instance(config) for s in services[:3]]
    upstreams = " ".join(s.instance(config) for s in services[:3])
    assert f"to {upstreams}\n" in caddy_config.render_upstreams(config)
    # A port one replica would share with another service is refused before anything starts.
    clash = LabConfig.private(tmp_path, {"WEB_REPLICAS": "2", "WEB_PORT": str(web),
                                         "CADDY_PORT": str(web + 1)})
    with pytest.raises(StackError, match=r"CADDY_PORT and WEB_PORT\+1 are both"):
        launch.check_ports(clash, [])
    with pytest.raises(StackError, match="WEB_REPLICAS=9 is out of range"):
        LabConfig.private(tmp_path, {"WEB_REPLICAS": "9"})


def test_build_of_a_subset_keeps_only_those_services(tmp_path: Path) -> None:
    config = LabConfig.private(tmp_path)
    assert [s.name for s in topology.build(config, ("web", "worker"))] == ["web", "worker"]
    assert [s.name for s in topology.build(config, ("prometheus",))] == ["prometheus"]


def test_a_private_config_keeps_nothing_of_the_callers_database_or_collector(tmp_path: Path) -> None:
    caller = {"DATABASE_URL": "postgresql://elsewhere/db", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x",
              "PATH": "/usr/bin"}
    config = LabConfig.private(tmp_path, {"LOG_LEVEL": "DEBUG"}, base=caller)
    assert "DATABASE_URL" not in config.env and "OTEL_EXPORTER_OTLP_ENDPOINT" not in config.env
    assert config.env["PATH"] == "/usr/bin" and config.env["LOG_LEVEL"] == "DEBUG"
    assert config.var_dir == tmp_path.resolve() and config.env["TRACING_ENABLED"] == "false"


def test_the_cli_loads_the_command_its_first_word_names() -> None:
    assert chosen_command(["status"]) == "status"
    assert chosen_command(["--help"]) is None
    assert chosen_command(["nosuch", "x"]) is None


def _detached(tmp_path: Path, name: str, code: str) -> tuple[subprocess.Popen[bytes], processes.PidRecord]:
    """Start python -c code detached, recorded in tmp_path/run."""
    popen, record = processes.start_detached(name, [sys.executable, "-c", code], {}, ROOT,
                                             tmp_path / f"{name}.log", tmp_path / "run", 0)
    processes.wait_until(lambda: len(processes.session_members(record)) >= 1, 10, f"{name} to run")
    return popen, record


def test_stop_ends_every_process_of_each_session_and_says_how(tmp_path: Path) -> None:
    started = [_detached(tmp_path, name, code) for name, code in
               (("polite", POLITE), ("stubborn", STUBBORN), ("family", FAMILY))]
    records = [record for _, record in started]
    processes.wait_until(lambda: len(processes.session_members(records[2])) == 2, 10, "the child")
    time.sleep(0.5)  # the stubborn one has installed its handler
    try:
        outcome = processes.stop(records, timeout=2)
        # The family's leader ends on SIGTERM; its child does not, so the session is killed.
        assert outcome == {"polite": "stopped", "stubborn": "killed", "family": "killed"}
        assert [processes.session_members(record) for record in records] == [[], [], []]
        assert processes.read_pid(tmp_path / "run", "polite") == records[0]  # the caller forgets it
    finally:
        for popen, record in started:
            for proc in processes.session_members(record):
                proc.send_signal(signal.SIGKILL)
            popen.wait(10)


def test_stop_never_signals_a_pid_that_now_belongs_to_another_process(tmp_path: Path) -> None:
    me = psutil.Process()
    recycled = processes.PidRecord("old", me.pid, me.create_time() - 1000, 0, [])
    assert processes.stop([recycled], timeout=1) == {"old": "not running"}
    assert me.is_running()


@pytest.mark.stack
def test_an_attached_stack_stops_what_started_when_a_later_service_fails(tmp_path: Path) -> None:
    broken = tmp_path / "Caddyfile"
    broken.write_text(":{$CADDY_PORT} {\n\tno_such_directive\n}\n")
    config = LabConfig.private(tmp_path / "var", {"LAB_CADDYFILE": str(broken)})
    started: list[int] = []
    real_start = processes.start

    def spy(*args: object, **kwargs: object) -> processes.Proc:
        proc = real_start(*args, **kwargs)  # type: ignore[arg-type]
        started.append(proc.pid)
        return proc

    launch_start = launch.processes.start
    launch.processes.start = spy  # type: ignore[assignment]
    try:
        with pytest.raises(StackError, match="caddy exited with code"), \
                launch.attached(config, ("web", "worker", "caddy")):
            pytest.fail("a stack whose Caddy cannot start is never handed out")
    finally:
        launch.processes.start = launch_start  # type: ignore[assignment]
    assert len(started) == 3
    assert [pid for pid in started if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE] == []


def test_json_records_are_the_json_lines_of_a_process_from_an_offset(tmp_path: Path) -> None:
    code = ("import json; print('starting up'); print(json.dumps({'n': 1}));"
            " print('{not json'); print(json.dumps({'n': 2}))")
    proc = processes.start("talker", [sys.executable, "-c", code], {"PATH": "/usr/bin:/bin"},
                           ROOT, tmp_path / "talker.log")
    try:
        proc.popen.wait(30)
        assert proc.json_records() == [{"n": 1}, {"n": 2}]
        second = proc.output().index('{"n": 2}')
        assert proc.json_records(since=second) == [{"n": 2}]
    finally:
        proc.stop()
