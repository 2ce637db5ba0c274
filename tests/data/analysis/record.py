"""Record the analysis tests' data from a real run: gunicorn, a Celery worker, Prometheus, Locust.

    .venv/bin/python -m tests.data.analysis.record

Starts everything on free loopback ports in a temporary directory, runs a job phase (CSV
exports through the worker), stops the worker, then a Locust run of PLAN (known numbers of
200s, 201s, 404s and slow 503s), and saves under tests/data/analysis/:
web.jsonl and worker.jsonl (the JSON logs), spans.jsonl (the local span file), locust_stats.csv,
prometheus/ (every Prometheus API answer the tests ask for, through a recording proxy),
jaeger-*.json (Jaeger query-API answers *converted* from the span file: no Jaeger can run
here, see analysis.traces.to_jaeger) and meta.json (the run's moments and known counts).
The live test imports lab_stack, send_plan and wait_for_scrape from here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from app.migrate import upgrade
from app.settings import Settings
from tests.data.analysis import recorded_http
from tests.support.processes import (
    BIN,
    Proc,
    free_port,
    start,
    start_celery_worker,
    start_gunicorn,
    wait_until,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SCRAPE_INTERVAL_S = 1.0
# /healthz/background waits this long for a worker; with none running it answers a slow 503.
BROKER_TIMEOUT_S = "0.3"


@dataclass(frozen=True)
class Step:
    """count identical requests."""

    count: int
    method: str
    path: str
    status: int
    name: str
    json: dict[str, Any] | None = None


PLAN = (
    Step(30, "GET", "/api/todos", 200, "list"),
    Step(10, "POST", "/api/todos", 201, "create", {"text": "recorded todo"}),
    Step(6, "GET", "/api/todos/999999", 404, "missing"),
    Step(4, "GET", "/healthz/background", 503, "background-down"),
)


def plan_counts(plan: tuple[Step, ...] = PLAN) -> dict[str, int]:
    """Known totals of a plan: requests, 5xx and 4xx/5xx (Locust's failures)."""
    return {"requests": sum(s.count for s in plan),
            "errors_5xx": sum(s.count for s in plan if s.status >= 500),
            "failures": sum(s.count for s in plan if s.status >= 400)}


@dataclass
class Stack:
    """A running gunicorn (+ optional worker) scraped by a real Prometheus."""

    base_url: str
    prom_url: str
    var_dir: Path
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    @property
    def web_log(self) -> Path:
        """The web JSON log file."""
        return self.var_dir / "log" / "web.jsonl"

    @property
    def span_file(self) -> Path:
        """The local span file (web and worker)."""
        return self.var_dir / "log" / "spans.jsonl"


def _prometheus_config(targets: dict[str, str], interval_s: float) -> str:
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        for job, target in targets.items())
    return (f"global:\n  scrape_interval: {interval_s:g}s\n  scrape_timeout: {interval_s:g}s\n"
            f"scrape_configs:\n{jobs}")


@contextmanager
def lab_stack(tmp: Path, with_worker: bool = False,
              scrape_interval_s: float = SCRAPE_INTERVAL_S) -> Iterator[tuple[Stack, Proc | None]]:
    """gunicorn (tracing to a span file, logs to a file), optionally a worker, and Prometheus."""
    var = tmp / "var"
    env = {"VAR_DIR": str(var), "APP_ENV": "test", "LOG_FILE": str(var / "log" / "web.jsonl"),
           "TRACING_ENABLED": "true", "TRACE_FILE": str(var / "log" / "spans.jsonl"),
           "BROKER_TIMEOUT": BROKER_TIMEOUT_S}
    upgrade(database_url=Settings.from_env(env).database_url)
    procs: list[Proc] = []
    worker: Proc | None = None
    try:
        web, base = start_gunicorn(env, tmp / "procs")
        procs.append(web)
        targets = {"web": base.removeprefix("http://")}
        if with_worker:
            worker, metrics = start_celery_worker(
                {**env, "LOG_FILE": str(var / "log" / "worker.jsonl")}, tmp / "procs")
            procs.append(worker)
            targets["worker"] = metrics.removeprefix("http://").removesuffix("/metrics")
        config = tmp / "prometheus.yml"
        config.write_text(_prometheus_config(targets, scrape_interval_s), encoding="utf-8")
        port = free_port()
        prom = start("prometheus", ["prometheus", f"--config.file={config}",
                                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                                    f"--web.listen-address=127.0.0.1:{port}"], {}, tmp / "procs")
        procs.append(prom)
        prom_url = f"http://127.0.0.1:{port}"
        stack = Stack(base, prom_url, var, env, procs)
        wait_until(lambda: _targets_up(prom_url) >= len(targets), 60, "Prometheus to scrape")
        yield stack, worker
    finally:
        for proc in reversed(procs):
            proc.stop()


def _targets_up(prom_url: str) -> int:
    answer = requests.get(f"{prom_url}/api/v1/query", params={"query": "up == 1"}, timeout=2)
    return len(answer.json()["data"]["result"])


def wait_for_scrape(prom_url: str, after: float, job: str = "web") -> None:
    """Block until Prometheus holds a scrape of job taken after the unix time `after`."""
    def scraped() -> bool:
        answer = requests.get(f"{prom_url}/api/v1/query",
                              params={"query": f'timestamp(up{{job="{job}"}})'}, timeout=2)
        result = answer.json()["data"]["result"]
        return bool(result) and float(result[0]["value"][1]) > after

    wait_until(scraped, 30, f"a scrape of {job} after {after}")


def quiet_edge(prom_url: str, jobs: tuple[str, ...] = ("web",)) -> datetime:
    """A run edge: a moment with a full scrape on each side and no traffic in between."""
    before = time.time()
    for job in jobs:
        wait_for_scrape(prom_url, before, job)
    edge = time.time()
    for job in jobs:
        wait_for_scrape(prom_url, edge, job)
    return datetime.fromtimestamp(edge, UTC)


def send_plan(base_url: str, plan: tuple[Step, ...] = PLAN) -> list[dict[str, Any]]:
    """Send a plan with requests; one record per answer (status, X-Request-ID, traceparent)."""
    seen = []
    with requests.Session() as session:
        for step in plan:
            for _ in range(step.count):
                response = session.request(step.method, base_url + step.path, json=step.json,
                                           timeout=10)
                seen.append({"name": step.name, "status": response.status_code,
                             "request_id": response.headers.get("X-Request-ID"),
                             "traceparent": response.headers.get("traceparent")})
    return seen


def run_exports(base_url: str, count: int) -> list[str]:
    """Start count CSV exports and wait until each has succeeded; their task ids."""
    ids = []
    for _ in range(count):
        answer = requests.post(base_url + "/export", timeout=10)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["task_id"])
    for task_id in ids:
        wait_until(lambda t=task_id: requests.get(f"{base_url}/tasks/{t}", timeout=5)
                   .json()["state"] == "succeeded", 60, f"export {task_id}")
    return ids


def record(out: Path = HERE) -> None:
    """Run the stack and write every recorded file into out."""
    from analysis import traces

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with lab_stack(tmp, with_worker=True) as (stack, worker):
            jobs_start = quiet_edge(stack.prom_url, ("web", "worker"))
            export_ids = run_exports(stack.base_url, 3)
            jobs_end = quiet_edge(stack.prom_url, ("web", "worker"))
            assert worker is not None
            worker.stop()  # from here on /healthz/background finds no worker: a slow 503

            run_start = quiet_edge(stack.prom_url)
            subprocess.run(
                [str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless", "-u", "1",
                 "-r", "1", "-t", "120s", "-H", stack.base_url, "--csv", str(tmp / "locust"),
                 "--only-summary", "--loglevel", "WARNING"],
                check=False, timeout=180, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
            run_end = quiet_edge(stack.prom_url)

            meta: dict[str, Any] = {
                "scrape_interval_s": SCRAPE_INTERVAL_S,
                "jobs": {"start": jobs_start.isoformat(), "end": jobs_end.isoformat(),
                         "exports": len(export_ids), "task_ids": export_ids},
                "run": {"start": run_start.isoformat(), "end": run_end.isoformat(),
                        **plan_counts(),
                        "plan": [{"count": s.count, "method": s.method, "path": s.path,
                                  "status": s.status, "name": s.name} for s in PLAN]},
            }
            with recorded_http.serve(out / "prometheus", upstream=stack.prom_url) as proxy:
                exercise(proxy, meta)
        # Copied after the stack stopped: gunicorn flushes its buffered spans on exit.
        for name in ("web.jsonl", "worker.jsonl", "spans.jsonl"):
            shutil.copy(stack.var_dir / "log" / name, out / name)
        shutil.copy(tmp / "locust_stats.csv", out / "locust_stats.csv")

    spans = traces.read_span_file(out / "spans.jsonl").spans
    export_trace = _trace_of_export(out / "web.jsonl", spans)
    slow_trace = _trace_of_slow_503(out / "web.jsonl")
    meta["traces"] = {"export": export_trace, "slow_503": slow_trace}
    for label, trace_id in meta["traces"].items():
        answer = traces.to_jaeger([s for s in spans if s.trace_id == trace_id])
        (out / f"jaeger-{label}.json").write_text(json.dumps(answer, indent=1) + "\n",
                                                  encoding="utf-8")
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def _trace_of_export(web_log: Path, spans: list[Any]) -> str:
    """The trace of the first POST /export (it reaches into the worker)."""
    from analysis import logs

    access = logs.access_lines(logs.load_logs(web_log).frame)
    exports = access[access["http.path"] == "/export"]
    return str(exports["trace_id"].iloc[0])


def _trace_of_slow_503(web_log: Path) -> str:
    """The trace of the slowest request (a /healthz/background 503)."""
    from analysis import logs

    return str(logs.slow_requests(logs.load_logs(web_log).frame, 1)["trace_id"].iloc[0])


def exercise(prom_url: str, meta: dict[str, Any]) -> None:
    """Every Prometheus call the unit tests make (recorded through the proxy)."""
    from analysis import logs, prom, verify

    p = prom.Prometheus(prom_url, scrape_interval_s=meta["scrape_interval_s"])
    run_start = datetime.fromisoformat(meta["run"]["start"])
    run_end = datetime.fromisoformat(meta["run"]["end"])
    jobs_end = datetime.fromisoformat(meta["jobs"]["end"])
    prom.red_summary(p, at=run_end, window="1m", job_window="5m")
    for query in prom.red_queries("1m", p.scrape_interval_s, "5m"):
        prom.evaluate_range(p, query, run_start, run_end)
    prom.evaluate(p, prom.job_success_query("5m"), at=jobs_end)
    prom.histogram_buckets(p, run_start, run_end)
    verify.known_truth(p, run_start, run_end, meta["run"]["requests"], meta["run"]["errors_5xx"])
    # The log only supplies expected values; the queries asked are the same without it.
    verify.prometheus_vs_logs(p, logs.parse_lines([]).frame, run_start, run_end)

if __name__ == "__main__":
    record(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
