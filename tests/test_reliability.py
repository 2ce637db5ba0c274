"""Faults with real processes: the database, the broker, Prometheus, gunicorn and the worker
are stopped or restarted for real while the stack serves, and the test asserts what a user
sees and that nothing answered 2xx is lost.

The shared PostgreSQL and Redis are never touched: outages happen on private instances
(stack/private_services.py). Timings are printed; only generous bounds are asserted.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from app.faults import write_faults
from app.migrate import upgrade
from app.settings import Settings
from stack.private_services import PrivateRedis, private_postgres, private_redis
from tests.support.processes import (
    BIN,
    Proc,
    free_port,
    start,
    start_celery_worker,
    start_gunicorn,
    wait_until,
)

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "stack" / "prometheus" / "rules"


@dataclass
class WriteOutcome:
    """One POST /api/todos as the client saw it."""

    text: str
    status: int  # 0: no HTTP answer at all
    body: dict[str, Any]


class Writer:
    """Threads that each POST uniquely named todos until told to stop."""

    def __init__(self, base: str, threads: int) -> None:
        """Prepare threads writing to base."""
        self.base = base
        self.outcomes: list[WriteOutcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(threads)]

    def _run(self, n: int) -> None:
        session = requests.Session()
        i = 0
        while not self._stop.is_set() and i < 5000:  # bounded even if stop never comes
            text = f"outage-write {n}-{i}"
            try:
                response = session.post(f"{self.base}/api/todos", json={"text": text}, timeout=20)
                body = response.json() if response.headers.get("Content-Type", "").startswith(
                    "application/json") else {"raw": response.text[:500]}
                outcome = WriteOutcome(text, response.status_code, body)
            except requests.RequestException as exc:
                outcome = WriteOutcome(text, 0, {"exception": type(exc).__name__})
            with self._lock:
                self.outcomes.append(outcome)
            i += 1
            time.sleep(0.02)

    def __enter__(self) -> Writer:
        """Start writing."""
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        """Stop writing and wait for the threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


# --- PostgreSQL stopped while serving -------------------------------------------------------


def test_database_outage_is_reported_then_recovered_without_losing_a_2xx_write(tmp_path: Path) -> None:
    with private_postgres() as pg:
        url = Settings.from_env({"DATABASE_URL": pg.create_database("todolab")}).database_url
        upgrade(database_url=url)
        env = {"VAR_DIR": str(tmp_path), "APP_ENV": "test", "DATABASE_URL": url}
        web, base = start_gunicorn(env, workers=2, threads=4)
        try:
            with Writer(base, threads=4) as writer:
                time.sleep(1.5)
                pg.stop("fast")
                outage_started = time.monotonic()
                time.sleep(1.0)
                live = requests.get(base + "/healthz", timeout=10)
                ready = requests.get(base + "/readyz", timeout=15)
                listing = requests.get(base + "/api/todos", timeout=15)
                page = requests.get(base + "/", headers={"Accept": "text/html"}, timeout=15)
                time.sleep(1.0)
                pg.start()
                wait_until(lambda: requests.get(base + "/readyz", timeout=10).status_code == 200,
                           30, "/readyz to turn 200 again")
                recovered_after = time.monotonic() - outage_started
                # Keep writing a little after the return: new requests must succeed again.
                time.sleep(1.5)
            after = requests.get(base + "/api/todos?per_page=1", timeout=10)
        finally:
            web.stop()
        outcomes = writer.outcomes

        conn = psycopg2.connect(url.replace("postgresql+psycopg2", "postgresql"))
        with conn.cursor() as cur:
            cur.execute("SELECT text FROM todos")
            stored = {row[0] for row in cur.fetchall()}
        conn.close()

    statuses: dict[int, int] = {}
    for outcome in outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    print(f"writes by status: {statuses}; readyz back {recovered_after:.2f}s after the stop "
          f"(database down about 2.0s)")

    # Liveness does not depend on the database; readiness says why it is not ready.
    assert live.status_code == 200
    assert ready.status_code == 503 and ready.json()["database"].startswith("unreachable")
    # Data routes: 503, JSON error with the request id, never a traceback.
    assert listing.status_code == 503
    assert listing.json()["error"] == "database unavailable, try again shortly"
    assert listing.json()["request_id"] == listing.headers["X-Request-ID"]
    assert page.status_code == 503 and "Traceback" not in page.text
    assert page.headers["X-Request-ID"] in page.text
    # Recovered by itself (pool pre-ping), no restart.
    assert after.status_code == 200
    assert statuses.get(201, 0) > 0 and statuses.get(503, 0) > 0, statuses
    assert set(statuses) <= {201, 503}, statuses
    last = outcomes[-8:]
    assert all(o.status == 201 for o in last), last
    # No write answered 2xx is lost.
    acknowledged = {o.text for o in outcomes if o.status == 201}
    assert acknowledged <= stored, sorted(acknowledged - stored)[:5]
    failed = [o for o in outcomes if o.status == 503]
    for outcome in failed:
        assert outcome.body["error"] == "database unavailable, try again shortly"
        assert outcome.body["request_id"]
        assert "Traceback" not in json.dumps(outcome.body)

    # One error line per failed request, with the cause, and no traceback anywhere.
    records = web.json_records()
    unavailable = [r for r in records if r.get("message", "").startswith("database unavailable:")]
    for outcome in failed:
        mine = [r for r in unavailable if r.get("request_id") == outcome.body["request_id"]]
        assert len(mine) == 1, (outcome, mine)
        assert mine[0]["level"] == "ERROR"
        cause = mine[0]["message"].removeprefix("database unavailable:").strip()
        assert cause, mine[0]
    assert "Traceback" not in web.output()


# --- Broker stopped --------------------------------------------------------------------------


def wait_export(base: str, task_id: str, timeout: float = 90) -> dict[str, Any]:
    """Poll /tasks/<id> until it is succeeded or failed; its final state."""
    state: dict[str, Any] = {}

    def finished() -> bool:
        nonlocal state
        state = requests.get(f"{base}/tasks/{task_id}", timeout=10).json()
        return state["state"] in ("succeeded", "failed")

    wait_until(finished, timeout, f"export {task_id} to finish", interval=0.2)
    return state


def post_export(base: str) -> tuple[requests.Response, float]:
    """POST /export; the answer and how long it took."""
    started = time.monotonic()
    response = requests.post(base + "/export", timeout=30)
    return response, time.monotonic() - started


BrokerStack = tuple[PrivateRedis, dict[str, str], str]


@pytest.fixture
def broker_stack(pg_database_url: str, tmp_path: Path) -> Iterator[BrokerStack]:
    """gunicorn over the shared test database and a private Redis broker (persistent, as in
    compose)."""
    with private_redis(tmp_path / "redis") as broker:
        env = {"VAR_DIR": str(tmp_path), "APP_ENV": "test", "DATABASE_URL": pg_database_url,
               "CELERY_BROKER_URL": broker.url, "CELERY_RESULT_BACKEND": "",
               "BROKER_TIMEOUT": "2", "CELERY_VISIBILITY_TIMEOUT": "30"}
        web, base = start_gunicorn(env, workers=2, threads=4)
        try:
            yield broker, env, base
        finally:
            web.stop()


def test_broker_outage_answers_503_quickly_and_loses_no_accepted_export(
        broker_stack: BrokerStack, tmp_path: Path) -> None:
    broker, env, base = broker_stack
    # The run's database holds other tests' exports (one left queued on purpose, for one):
    # this test counts its own, those made from now on.
    began = datetime.now(UTC)
    requests.post(base + "/api/todos", json={"text": "exported through an outage"}, timeout=10)
    worker, _ = start_celery_worker(env, concurrency=1)
    try:
        response, _ = post_export(base)
        assert wait_export(base, response.json()["task_id"])["state"] == "succeeded"
    finally:
        worker.stop()

    # Accepted while no worker runs: the messages wait on the broker.
    accepted = []
    for _ in range(3):
        response, _ = post_export(base)
        assert response.status_code == 202
        accepted.append(response.json()["task_id"])

    broker.stop()
    # As many concurrent exports as gunicorn has threads: each answers 503 in bounded time.
    with ThreadPoolExecutor(8) as pool:
        refused = list(pool.map(lambda _: post_export(base), range(8)))
    slowest = max(elapsed for _, elapsed in refused)
    background_started = time.monotonic()
    background = requests.get(base + "/healthz/background", timeout=30)
    background_s = time.monotonic() - background_started
    # No thread is left hanging: other requests are served at once.
    health = requests.get(base + "/healthz", timeout=5)
    listing = requests.get(base + "/api/todos", timeout=5)
    print(f"broker down: POST /export x8 concurrently, slowest 503 after {slowest:.2f}s; "
          f"/healthz/background 503 after {background_s:.2f}s")
    for response, elapsed in refused:
        assert response.status_code == 503
        assert response.json()["error"] == "background jobs unavailable: broker unreachable"
        assert response.json()["request_id"] == response.headers["X-Request-ID"]
        assert elapsed < 15
    assert background.status_code == 503 and background.json()["broker"].startswith("unreachable")
    assert health.status_code == 200 and listing.status_code == 200

    broker.start()  # same port, same AOF file
    worker, _ = start_celery_worker(env, concurrency=1)
    try:
        finals = {task_id: wait_export(base, task_id)["state"] for task_id in accepted}
        response, _ = post_export(base)
        assert response.status_code == 202, response.text
        after = wait_export(base, response.json()["task_id"])["state"]
        wait_until(lambda: requests.get(base + "/healthz/background", timeout=10).status_code == 200,
                   30, "/healthz/background to be 200 again")
    finally:
        worker.stop()
    print(f"exports accepted before the outage ended: {finals}")
    assert finals == dict.fromkeys(accepted, "succeeded")
    assert after == "succeeded"
    # Every refused export is recorded as failed (its state says so), none stays queued.
    conn = psycopg2.connect(env["DATABASE_URL"].replace("postgresql+psycopg2", "postgresql"))
    with conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM exports WHERE created_at >= %s GROUP BY status",
                    (began,))
        by_status = dict(cur.fetchall())
    conn.close()
    assert by_status.get("queued", 0) == 0 and by_status.get("running", 0) == 0, by_status
    assert by_status.get("failed", 0) >= 8, by_status


# --- Graceful shutdown -----------------------------------------------------------------------


def test_sigterm_lets_gunicorn_finish_in_flight_requests(tmp_path: Path) -> None:
    env = {"VAR_DIR": str(tmp_path), "APP_ENV": "test"}
    upgrade(database_url=Settings.from_env(env).database_url)
    web, base = start_gunicorn(env, workers=2, threads=4)
    write_faults(tmp_path / "faults.json", {"latency.api.list_todos": 2})
    try:
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(requests.get, base + "/api/todos", timeout=30) for _ in range(6)]
            time.sleep(0.8)  # every request is inside its 2 s of injected latency
            signalled = time.monotonic()
            os.kill(web.popen.pid, signal.SIGTERM)  # the master only, as an orchestrator does
            answers = [f.result() for f in futures]
        web.popen.wait(40)
        exited_after = time.monotonic() - signalled
    finally:
        web.stop()
    print(f"gunicorn master exited {exited_after:.2f}s after SIGTERM with 6 requests in flight "
          f"(graceful_timeout 20s); statuses {[a.status_code for a in answers]}")
    assert [a.status_code for a in answers] == [200] * 6
    assert exited_after < 20
    assert web.popen.returncode == 0


def test_sigterm_lets_the_worker_finish_a_running_export(pg_database_url: str, tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as broker:
        env = {"VAR_DIR": str(tmp_path), "APP_ENV": "test", "DATABASE_URL": pg_database_url,
               "CELERY_BROKER_URL": broker.url, "CELERY_RESULT_BACKEND": "",
               "CELERY_VISIBILITY_TIMEOUT": "30"}
        web, base = start_gunicorn(env, workers=1, threads=2)
        worker, _ = start_celery_worker(env, concurrency=1)
        try:
            write_faults(tmp_path / "faults.json", {"worker_delay": 3})
            response, _ = post_export(base)
            task_id = response.json()["task_id"]
            wait_until(lambda: f"{task_id}] received" in worker.output(), 20, "the task to arrive")
            time.sleep(1.0)  # inside the task's 3 s
            signalled = time.monotonic()
            os.kill(worker.popen.pid, signal.SIGTERM)  # warm shutdown of the main process
            worker.popen.wait(60)
            exited_after = time.monotonic() - signalled
            state = requests.get(f"{base}/tasks/{task_id}", timeout=10).json()
            write_faults(tmp_path / "faults.json", {})
            finished_by = "the warm shutdown"
            if state["state"] not in ("succeeded", "failed"):
                finished_by = "a new worker after requeue"
                # Not finished before exit: then it must have been requeued, and a new worker
                # completes it.
                worker, _ = start_celery_worker(env, concurrency=1)
                state = wait_export(base, task_id)
        finally:
            worker.stop()
            web.stop()
    print(f"worker exited {exited_after:.2f}s after SIGTERM during a 3 s task; export {state['state']} "
          f"(finished by {finished_by})")
    assert state["state"] == "succeeded"
    assert exited_after < 30


# --- Prometheus restarted, gunicorn restarted ------------------------------------------------


def prometheus_config(path: Path, target: str) -> None:
    """A prometheus.yml scraping target every second with the stack's recording rules."""
    rules = [str(p) for p in sorted(RULES_DIR.glob("*.yml"))]
    path.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": rules,
        "scrape_configs": [{"job_name": "web", "static_configs": [{"targets": [target]}]}],
    }))


def start_prometheus(config: Path, storage: Path, port: int, log_dir: Path) -> Proc:
    """Real Prometheus on port with storage (kept across restarts)."""
    proc = start(f"prometheus-{time.monotonic_ns()}",
                 ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={storage}",
                  f"--web.listen-address=127.0.0.1:{port}"], {}, log_dir)
    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).ok, 60,
               "Prometheus to be ready")
    return proc


class SteadyTraffic:
    """One thread sending GET /healthz at a fixed pace to whatever base the holder names."""

    def __init__(self, base: str, per_second: float) -> None:
        """Prepare the pacing."""
        self.base = base
        self.interval = 1 / per_second
        self.sent_ok = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        next_at = time.monotonic()
        for _ in range(100_000):
            if self._stop.is_set():
                return
            try:
                if session.get(self.base + "/healthz", timeout=2).status_code == 200:
                    self.sent_ok += 1
            except requests.RequestException:
                session = requests.Session()  # gunicorn restarting: try again on the next tick
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> SteadyTraffic:
        """Start sending."""
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        """Stop sending."""
        self._stop.set()
        self._thread.join(10)
        self.elapsed = time.monotonic() - self.started


def test_restarting_prometheus_or_gunicorn_makes_no_false_spike_in_the_recorded_rate(tmp_path: Path) -> None:
    env = {"VAR_DIR": str(tmp_path), "APP_ENV": "test"}
    upgrade(database_url=Settings.from_env(env).database_url)
    web_port = free_port()
    web_env = {**env, "WEB_PORT": str(web_port)}

    base = f"http://127.0.0.1:{web_port}"

    def start_web(log: str) -> Proc:
        """gunicorn on the same port every time, so Prometheus scrapes one target."""
        proc = start("web", [str(BIN / "gunicorn"), "-c", str(ROOT / "stack" / "gunicorn.conf.py")],
                     {**web_env, "GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "4"}, tmp_path / log)
        wait_until(lambda: requests.get(base + "/healthz", timeout=2).ok, 30, "gunicorn")
        return proc

    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    prometheus_config(config, f"127.0.0.1:{web_port}")
    storage = tmp_path / "tsdb"
    web = start_web("web1")
    prom = start_prometheus(config, storage, prom_port, tmp_path / "prom1")
    rate = 20.0
    try:
        begin = time.time()
        with SteadyTraffic(base, rate) as traffic:
            time.sleep(35)
            prom.stop(signal.SIGTERM)  # restart Prometheus on the same storage, mid-traffic
            prom = start_prometheus(config, storage, prom_port, tmp_path / "prom2")
            time.sleep(30)
            web.stop(signal.SIGTERM)  # gunicorn restart: every counter starts again at 0
            web = start_web("web2")
            time.sleep(20)
        end = time.time()
        true_rate = traffic.sent_ok / traffic.elapsed
        answer = requests.get(f"http://127.0.0.1:{prom_port}/api/v1/query_range", params={
            "query": 'job:http_requests:rate1m{job="web"}', "start": begin, "end": end, "step": "1"},
            timeout=10).json()
    finally:
        prom.stop()
        web.stop()
    series = answer["data"]["result"]
    assert len(series) == 1, series
    values = [(float(t), float(v)) for t, v in series[0]["values"]]
    # A new series' rate over a 1m window ramps up during its first minute (rate() divides by
    # the window, the counter started at 0): windows ending after that hold the truth.
    settled = [v for t, v in values if t >= begin + 62]
    everything = [v for _, v in values]
    print(f"true rate {true_rate:.2f}/s; job:http_requests:rate1m: max over the whole run "
          f"{max(everything):.2f}; over the {len(settled)} full-window points (spanning both "
          f"restarts): min {min(settled):.2f}, median {statistics.median(settled):.2f}, "
          f"max {max(settled):.2f}")
    # No false spike anywhere: not at the Prometheus restart, not at the counter reset.
    assert max(everything) <= 1.25 * true_rate
    # Nor a false drop: a reset read by sum-then-rate would dive; rate-then-sum does not.
    assert len(settled) >= 20
    assert all(0.8 * true_rate <= v <= 1.2 * true_rate for v in settled), settled
