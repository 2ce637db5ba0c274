"""The load generator: the highest request rate one Locust process and a master with N
worker processes drive against the app on this machine (`lab load --workers N`)."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import database, procs
from bench.overhead import config_env
from bench.stats import spread, table
from loadtests.run import run_headless
from loadtests.shapes import make_profile
from stack.processes import free_port

# Readers and API clients without think time: each user sends its next request as soon as
# the last one is answered, so the rate is what Locust (or the server) can do.
NO_WAIT = {"LOAD_WAIT": "0,0", "LOAD_WEIGHTS": "reader=1,api=1,writer=0,exporter=0"}


@dataclass(frozen=True)
class Plan:
    """Locust process counts to compare, users, seconds per run, rounds."""

    workers: tuple[int, ...]
    users: int
    duration: int
    rounds: int


FULL = Plan(workers=(0, 2), users=48, duration=20, rounds=3)
QUICK = Plan(workers=(0, 2), users=4, duration=4, rounds=1)


def children_cpu_s() -> float:
    """CPU seconds of this process's finished children (Locust and its workers, once reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(database_url: str, tmp: Path, plan: Plan) -> dict[str, Any]:
    """Run Locust with each process count in turns against one gunicorn (logs + metrics)."""
    database.bulk_insert(database_url, 50, width=40)
    dead = f"http://127.0.0.1:{free_port()}"
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in plan.workers}
    var_dir = tmp / "locust-target"
    with procs.serve(var_dir, config_env("b", database_url, var_dir, dead, dead)) as running:
        meter = procs.CpuMeter(running.web.pid)
        for round_number in range(plan.rounds):
            for workers in plan.workers:
                meter.lap()
                before = children_cpu_s()
                result = run_headless(running.web.url,
                                      make_profile("steady", plan.users, plan.users, plan.duration),
                                      tmp / f"reports-{workers}-{round_number}", NO_WAIT,
                                      workers=workers)
                locust_cpu = children_cpu_s() - before
                server_cpu = meter.lap()
                runs[workers].append({
                    "requests": result.requests, "failures": result.failures, "rps": result.rps,
                    "p50_ms": result.p50_ms, "locust_cpu_s": locust_cpu, "server_cpu_s": server_cpu,
                })
    return {"plan": plan.__dict__, "runs": {str(w): r for w, r in runs.items()}}


def render(raw: dict[str, Any]) -> str:
    """Rate per process count, with where the CPU went."""
    plan = raw["plan"]
    rows = []
    single = raw["runs"].get("0", [])
    for workers, runs in raw["runs"].items():
        ratios = [r["rps"] / s["rps"] for r, s in zip(runs, single, strict=False) if s["rps"]]
        per_request = [1000 * r["locust_cpu_s"] / max(r["requests"], 1) for r in runs]
        server = [1000 * r["server_cpu_s"] / max(r["requests"], 1) for r in runs]
        label = "one process" if workers == "0" else f"master + {workers} workers"
        rows.append([label, spread([r["rps"] for r in runs], 0), spread(ratios, 2),
                     spread(per_request, 2), spread(server, 2),
                     str(sum(r["failures"] for r in runs))])
    return "\n".join([
        f"Locust (`lab load`'s runner, loadtests/run.py) against gunicorn 2x4 with logs + metrics, "
        f"{plan['users']} users without think time (readers and API clients), {plan['duration']} s "
        f"per run, {plan['rounds']} round(s) in turns; everything on the same two cores, so the "
        "rate is bounded by whichever side runs out of CPU first: the Locust CPU column says how "
        "much each request cost the load generator, the server column the app.",
        "",
        table(["Locust", "requests/s", "vs one process", "Locust CPU ms/request",
               "gunicorn CPU ms/request", "failures"], rows),
    ])
