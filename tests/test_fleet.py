"""A fleet: 3 web replicas (each its own gunicorn, 2 workers) behind Caddy and 2 Celery worker
replicas, on PostgreSQL and Redis, scraped by a real Prometheus that finds them by file_sd.

Under Locust's load one web replica is killed (SIGKILL: no goodbye) and restarted. What must
hold, as a user of the lab would check it: every write the app acknowledged is stored once;
Locust's count, the access lines and Prometheus's per-series increases agree, up to exactly
what a crash can lose (what the dead replica counted after Prometheus last scraped it,
bounded from the scrape times); Caddy's health check takes the replica out and puts it back;
the WebReplicaDown alert fires within the time the timing model predicts.
"""

from __future__ import annotations

import csv
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from analysis import prom
from analysis.alert_rules import Timers, predict, rule
from analysis.lab_context import quiet_edge
from loadtests.run import LoadRunResult, run_headless
from loadtests.shapes import make_profile
from stack import launch
from stack.launch import Running
from stack.switchboard import FaultSwitch
from tests.support.backends import Backend
from tests.support.launcher import lab_env, lab_stack, recorded_pids, run_lab
from tests.support.plugin import StackFactory
from tests.support.processes import wait_until

FLEET = {"WEB_REPLICAS": "3", "WORKER_REPLICAS": "2", "TRACING_ENABLED": "true"}
FAST_USERS = {"LOAD_WAIT": "0.2,1.0", "LOAD_WEIGHTS": "reader=1,writer=1,exporter=1,api=1"}
WRITER_AGENT = "fleet-test-writer"
SCRAPE_S = 5.0


@pytest.fixture(scope="module")
def fleet(postgres_backend: Backend, stack_factory: StackFactory) -> Iterator[Running]:
    """3 web and 2 worker replicas, Caddy and Prometheus, over empty tables."""
    postgres_backend.clean()
    with stack_factory(FLEET, ("web", "worker", "caddy", "prometheus"), workers=2, threads=4,
                       timeout=120) as running:
        yield running


def access_lines(running: Running) -> list[dict[str, Any]]:
    """Every web replica's access lines (the log files survive a replica's restart)."""
    lines = []
    for name in ("web", "web-2", "web-3"):
        path = running.config.layout.log(name)
        for raw in path.read_text(encoding="utf-8").splitlines():
            if raw.startswith("{") and '"app.access"' in raw:
                record = json.loads(raw)
                record["at"] = datetime.fromisoformat(record["timestamp"]).timestamp()
                lines.append(record)
    return lines


def prometheus(running: Running) -> prom.Prometheus:
    return prom.Prometheus(running.prometheus.url, SCRAPE_S)


def query(running: Running, promql: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{running.prometheus.url}/api/v1/query", params={"query": promql}, timeout=5)
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def test_every_replica_is_a_target_named_by_its_instance_in_logs_and_spans(fleet: Running) -> None:
    web = [h.url.removeprefix("http://").rstrip("/") for h in fleet.replicas("web")]
    workers = [h.metrics_url.removeprefix("http://").removesuffix("/metrics")
               for h in fleet.replicas("worker")]
    assert len(web) == 3 and len(workers) == 2
    ups = {(s["metric"]["job"], s["metric"]["instance"]): s["value"][1] for s in query(fleet, "up")}
    assert {i for j, i in ups if j == "web"} == set(web)
    assert {i for j, i in ups if j == "worker"} == set(workers)
    assert all(v == "1" for (j, _), v in ups.items() if j in ("web", "worker"))
    # Through Caddy, round robin: every replica answers, and says which it is in its lines.
    for _ in range(12):
        assert requests.get(f"{fleet.caddy.url}/api/todos", timeout=5).status_code == 200
    served = {line["instance"] for line in access_lines(fleet) if line.get("http.path") == "/api/todos"}
    assert served == set(web)
    for name, instance in zip(("web", "web-2", "web-3"), web, strict=True):
        lines = fleet.config.layout.log(name).read_text(encoding="utf-8").splitlines()
        records = [json.loads(raw) for raw in lines if raw.startswith("{")]
        assert records and all(r.get("instance") == instance for r in records), name
    # Each worker replica has its own Celery node name.
    first, second = (h.output() for h in fleet.replicas("worker"))
    assert "-1@" in first and "-2@" not in first and "-2@" in second

    def spans_of_every_replica() -> bool:
        path = fleet.config.layout.span_file
        raw_lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        spans = [json.loads(raw) for raw in raw_lines]
        return {s.get("instance") for s in spans if s.get("service") == "todo-web"} >= set(web)

    wait_until(spans_of_every_replica, timeout=20, what="spans of every web replica (service.instance.id)")


def test_a_fault_set_on_one_replica_acts_there_alone(fleet: Running) -> None:
    third = fleet.replicas("web")[2].url.removeprefix("http://").rstrip("/")
    switch = FaultSwitch.for_config(fleet.config)
    began = time.time()
    switch.set({f"error_rate@{third}": 1.0})
    try:
        statuses = [requests.get(f"{fleet.caddy.url}/api/todos", timeout=5).status_code for _ in range(30)]
    finally:
        switch.clear(f"error_rate@{third}")
    lines = [line for line in access_lines(fleet)
             if line["at"] >= began and line.get("http.path") == "/api/todos"]
    assert len(lines) == 30 and statuses.count(500) == sum(1 for line in lines if line["status_code"] == 500)
    assert {line["instance"] for line in lines if line["status_code"] == 500} == {third}
    assert all(line["status_code"] == 500 for line in lines if line["instance"] == third)
    assert 0 < statuses.count(500) < 30


class Writer(threading.Thread):
    """Adds todos through Caddy, each with its own request id, and remembers every answer."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.done = base, threading.Event()
        self.answers: list[tuple[str, str, int]] = []  # (request id, text, status or 0)

    def run(self) -> None:
        with requests.Session() as session:
            session.headers["User-Agent"] = WRITER_AGENT
            while not self.done.is_set():
                rid, task = uuid.uuid4().hex, f"fleet {uuid.uuid4().hex}"
                try:
                    status = session.post(f"{self.base}/add", json={"task": task}, timeout=10,
                                          headers={"X-Request-ID": rid}).status_code
                except requests.RequestException:
                    status = 0
                self.answers.append((rid, task, status))
                time.sleep(0.1)


def locust_502s(result: LoadRunResult) -> int:
    """Locust's failures that were Caddy's 502 (the replica died under the request)."""
    with result.failures_csv.open(encoding="utf-8") as fh:
        return sum(int(row["Occurrences"]) for row in csv.DictReader(fh)
                   if "502" in row["Error"])


def healthy_in_caddy(running: Running, upstream: str) -> str | None:
    found = query(running, f'caddy_reverse_proxy_upstreams_healthy{{upstream="{upstream}"}}')
    return found[0]["value"][1] if found else None


def test_a_replica_killed_and_restarted_under_load(fleet: Running, postgres_backend: Backend,
                                                    tmp_path: Path) -> None:
    second = fleet.services["web-2"]
    address = second.url.removeprefix("http://").rstrip("/")
    # A quiet edge: the earlier tests' requests are all scraped before it, none of ours is.
    start = quiet_edge(prometheus(fleet))
    results: list[LoadRunResult] = []
    load = threading.Thread(target=lambda: results.append(run_headless(
        fleet.caddy.url, make_profile("steady", users=6, duration=75), reports_dir=tmp_path,
        extra_env=FAST_USERS)), daemon=True)
    writer = Writer(fleet.caddy.url)
    load.start()
    writer.start()
    time.sleep(15)

    killed_at = time.time()
    second.stop(9)  # SIGKILL to its process group: master and workers, mid-request
    seen_out = fired_at = None
    deadline = time.monotonic() + 70
    while time.monotonic() < deadline and (seen_out is None or fired_at is None):
        if seen_out is None and healthy_in_caddy(fleet, address) == "0":
            seen_out = time.time()
        alerts = requests.get(f"{fleet.prometheus.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        if fired_at is None and any(a["labels"].get("alertname") == "WebReplicaDown"
                                    and a["state"] == "firing" and a["labels"].get("instance") == address
                                    for a in alerts):
            fired_at = time.time()
        time.sleep(0.5)
    assert seen_out is not None, "Caddy never reported the killed replica unhealthy"
    assert fired_at is not None, "WebReplicaDown never fired"

    restarted_at = time.time()
    fleet.services["web-2"] = launch.start_one(fleet.config, "web-2")
    wait_until(lambda: healthy_in_caddy(fleet, address) == "1", timeout=40,
               what="Caddy's health check taking the restarted replica back")
    load.join(timeout=180)
    writer.done.set()
    writer.join(timeout=20)
    end = quiet_edge(prometheus(fleet))  # every replica scraped after its last request
    (result,) = results
    print(result.summary())

    # 1. Every write the app acknowledged is stored exactly once; none twice.
    engine = create_engine(postgres_backend.database_url)
    with engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT text, count(*) FROM todos WHERE text LIKE 'fleet %' "
                                        "GROUP BY text")).all())
    engine.dispose()
    acknowledged = [task for _, task, status in writer.answers if status == 201]
    assert len(acknowledged) > 100
    assert all(stored.get(task) == 1 for task in acknowledged)
    assert max(stored.values()) == 1

    lines = [line for line in access_lines(fleet) if start.timestamp() <= line["at"] <= end.timestamp()]
    # 2. Every web replica served, the restarted one again after its restart.
    by_instance = {h.url.removeprefix("http://").rstrip("/"): 0 for h in fleet.replicas("web")}
    for line in lines:
        by_instance[line["instance"]] += 1
    assert all(count > 0 for count in by_instance.values()), by_instance
    assert any(line["instance"] == address and line["at"] > restarted_at for line in lines)
    assert not any(line["instance"] == address and killed_at < line["at"] < restarted_at for line in lines)

    # 3. Locust against the access lines: every request Locust got the app's answer to has a
    # line. Caddy answers 502 for a request the dying replica held: it has a line when the
    # replica had logged it before its answer was lost, else none, so only Locust's 502s may
    # stand over. Caddy retries a GET whose replica died under it on another replica with the
    # same request id: lines are counted per request id.
    locust_lines = [line for line in lines if "+locust" in line.get("user_agent", "")]
    bad_gateway = locust_502s(result)
    answered = result.requests - bad_gateway
    ids = {line["request_id"] for line in locust_lines}
    print(f"Locust: {result.requests} requests, {bad_gateway} answered 502 by Caddy; "
          f"{len(locust_lines)} access lines of {len(ids)} requests")
    assert answered <= len(ids) <= result.requests, (answered, len(ids), bad_gateway)
    assert bad_gateway <= 10  # at most the requests in flight on the dying replica
    # The writer knows each request's id: every answer the app gave it has its line.
    mine = {line.get("request_id") for line in lines if line.get("user_agent") == WRITER_AGENT}
    assert {rid for rid, _, status in writer.answers if status not in (0, 502)} <= mine

    # 4. Prometheus, summing each series' own increase, against the access lines: all of them
    # but what the killed replica counted after its last scrape (lost with its memory).
    # Bounds from that scrape: lines after it started may be lost; lines after it ended are.
    ups = prometheus(fleet).client.custom_query(f'up{{instance="{address}"}}[10m]')
    durations = prometheus(fleet).client.custom_query(
        f'scrape_duration_seconds{{instance="{address}"}}[10m]')
    # Its last good scrape before the restart (one may land in the instant the kill takes).
    last_ok = max(float(t) for t, v in ups[0]["values"] if v == "1" and float(t) < restarted_at)
    took = dict((float(t), float(v)) for t, v in durations[0]["values"])[last_ok]
    before_kill = [line for line in lines if line["instance"] == address and line["at"] < restarted_at]
    lost_most = sum(1 for line in before_kill if line["at"] > last_ok - 0.05)
    lost_least = sum(1 for line in before_kill if line["at"] > last_ok + took + 0.05)
    counted = prom.counter_increase(prometheus(fleet), 'http_request_duration_seconds_count{job="web"}',
                                    start, end)
    print(f"Prometheus counted {counted:.0f} of {len(lines)} access lines; the crash could lose "
          f"{lost_least} to {lost_most} (web-2's lines after its last scrape)")
    assert len(lines) - lost_most <= counted <= len(lines) - lost_least, (
        len(lines), counted, lost_least, lost_most)
    # Differencing the sum (the query a single server allows) reads the restart as lost traffic.
    naive = prometheus(fleet).scalar(
        prom.run_increase_query('http_request_duration_seconds_count{job="web"}', start, end), end)
    assert naive < counted

    # 5. WebReplicaDown fired within the model's prediction (Prometheus's side: no Alertmanager).
    timers = Timers(SCRAPE_S, SCRAPE_S, 0.0, 0.0, 0.0)
    firing = predict(rule("WebReplicaDown"), timers, processing_s=1.0).firing
    assert firing is not None
    measured = fired_at - killed_at
    print(f"WebReplicaDown fired {measured:.1f} s after the kill; predicted "
          f"{firing.earliest_s:.0f}-{firing.latest_s:.0f} s")
    assert firing.earliest_s - 0.5 <= measured <= firing.latest_s + 1.0  # + our 0.5 s polling
    assert seen_out - killed_at < 30  # the health check within 1 s; Caddy's gauge updates every 10 s


# --- the commands of a fleet: `lab up --web/--workers`, `lab status`, `lab logs`, `lab fault` ---


def test_lab_logs_web_interleaves_the_replicas_in_time_order(tmp_path: Path) -> None:
    env = lab_env(tmp_path / "var", {"WEB_REPLICAS": "2"})
    log_dir = tmp_path / "var" / "log"
    log_dir.mkdir(parents=True)
    for name, seconds in (("web", (1, 3)), ("web-2", (2, 4)), ("worker", (5,))):
        lines = [json.dumps({"timestamp": f"2026-12-07T10:00:0{s}+00:00", "message": f"{name} {s}"})
                 for s in seconds]
        (log_dir / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shown = run_lab(env, "logs", "web", "-n", "10")
    assert shown.code == 0, shown.stderr
    assert [json.loads(line)["message"] for line in shown.stdout.splitlines()] == [
        "web 1", "web-2 2", "web 3", "web-2 4"]
    one = run_lab(env, "logs", "web-2", "-n", "10")
    assert [json.loads(line)["message"] for line in one.stdout.splitlines()] == ["web-2 2", "web-2 4"]
    unknown = run_lab(env, "logs", "web-3")
    assert unknown.code == 2 and "no service 'web-3'" in unknown.stdout and "web-2" in unknown.stdout


def test_lab_fault_on_one_replica_writes_its_instance_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    env = lab_env(tmp_path / "var", {"WEB_REPLICAS": "3"})
    third = f"127.0.0.1:{int(env['WEB_PORT']) + 2}"
    done = run_lab(env, "fault", "set", "--instance", "web-3", "latency=0.2", "error_rate=0.1")
    assert done.code == 0, done.stderr
    assert set(done.stdout.split()) == {f"latency@{third}=0.2", f"error_rate@{third}=0.1"}
    also = run_lab(env, "fault", "set", "--instance", third, "slow_db=0.1")  # the instance itself
    assert also.code == 0 and f"slow_db@{third}=0.1" in also.stdout
    unknown = run_lab(env, "fault", "set", "--instance", "web-4", "latency=0.2")
    assert unknown.code == 2 and "no replica 'web-4'" in unknown.stderr and "web-3" in unknown.stderr
    # An empty name is no replica at all, never the whole service.
    empty = run_lab(env, "fault", "set", "--instance", "", "latency=0.2")
    assert empty.code == 2 and "no replica ''" in empty.stderr
    cleared = run_lab(env, "fault", "clear", "--instance", "web-3")
    assert cleared.code == 0 and "no fault in force" in cleared.stdout


@pytest.mark.stack
def test_lab_up_grows_and_shrinks_the_fleet_and_status_and_down_see_every_replica(tmp_path: Path) -> None:
    env = lab_env(tmp_path / "var")
    var = tmp_path / "var"
    with lab_stack(env) as up:
        assert up.code == 0, up.stderr
        grown = run_lab(env, "up", "--web", "3", "--workers", "2", timeout=180)
        assert grown.code == 0, grown.stderr
        assert "caddy: stopping (restarting for the new set of web replicas)" in grown.stdout
        assert {"web", "web-2", "web-3", "worker", "worker-2"} <= set(recorded_pids(var))
        status = run_lab(env, "status")  # no flag: the fleet `lab up` started is remembered
        assert status.code == 0, status.stdout
        third = int(env["WEB_PORT"]) + 2
        assert re.search(rf"^web-3 +running +\d+ +{third} +ok +\(replica 3 of web: instance "
                         rf"127\.0\.0\.1:{third}\)$", status.stdout, re.MULTILINE), status.stdout
        answers = {requests.get(f"http://127.0.0.1:{env['CADDY_PORT']}/healthz", timeout=5).status_code
                   for _ in range(6)}
        assert answers == {200}
        targets = json.loads((var / "prometheus" / "targets" / "web.json").read_text())
        assert len(targets[0]["targets"]) == 3
        shrunk = run_lab(env, "up", "--web", "1", timeout=180)
        assert shrunk.code == 0, shrunk.stderr
        assert "web-3: stopping (not part of the fleet any more)" in shrunk.stdout
        assert "worker-2" in recorded_pids(var) and "web-2" not in recorded_pids(var)
        down = run_lab(env, "down")
        assert "worker-2: stopped" in down.stdout and not recorded_pids(var)
    # After `lab down` the fleet is forgotten: the next `lab up` is one of each again.
    assert not (var / "run" / "fleet.json").exists()
