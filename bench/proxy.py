"""Proxy overhead: the same gunicorn (logs + metrics) loaded directly and through Caddy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import database, procs
from bench.overhead import SEED_TODOS, Plan, config_env
from bench.procs import port_of
from bench.runner import load
from bench.stats import spread, table
from stack.processes import free_port

FULL = Plan(rounds=3, duration=5.0, warmup=1.0)
QUICK = Plan(rounds=1, duration=1.5, warmup=0.5)
PATHS = ("/", "/healthz")


def measure(database_url: str, tmp: Path, plan: Plan) -> dict[str, Any]:
    """Interleave direct and proxied runs of each path."""
    if not database.scalar(database_url, "SELECT count(*) FROM todos"):
        database.bulk_insert(database_url, SEED_TODOS, width=40)
    dead = f"http://127.0.0.1:{free_port()}"
    env = config_env("b", database_url, tmp / "proxy", dead, dead)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {p: {"direct": [], "caddy": []} for p in PATHS}
    with procs.serve(tmp / "proxy", env, ("web", "caddy")) as running:
        web_cpu, caddy_cpu = procs.CpuMeter(running.web.pid), procs.CpuMeter(running.caddy.pid)
        for _ in range(plan.rounds):
            for path in PATHS:
                for route, handle in (("direct", running.web), ("caddy", running.caddy)):
                    web_cpu.lap()
                    caddy_cpu.lap()
                    result = load(port_of(handle), path, plan.duration, plan.concurrency, plan.warmup)
                    sent = max(result["sent"], 1)
                    result["web_cpu_ms"] = 1000 * web_cpu.lap() / sent
                    result["caddy_cpu_ms"] = 1000 * caddy_cpu.lap() / sent
                    results[path][route].append(result)
    return {"plan": plan.__dict__, "results": results}


def render(raw: dict[str, Any]) -> str:
    """Direct versus through Caddy, with ratios."""
    plan = raw["plan"]
    rows = []
    for path, per_route in raw["results"].items():
        direct = per_route["direct"]
        for route, runs in per_route.items():
            ratios = [r["rps"] / d["rps"] for r, d in zip(runs, direct, strict=False) if d["rps"]]
            p50_added = [r["p50_ms"] - d["p50_ms"] for r, d in zip(runs, direct, strict=False)]
            rows.append([f"GET {path}", route,
                         spread([r["web_cpu_ms"] for r in runs], 3),
                         spread([r["caddy_cpu_ms"] for r in runs], 3) if route != "direct" else "-",
                         spread([r["rps"] for r in runs], 0),
                         spread(ratios, 3) if route != "direct" else "1",
                         spread([r["p50_ms"] for r in runs], 1),
                         spread(p50_added, 2) if route != "direct" else "0",
                         spread([r["p99_ms"] for r in runs], 1), sum(r["errors"] for r in runs)])
    return "\n".join([
        f"{plan['rounds']} rounds of {plan['duration']:g} s (after {plan['warmup']:g} s warm-up), "
        f"{plan['concurrency']} connections, gunicorn 2x4 with logs + metrics; Caddy from "
        "stack/caddy/Caddyfile on the same two cores.",
        "",
        "CPU per request as in the overhead section: gunicorn's workers and Caddy's process.",
        "",
        table(["request", "route", "gunicorn CPU ms/request", "Caddy CPU ms/request", "requests/s",
               "throughput vs direct", "p50 ms", "p50 added ms", "p99 ms", "errors"], rows),
    ])
