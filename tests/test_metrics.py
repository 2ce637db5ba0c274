"""Prometheus metrics stay exact across processes: 2 gunicorn workers x 4 threads and a
prefork Celery worker with 2 children, scraped the way Prometheus scrapes them."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from flask import Flask
from prometheus_client import REGISTRY

from app.observability import names
from app.settings import Settings
from stack.databases import reserved_redis_db
from stack.launch import Running
from stack.processes import Proc
from tests.support.observed import (
    access_lines,
    json_lines,
    samples,
    stack_env,
    total,
)
from tests.support.plugin import StackFactory
from tests.support.processes import wait_until

HIST_COUNT = names.HTTP_REQUEST_DURATION + "_count"
HIST_BUCKET = names.HTTP_REQUEST_DURATION + "_bucket"
JOBS = names.BACKGROUND_JOBS


@pytest.fixture(scope="module")
def stack(pg_database_url: str, stack_factory: StackFactory) -> Iterator[Running]:
    """gunicorn (2 workers x 4 threads) and a prefork worker (concurrency 2) of our own, on a
    Redis database of our own: our worker is the only consumer of our exports."""
    with reserved_redis_db() as broker, \
            stack_factory({"DATABASE_URL": pg_database_url, "CELERY_BROKER_URL": broker}) as running:
        yield running


@pytest.mark.stack
def test_job_counters_exist_at_zero_before_the_first_job(stack: Running) -> None:
    # Runs first in this module: no export has been made yet. A series born at 0 lets
    # increase() and the NoExportSucceeding alert see the very first job.
    enqueued = [labels for labels, value in samples(stack.web.metrics_url, JOBS)
                if labels["job_type"] == "export" and value == 0]
    assert [labels["status"] for labels in enqueued] == ["enqueued"]
    worker = {labels["status"] for labels, value in samples(stack.worker.metrics_url, JOBS)
              if labels["job_type"] == "export" and value == 0}
    assert worker == {"started", "succeeded", "failed", "retried"}


def fresh_get(url: str) -> int:
    """GET on a new connection (no keep-alive), so that any worker may take it."""
    return requests.get(url, headers={"Connection": "close"}, timeout=10).status_code


@pytest.mark.stack
def test_every_request_is_counted_once_in_a_single_scrape(stack: Running) -> None:
    n = 240
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(fresh_get, [stack.web.url + "/api/todos?per_page=1"] * n))
    assert statuses == [200] * n

    # Both gunicorn workers served part of them (the access log names the pid).
    served_by = {
        line[names.F_PID] for line in access_lines(stack.web.output())
        if line[names.F_PATH] == "/api/todos"
    }
    workers = {child.pid for child in psutil.Process(stack.web.popen.pid).children()}
    assert served_by == workers and len(workers) == 2

    found = samples(stack.web.metrics_url, HIST_COUNT)
    assert total(found, endpoint="api.list_todos", method="GET", status="200",
                 environment="test") == n


@pytest.mark.stack
def test_scrapes_never_go_down_under_concurrent_load(stack: Running) -> None:
    before = total(samples(stack.web.metrics_url, HIST_COUNT), endpoint="health.healthz")
    sent = 0
    done = threading.Event()

    def load() -> None:
        nonlocal sent
        with ThreadPoolExecutor(6) as pool:
            for status in pool.map(fresh_get, [stack.web.url + "/healthz"] * 300):
                assert status == 200
                sent += 1
        done.set()

    loader = threading.Thread(target=load)
    loader.start()
    seen = []
    while not done.is_set():
        seen.append(total(samples(stack.web.metrics_url, HIST_COUNT), endpoint="health.healthz"))
    loader.join()
    seen.append(total(samples(stack.web.metrics_url, HIST_COUNT), endpoint="health.healthz"))

    assert len(seen) > 3
    assert all(a <= b for a, b in itertools.pairwise(seen)), seen
    assert seen[-1] == before + 300


@pytest.mark.stack
def test_the_metrics_endpoint_does_not_count_itself(stack: Running) -> None:
    for _ in range(5):
        requests.get(stack.web.metrics_url, timeout=10)
    found = samples(stack.web.metrics_url, HIST_COUNT)
    assert found, "the request histogram is exposed"
    assert not [labels for labels, _ in found if labels["endpoint"] == "health.metrics"]


@pytest.mark.stack
def test_process_metrics_describe_the_master_and_each_worker(stack: Running) -> None:
    master = psutil.Process(stack.web.popen.pid)
    expected = {(str(master.pid), "master")} | {
        (str(child.pid), "worker") for child in master.children()
    }
    for metric in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                   "process_open_fds"):
        found = samples(stack.web.metrics_url, metric)
        assert {(labels["pid"], labels["role"]) for labels, _ in found} == expected, metric
        assert all(value > 0 for _, value in found), metric

    worker_main = psutil.Process(stack.worker.popen.pid)
    expected = {(str(worker_main.pid), "worker-main")} | {
        (str(child.pid), "pool-child") for child in worker_main.children()
    }
    found = samples(stack.worker.metrics_url, "process_resident_memory_bytes")
    assert {(labels["pid"], labels["role"]) for labels, _ in found} == expected
    assert len(expected) == 3


@pytest.mark.stack
def test_a_path_scan_adds_only_a_handful_of_series(stack: Running) -> None:
    before = len(samples(stack.web.metrics_url, HIST_BUCKET))
    with requests.Session() as session:
        for _ in range(2000):
            path = f"/{uuid.uuid4().hex}/{uuid.uuid4().hex[:6]}.php"
            assert session.get(stack.web.url + path, timeout=10).status_code == 404
    after = samples(stack.web.metrics_url, HIST_BUCKET)
    # One new label set (GET, unmatched, 404) = one series per bucket boundary, at most.
    assert len(after) - before <= len(names.HTTP_BUCKETS) + 1
    assert total(after, endpoint=names.UNMATCHED_ENDPOINT, status="404", le="+Inf") == 2000


@pytest.mark.stack
def test_job_counters_add_up_to_the_number_of_exports(stack: Running) -> None:
    k = 8
    task_ids = []
    for _ in range(k):
        response = requests.post(stack.web.url + "/export", timeout=10)
        assert response.status_code == 202, response.text
        task_ids.append(response.json()["task_id"])

    def all_succeeded() -> bool:
        states = [requests.get(f"{stack.web.url}/tasks/{t}", timeout=10).json()["state"]
                  for t in task_ids]
        assert "failed" not in states, states
        return states == ["succeeded"] * k

    wait_until(all_succeeded, 60, "every export to succeed", interval=0.2)

    web_jobs = samples(stack.web.metrics_url, JOBS)
    assert total(web_jobs, job_type="export", status=names.JOB_ENQUEUED) == k
    # The counters are bumped right after the task's state is committed: allow a moment.
    wait_until(
        lambda: total(samples(stack.worker.metrics_url, JOBS), status=names.JOB_SUCCEEDED) == k,
        10, "the worker to count every success",
    )
    worker_jobs = samples(stack.worker.metrics_url, JOBS)
    assert total(worker_jobs, job_type="export", status=names.JOB_STARTED) == k
    assert total(worker_jobs, job_type="export", status=names.JOB_SUCCEEDED) == k
    assert total(worker_jobs, status=names.JOB_FAILED) == 0
    children = {int(str(line[names.F_PID])) for line in finished_lines(stack.worker)}
    print(f"\nexports ran in {len(children)} pool children: {sorted(children)}")
    # enqueued is a web-side count and never shows up in the worker, and vice versa.
    assert total(worker_jobs, status=names.JOB_ENQUEUED) == 0
    assert total(web_jobs, status=names.JOB_STARTED) == 0


def finished_lines(worker: Proc) -> list[dict[str, object]]:
    """The worker's 'export finished' lines."""
    return [r for r in json_lines(worker.output()) if r.get("message") == "export finished"]


def test_a_500_is_counted_logged_and_answered_with_its_request_id(
    pg_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    make_app: Callable[..., Flask],
) -> None:
    settings = Settings.from_env(
        stack_env(pg_database_url, "redis://127.0.0.1:6379/0", tmp_path)
    )
    app = make_app(settings, TESTING=True)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("a bug the user must never see")

    labels = {"method": "GET", "endpoint": "boom", "status": "500", "environment": "test"}
    before = REGISTRY.get_sample_value(HIST_COUNT, labels) or 0.0
    with caplog.at_level("INFO"):
        response = app.test_client().get("/boom", headers={"Accept": "application/json"})

    assert response.status_code == 500
    body = response.get_json()
    assert body["error"] == "internal error"
    assert "a bug" not in response.get_data(as_text=True)
    assert body["request_id"] == response.headers[names.REQUEST_ID_HEADER]
    assert REGISTRY.get_sample_value(HIST_COUNT, labels) == before + 1
    access = [r for r in caplog.records if r.name == names.ACCESS_LOGGER]
    assert len(access) == 1
    assert getattr(access[0], names.F_STATUS) == 500
    assert access[0].levelname == "ERROR"
    assert getattr(access[0], names.F_REQUEST_ID) == body["request_id"]
