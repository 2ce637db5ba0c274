"""Record the analysis tests' data from a real run: gunicorn, a Celery worker, Prometheus, Locust.

    .venv/bin/python -m tests.data.analysis.record

Starts everything on free loopback ports in a temporary directory, runs a job phase (CSV
exports through the worker), stops the worker, then a Locust run of PLAN (known numbers of
200s, 201s, 404s and slow 503s), and saves under tests/data/analysis/:
web.jsonl and worker.jsonl (the JSON logs), spans.jsonl (the local span file), locust_stats.csv,
prometheus/ (every Prometheus API answer the tests ask for, through a recording proxy),
jaeger-*.json (Jaeger query-API answers *converted* from the span file: no Jaeger can run
here, see analysis.traces.to_jaeger) and meta.json (the run's moments and known counts).
The live test imports recording_stack, send_plan and quiet_edge from here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from stack import launch
from stack.config import LabConfig
from stack.launch import Running
from tests.data.analysis import recorded_http
from tests.support.processes import BIN, wait_until

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


@contextmanager
def recording_stack(tmp: Path, with_worker: bool = False,
                    scrape_interval_s: float = SCRAPE_INTERVAL_S) -> Iterator[Running]:
    """gunicorn tracing to the span file, optionally a worker, and a Prometheus scraping them
    every scrape_interval_s; their logs under VAR_DIR/log (stopped on the way out)."""
    config = LabConfig.private(tmp / "var", {"TRACING_ENABLED": "true", "BROKER_TIMEOUT": BROKER_TIMEOUT_S},
                               scrape_interval=f"{scrape_interval_s:g}s")
    services = ("web", "worker", "prometheus") if with_worker else ("web", "prometheus")
    with launch.attached(config, services) as running:
        yield running


def quiet_edge(prom_url: str, jobs: tuple[str, ...] = ("web",)) -> datetime:
    """A run edge (analysis.lab_context.quiet_edge) on the Prometheus at prom_url."""
    from analysis import lab_context, prom  # not at import: the locustfile imports PLAN from here

    return lab_context.quiet_edge(prom.Prometheus(prom_url, scrape_interval_s=SCRAPE_INTERVAL_S), jobs)


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
        with recording_stack(tmp, with_worker=True) as stack:
            jobs_start = quiet_edge(stack.prometheus.url, ("web", "worker"))
            export_ids = run_exports(stack.web.url, 3)
            jobs_end = quiet_edge(stack.prometheus.url, ("web", "worker"))
            stack.worker.stop()  # from here on /healthz/background finds no worker: a slow 503

            run_start = quiet_edge(stack.prometheus.url)
            subprocess.run(
                [str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless", "-u", "1",
                 "-r", "1", "-t", "120s", "-H", stack.web.url, "--csv", str(tmp / "locust"),
                 "--only-summary", "--loglevel", "WARNING"],
                check=False, timeout=180, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
            run_end = quiet_edge(stack.prometheus.url)

            meta: dict[str, Any] = {
                "scrape_interval_s": SCRAPE_INTERVAL_S,
                "jobs": {"start": jobs_start.isoformat(), "end": jobs_end.isoformat(),
                         "exports": len(export_ids), "task_ids": export_ids},
                "run": {"start": run_start.isoformat(), "end": run_end.isoformat(),
                        **plan_counts(),
                        "plan": [{"count": s.count, "method": s.method, "path": s.path,
                                  "status": s.status, "name": s.name} for s in PLAN]},
            }
            with recorded_http.serve(out / "prometheus", upstream=stack.prometheus.url) as proxy:
                exercise(proxy, meta)
        # Copied after the stack stopped: gunicorn flushes its buffered spans on exit.
        layout = stack.config.layout
        for path in (layout.log("web"), layout.log("worker"), layout.span_file):
            shutil.copy(path, out / path.name)
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
