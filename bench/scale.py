"""Scale: list and API latency as the table grows; export duration and worker peak memory."""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from app.layout import Layout
from bench import database, procs
from bench.overhead import config_env
from bench.procs import port_of
from bench.runner import load
from bench.stats import median, spread, table
from stack.launch import Handle
from stack.processes import free_port, wait_until


@dataclass(frozen=True)
class Plan:
    """Table sizes at which to measure latency and exports."""

    latency_sizes: tuple[int, ...]
    export_sizes: tuple[int, ...]
    rounds: int
    duration: float
    exports_per_size: int


FULL = Plan((100, 10_000, 100_000), (1_000, 10_000, 100_000), rounds=5, duration=3.0,
            exports_per_size=2)
QUICK = Plan((100, 1_000), (1_000,), rounds=1, duration=1.5, exports_per_size=1)
LIST_PATHS = {"GET / (page 1)": "/", "GET /api/todos (page 1)": "/api/todos"}
# Half-way down the list: by page number (OFFSET) and by cursor (keyset). Rows are inserted
# with position = id = 1, 2, 3, ... (database.bulk_insert into an empty table).
DEEP_PATHS = {"GET /api/todos?page= (half-way)": "/api/todos?page={page}",
              "GET /api/todos?cursor= (half-way)": "/api/todos?cursor={half}.{half}"}
CONCURRENCY = 4  # below saturation: this measures latency, not throughput


def run_export(base: str, worker: Handle, timeout: float = 600) -> dict[str, Any]:
    """Start an export through the API, wait for it; its duration and the worker's peak RSS."""
    response = requests.post(f"{base}/export", headers={"Accept": "application/json"},
                             json={}, timeout=10)
    response.raise_for_status()
    task_id = response.json()["task_id"]
    deadline = time.monotonic() + timeout
    while True:
        state = requests.get(f"{base}/tasks/{task_id}", timeout=10).json()
        if state["state"] in ("succeeded", "failed"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"export {task_id} did not finish in {timeout:g}s")
        time.sleep(0.2)
    if state["state"] != "succeeded":
        raise RuntimeError(f"export failed: {state}")
    seconds = (datetime.fromisoformat(state["finished_at"])
               - datetime.fromisoformat(state["started_at"])).total_seconds()
    peak = 0
    wait_until(lambda: _peak(worker, task_id) > 0, 15, "the worker's 'export finished' line")
    peak = _peak(worker, task_id)
    return {"rows": state["rows"], "seconds": seconds, "peak_rss_mib": peak / 1024}


def _peak(worker: Handle, task_id: str) -> int:
    """peak_rss_kib of the 'export finished' line of task_id, or 0."""
    for record in worker.json_records():
        if record.get("message") == "export finished" and task_id in str(record.get("task_id")):
            return int(str(record["peak_rss_kib"]))
    return 0


def list_paths(size: int, deep: bool = True) -> dict[str, str]:
    """The requests measured at a table size."""
    paths = dict(LIST_PATHS)
    if deep:
        half = size // 2
        paths.update({label: path.format(page=half // 50 + 1, half=half)
                      for label, path in DEEP_PATHS.items()})
    return paths


def measure_lists(tmp: Path, plan: Plan, deep: bool = True) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """One database and one server per table size, loaded in turns (size after size, round
    after round), so that the machine's background load hits every size alike."""
    dead = f"http://127.0.0.1:{free_port()}"
    latency: dict[int, dict[str, list[dict[str, Any]]]] = {}
    with ExitStack() as started:
        ports, meters = {}, {}
        for size in plan.latency_sizes:
            url = started.enter_context(database.private_database())
            database.bulk_insert(url, size)
            database.serial_queries(url)
            var_dir = tmp / f"lists-{size}"
            web = started.enter_context(procs.serve(var_dir, config_env("b", url, var_dir, dead, dead))).web
            ports[size] = port_of(web)
            # CPU per request of the app and of its database: unlike latency, it hardly moves
            # with the machine's other load (a scan of the table shows on the database side).
            meters[size] = (procs.CpuMeter(web.pid), database.PgCpuMeter(url))
            latency[size] = {label: [] for label in list_paths(size, deep)}
        for _ in range(plan.rounds):
            for size, port in ports.items():
                for label, path in list_paths(size, deep).items():
                    for meter in meters[size]:
                        meter.lap()
                    result = load(port, path, plan.duration, CONCURRENCY, 0.5)
                    sent = max(result["sent"], 1)
                    result["app_cpu_ms"], result["db_cpu_ms"] = (
                        1000 * meter.lap() / sent for meter in meters[size])
                    latency[size][label].append(result)
    return latency


def measure(database_url: str, tmp: Path, plan: Plan) -> dict[str, Any]:
    """List latency by table size (measure_lists), then exports of a table grown step by step."""
    var_dir = tmp / "scale"
    dead = f"http://127.0.0.1:{free_port()}"
    layout = Layout(var_dir)
    env = {**config_env("b", database_url, var_dir, dead, dead),
           # A private embedded broker: nothing else on the machine shares it.
           "CELERY_BROKER_URL": f"sqla+sqlite:///{layout.broker_file}",
           "CELERY_RESULT_BACKEND": f"db+sqlite:///{layout.results_file}"}
    out: dict[str, Any] = {"plan": plan.__dict__, "latency": measure_lists(tmp, plan), "exports": {}}
    # A solo-child pool that forks a fresh child per task: the peak RSS is one task's.
    worker_args = ("--loglevel=INFO", "--max-tasks-per-child=1", f"--hostname=bench-{free_port()}@%h")
    with procs.serve(var_dir, env, ("web", "worker"), worker_concurrency=1,
                     worker_args=worker_args) as running:
        worker = running.worker
        base = running.web.url
        for size in sorted(plan.export_sizes):
            have = int(str(database.scalar(database_url, "SELECT count(*) FROM todos")))
            if size > have:
                database.bulk_insert(database_url, size - have)
            out["exports"][size] = [run_export(base, worker) for _ in range(plan.exports_per_size)]
    return out


def latency_rows(latency: dict[Any, dict[str, list[dict[str, Any]]]]) -> list[list[str]]:
    """Rows of the latency table; the ratio is to the smallest size, per round, then median."""
    smallest = latency[min(latency, key=int)]
    rows = []
    for size, per_path in latency.items():
        for label, runs in per_path.items():
            base = smallest.get(label, [])
            ratios = [r["p50_ms"] / b["p50_ms"] for r, b in zip(runs, base, strict=False) if b["p50_ms"]]
            cpu = [r["app_cpu_ms"] + r["db_cpu_ms"] for r in runs if "db_cpu_ms" in r]
            cpu_ratios = [(r["app_cpu_ms"] + r["db_cpu_ms"]) / (b["app_cpu_ms"] + b["db_cpu_ms"])
                          for r, b in zip(runs, base, strict=False) if "db_cpu_ms" in r and "db_cpu_ms" in b]
            rows.append([f"{int(size):,}", label,
                         spread([r["db_cpu_ms"] for r in runs], 3) if cpu else "-",
                         spread(cpu, 3) if cpu else "-", spread(cpu_ratios, 2) if cpu_ratios else "-",
                         spread([r["p50_ms"] for r in runs], 1), spread(ratios, 2) if ratios else "-",
                         spread([r["rps"] for r in runs], 0)])
    return rows


def render_latency(latency: dict[Any, dict[str, list[dict[str, Any]]]]) -> str:
    """The table of the list requests by table size."""
    return table(["todos", "request", "PostgreSQL CPU ms/request", "app + PostgreSQL CPU ms/request",
                  "CPU vs smallest", "p50 ms", "p50 vs smallest", "requests/s"], latency_rows(latency))


def render(raw: dict[str, Any]) -> str:
    """Latency per size, export time and memory per size."""
    plan = raw["plan"]
    export_rows = []
    first: float | None = None
    for size, runs in raw["exports"].items():
        seconds = median([r["seconds"] for r in runs])
        per_1k = seconds / int(size) * 1000
        first = first if first is not None else per_1k
        export_rows.append([f"{int(size):,}", spread([r["seconds"] for r in runs], 2),
                            f"{per_1k * 1000:.1f}", f"{per_1k / first:.2f}",
                            spread([r["peak_rss_mib"] for r in runs], 1)])
    return "\n".join([
        f"gunicorn 2x4 with logs + metrics on PostgreSQL; rows of ~300 characters. Latency: one "
        f"database and one server per size, loaded in turns, {plan['rounds']} round(s) of "
        f"{plan['duration']:g} s per size and path, {CONCURRENCY} connections (below "
        "saturation). CPU per request is the gunicorn workers' plus the PostgreSQL backends' "
        "serving that database (a scan of the table shows there; parallel query is off in these "
        "databases so that no scan runs in a short-lived worker); *vs smallest* columns are "
        "medians of per-round ratios to the same request on the smallest table. On a loaded "
        "machine latency moves with the load; CPU per request hardly does.",
        "",
        render_latency(raw["latency"]),
        "",
        f"Exports through POST /export to a prefork Celery worker that forks a fresh child per "
        f"task (so each task's peak RSS is its own), {plan['exports_per_size']} per size; the "
        "duration is the task's own (started_at to finished_at), without broker latency.",
        "",
        table(["rows", "export s", "ms per 1,000 rows", "per-row time vs smallest",
               "worker child peak RSS MiB"], export_rows),
    ])
