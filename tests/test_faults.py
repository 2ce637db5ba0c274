"""Fault injection as an instructor uses it: `lab fault set/clear` switches live faults in
every gunicorn worker and pool child at once, and each fault shows in the right signals."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.faults import FaultError, Switchboard, parse_assignment, write_faults
from lab.incident import schedule
from stack.config import BIN_DIR
from stack.launch import Running
from stack.switchboard import FaultSwitch, SwitchboardError
from tests.support.plugin import StackFactory
from tests.support.processes import ROOT, free_port, wait_until

LAB = str(BIN_DIR / "lab")
TOKEN = "workshop-token-0123456789"


def lab_env(stack: Running, through: str = "route") -> dict[str, str]:
    """The environment a user's `lab` runs with against this stack: its app's address and the
    faults token (as on the Docker stack: the switchboard is reached through the admin route),
    or no token (as on the local lab: through the file)."""
    env = {**stack.env, "PATH": "/usr/bin:/bin", "LAB_APP_URL": stack.web.url}
    if through == "file":
        env.pop("FAULTS_TOKEN")
    return env


def lab(stack: Running, *args: str, through: str = "route") -> subprocess.CompletedProcess[str]:
    """Run the `lab` CLI against this stack."""
    return subprocess.run([LAB, *args], cwd=ROOT, env=lab_env(stack, through),
                          capture_output=True, text=True, timeout=60)


def sample(url: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent) in one scrape."""
    text = requests.get(url, timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for one in family.samples:
            if one.name == name and all(one.labels.get(k) == v for k, v in labels.items()):
                total += one.value
    return total


def access_since(stack: Running, since: int) -> list[dict[str, Any]]:
    """The web's access-log records written after character offset since."""
    return [r for r in stack.web.json_records(since) if r.get("logger") == "app.access"]


@pytest.fixture(scope="module")
def stack(stack_factory: StackFactory) -> Iterator[Running]:
    """gunicorn (2 workers) and a prefork worker sharing one fault file, tracing to the local
    span file, on PostgreSQL and Redis."""
    with stack_factory({"TRACING_ENABLED": "true", "OTEL_BSP_SCHEDULE_DELAY": "200",
                        "FAULTS_TOKEN": TOKEN}) as running:
        yield running
        write_faults(running.config.layout.faults_file, {})


@pytest.fixture(autouse=True)
def no_faults(stack: Running) -> Iterator[None]:
    """Every test starts and ends with the switchboard clear."""
    lab(stack, "fault", "clear")
    yield
    lab(stack, "fault", "clear")


@pytest.mark.stack
def test_a_switch_reaches_every_worker_at_once_and_clearing_restores(stack: Running) -> None:
    assert lab(stack, "fault", "set", "error_rate.api.list_todos=1").returncode == 0
    offset = len(stack.web.output())
    answers = [requests.get(f"{stack.web.url}/api/todos", timeout=10) for _ in range(40)]
    assert {a.status_code for a in answers} == {500}
    body = answers[0].json()
    assert body["fault"] == "error_rate.api.list_todos"
    assert body["request_id"] == answers[0].headers["X-Request-ID"]
    # Other endpoints are untouched by an endpoint-scoped fault.
    assert requests.get(f"{stack.web.url}/", timeout=10).status_code == 200
    pids = {line["pid"] for line in access_since(stack, offset) if line["status_code"] == 500}
    assert len(pids) == 2, "both gunicorn workers applied the fault"

    assert lab(stack, "fault", "clear").returncode == 0
    assert {requests.get(f"{stack.web.url}/api/todos", timeout=10).status_code for _ in range(40)} == {200}


@pytest.mark.stack
def test_each_process_logs_a_change_once(stack: Running) -> None:
    offset = len(stack.web.output())
    lab(stack, "fault", "set", "latency.todos.index=0.01")
    for _ in range(30):
        requests.get(f"{stack.web.url}/", timeout=10)
    changes = [line for line in stack.web.output()[offset:].splitlines()
               if "fault injection changed: latency.todos.index=0.01" in line]
    pids = [json.loads(line)["pid"] for line in changes]
    assert len(pids) == len(set(pids)) == 2


@pytest.mark.stack
def test_injected_errors_are_counted_as_500s_and_logged(stack: Running) -> None:
    metrics = f"{stack.web.url}/metrics"
    labels = {"endpoint": "todos.index", "status": "500"}
    before = sample(metrics, "http_request_duration_seconds_count", **labels)
    lab(stack, "fault", "set", "error_rate.todos.index=0.5")
    offset = len(stack.web.output())
    statuses = [requests.get(f"{stack.web.url}/", timeout=10).status_code for _ in range(200)]
    failed = statuses.count(500)
    assert set(statuses) == {200, 500}
    # 200 draws at p=0.5: outside 60..140 has probability < 1e-8.
    assert 60 <= failed <= 140
    after = sample(metrics, "http_request_duration_seconds_count", **labels)
    assert after - before == failed
    logged = [line for line in access_since(stack, offset) if line["status_code"] == 500]
    assert len(logged) == failed


@pytest.mark.stack
def test_injected_latency_shows_in_the_histogram_and_the_span(stack: Running) -> None:
    metrics = f"{stack.web.url}/metrics"
    labels = {"endpoint": "api.get_todo", "status": "404"}
    sum_before = sample(metrics, "http_request_duration_seconds_sum", **labels)
    slow_before = sample(metrics, "http_request_duration_seconds_bucket", le="0.25", **labels)
    count_before = sample(metrics, "http_request_duration_seconds_count", **labels)
    lab(stack, "fault", "set", "latency.api.get_todo=0.3")
    answers = [requests.get(f"{stack.web.url}/api/todos/999999", timeout=10) for _ in range(5)]
    assert {a.status_code for a in answers} == {404}
    count = sample(metrics, "http_request_duration_seconds_count", **labels) - count_before
    assert count == 5
    assert sample(metrics, "http_request_duration_seconds_sum", **labels) - sum_before >= 5 * 0.3
    # None of the five fits under the 0.25 s objective bucket.
    assert sample(metrics, "http_request_duration_seconds_bucket", le="0.25", **labels) == slow_before
    trace_ids = {a.headers["traceparent"].split("-")[1] for a in answers}

    def marked_spans() -> list[dict[str, object]]:
        if not stack.config.layout.span_file.exists():
            return []
        spans = [json.loads(line) for line in stack.config.layout.span_file.read_text().splitlines()]
        return [s for s in spans if s["trace_id"] in trace_ids and s["attributes"].get("fault.injected")]

    wait_until(lambda: len(marked_spans()) == 5, 15, "the five marked server spans")
    assert {s["attributes"]["fault.name"] for s in marked_spans()} == {"latency.api.get_todo"}


@pytest.mark.stack
def test_failed_exports_are_counted_as_failed_jobs(stack: Running) -> None:
    failed_before = sample(stack.worker.metrics_url, "background_jobs_total",
                                 job_type="export", status="failed")
    lab(stack, "fault", "set", "export_failure_rate=1")
    task_ids = [requests.post(f"{stack.web.url}/export", timeout=10).json()["task_id"] for _ in range(3)]

    def states() -> set[str]:
        return {requests.get(f"{stack.web.url}/tasks/{t}", timeout=10).json()["state"] for t in task_ids}

    wait_until(lambda: states() == {"failed"}, 60, "the three exports to fail")
    detail = requests.get(f"{stack.web.url}/tasks/{task_ids[0]}", timeout=10).json()
    assert "injected fault" in detail["error"]
    assert requests.get(f"{stack.web.url}/download/{task_ids[0]}", timeout=10).status_code == 409
    wait_until(
        lambda: sample(stack.worker.metrics_url, "background_jobs_total", job_type="export",
                             status="failed") - failed_before == 3,
        10, "the failed-job counter")
    lab(stack, "fault", "clear")
    task_id = requests.post(f"{stack.web.url}/export", timeout=10).json()["task_id"]
    wait_until(lambda: requests.get(f"{stack.web.url}/tasks/{task_id}", timeout=10).json()["state"]
               == "succeeded", 60, "an export after clearing")


@pytest.mark.stack
def test_slow_database_fault_runs_a_real_slow_query(stack: Running) -> None:
    lab(stack, "fault", "set", "slow_db=0.2")
    answer = requests.get(f"{stack.web.url}/api/todos", timeout=10)
    assert answer.status_code == 200
    trace_id = answer.headers["traceparent"].split("-")[1]

    def sleep_spans() -> list[dict[str, object]]:
        if not stack.config.layout.span_file.exists():
            return []
        spans = [json.loads(line) for line in stack.config.layout.span_file.read_text().splitlines()]
        return [s for s in spans if s["trace_id"] == trace_id
                and "pg_sleep" in str(s["attributes"].get("db.statement", ""))]

    wait_until(lambda: len(sleep_spans()) == 1, 15, "the pg_sleep span")
    span = sleep_spans()[0]
    assert int(span["end_ns"]) - int(span["start_ns"]) >= 0.2e9  # type: ignore[call-overload]


@pytest.mark.stack
def test_admin_route_needs_the_token(stack: Running) -> None:
    url = f"{stack.web.url}/admin/faults"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    put = requests.put(url, json={"error_rate.todos.add": 0.5}, headers=auth, timeout=5)
    assert put.status_code == 200 and put.json()["faults"] == {"error_rate.todos.add": 0.5}
    assert "error_rate.todos.add=0.5" in lab(stack, "fault", "list").stdout
    bad = requests.put(url, json={"error_rate": 3}, headers=auth, timeout=5)
    assert bad.status_code == 400 and "between 0 and 1" in bad.json()["error"]


@pytest.mark.stack
@pytest.mark.parametrize("through", ["file", "route"])
def test_one_switchboard_client_switches_the_same_through_the_file_and_the_route(
        stack: Running, through: str) -> None:
    """`lab fault` and FaultSwitch (which every command and the notebooks use) switch the faults
    every process reads, through the file on the local lab and the admin route with a token."""
    switch = FaultSwitch.for_env(lab_env(stack, through))
    assert (switch.faults_file is None) == (through == "route")
    assert lab(stack, "fault", "set", "error_rate.todos.add=0.25", through=through).returncode == 0
    assert switch.set({"latency.todos.index": [0.1, 0.2]}) == {
        "error_rate.todos.add": 0.25, "latency.todos.index": [0.1, 0.2]}
    # Both ways see one switchboard: the file the app's processes read.
    route = requests.get(f"{stack.web.url}/admin/faults", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=5).json()
    assert route == {"faults": switch.current(), "quiet": False}
    assert json.loads(stack.config.layout.faults_file.read_text()) == switch.current()
    assert switch.clear("todos.add") == switch.current()  # not in force: nothing changes
    assert lab(stack, "fault", "clear", "error_rate.todos.add", through=through).stdout.strip() == \
        "latency.todos.index=0.1-0.2"
    assert switch.clear() == {}
    assert "no fault in force" in lab(stack, "fault", "list", through=through).stdout


@pytest.mark.stack
def test_a_switchboard_that_does_not_answer_is_a_clear_error(stack: Running) -> None:
    env = {**lab_env(stack), "LAB_APP_URL": f"http://127.0.0.1:{free_port()}"}
    result = subprocess.run([LAB, "fault", "list"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "did not answer" in result.stderr, result.stderr
    wrong = FaultSwitch(None, stack.web.url, "not-the-token")
    with pytest.raises(SwitchboardError, match="answered 401"):
        wrong.current()


@pytest.mark.parametrize("content", ["{ not json", "[1, 2]", '{"nonsense": 1}'])
def test_a_broken_switchboard_file_is_a_clear_error_for_the_client(tmp_path: Path, content: str) -> None:
    path = tmp_path / "faults.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SwitchboardError, match="unreadable"):
        FaultSwitch(path, "http://127.0.0.1:9").current()


@pytest.mark.stack
def test_a_quiet_fault_acts_and_nothing_names_it(stack: Running) -> None:
    """A blind incident's faults (written quiet) are seen only through their effects: no log
    line, no span attribute, no error text, no metric says fault."""
    switch = FaultSwitch.for_env(lab_env(stack))

    def naming_fault() -> list[str]:
        """The samples of web and worker that say fault (the switchboard route's own, from the
        other tests' switches)."""
        scraped = requests.get(f"{stack.web.url}/metrics", timeout=5).text + requests.get(
            stack.worker.metrics_url, timeout=5).text
        return sorted(line for line in scraped.splitlines() if "fault" in line.lower())

    before = naming_fault()
    offset = len(stack.web.output())
    switch.replace({"error_rate.api.list_todos": 1.0, "latency.todos.index": 0.05, "slow_db": 0.05},
                   quiet=True)
    failed = [requests.get(f"{stack.web.url}/api/todos", timeout=10) for _ in range(10)]
    slow = [requests.get(f"{stack.web.url}/", timeout=10) for _ in range(10)]
    assert {a.status_code for a in failed} == {500}
    assert {a.json()["error"] for a in failed} == {"internal error"}
    assert all(set(a.json()) == {"error", "request_id"} for a in failed)
    assert {a.status_code for a in slow} == {200}
    assert min(a.elapsed.total_seconds() for a in slow) >= 0.1  # latency and slow_db both acted
    switch.replace({}, quiet=True)
    trace_ids = {a.headers["traceparent"].split("-")[1] for a in failed + slow}

    def spans() -> list[dict[str, Any]]:
        lines = stack.config.layout.span_file.read_text().splitlines()
        return [s for s in map(json.loads, lines) if s["trace_id"] in trace_ids]

    wait_until(lambda: {s["trace_id"] for s in spans()} == trace_ids, 15, "the twenty traces")
    assert "fault" not in (stack.web.output()[offset:] + json.dumps(spans())).lower()
    assert naming_fault() == before
    # The same faults written aloud are named, as a guided incident teaches.
    switch.replace({"error_rate.api.list_todos": 1.0})
    named = requests.get(f"{stack.web.url}/api/todos", timeout=10).json()
    assert named["fault"] == "error_rate.api.list_todos"
    assert "fault injection changed" in stack.web.output()[offset:]


@pytest.mark.stack
def test_bad_fault_names_and_values_are_refused(stack: Running) -> None:
    bad = ("nonsense=1", "error_rate=1.5", "latency=0.5-0.1", "slow_db.todos.add=1", "error_rate")
    for assignment in bad:
        result = lab(stack, "fault", "set", assignment)
        assert result.returncode == 2, assignment
        assert "lab fault:" in result.stderr and "Traceback" not in result.stderr
    assert lab(stack, "fault", "list").stdout.strip() == "no fault in force"


@pytest.mark.stack
def test_a_broken_fault_file_keeps_the_service_up(stack: Running, tmp_path: Path) -> None:
    board = Switchboard(tmp_path / "faults.json")
    write_faults(board.path, {"error_rate": 0.5})
    assert board.current() == {"error_rate": 0.5}
    for broken in ("{ not json", "[1, 2]", '"error_rate"', '{"_quiet": true, "nonsense": 1}'):
        board.path.write_text(broken)
        assert board.current() == {"error_rate": 0.5}, broken
    board.path.unlink()
    assert board.current() == {}


@pytest.mark.parametrize("bad", ["latency=abc", "error_rate=-0.1", "worker_delay=31", "x.y=1"])
def test_parse_assignment_rejects(bad: str) -> None:
    with pytest.raises(FaultError):
        parse_assignment(bad)


def test_incident_schedule_replays_the_same_for_a_seed() -> None:
    first, again, other = schedule(7, 300), schedule(7, 300), schedule(8, 300)
    assert first == again
    assert first != other
    assert [bool(s.faults) for s in first] == [True, False] * 3
    assert all(a.at < b.at for a, b in itertools.pairwise(first))
    assert first[-1].at <= 300
    for step in first:
        for name, value in step.faults.items():
            shown = f"{value[0]}-{value[1]}" if isinstance(value, list) else str(value)
            parse_assignment(f"{name}={shown}")
