"""The fleet's cost: the whole stack's memory with one replica of each and with 3 web and 2
worker replicas, and the requests per second the machine serves through Caddy with 1 and
with 3 web replicas (each its own gunicorn, 2 workers x 4 threads), on PostgreSQL.

One lab, brought up once (`lab up --web 3 --workers 2`); the replica counts are switched with
`lab up --web N` between rounds, as a user would, and the rounds alternate (1, 3, 1, 3, ...)
so background activity hits both alike.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import database
from bench.footprint import lab, lab_env, memory, total
from bench.runner import load
from bench.stats import median, spread, table
from stack import launch
from stack.config import LabConfig


@dataclass(frozen=True)
class Plan:
    """Rounds of the 1-against-3 comparison, the load's length and connections."""

    rounds: int
    load_s: float
    connections: int


FULL = Plan(rounds=3, load_s=10.0, connections=16)
QUICK = Plan(rounds=1, load_s=2.0, connections=8)
PATHS = ["/api/todos", "/"]


def _memory(env: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per service (every replica its own row), after the first scrapes settled."""
    time.sleep(3)
    pids = {name: r.pid for name, r in launch.recorded(LabConfig.from_env(env)).items()}
    return memory(pids)


def _families(mem: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Rows summed per family: web (all its replicas), worker (all), and each other service."""
    out: dict[str, dict[str, float]] = {}
    for name, figures in mem.items():
        family = name.rpartition("-")[0] if name.rpartition("-")[2].isdigit() else name
        row = out.setdefault(family, {key: 0.0 for key in figures} | {"replicas": 0})
        for key, value in figures.items():
            row[key] += value
        row["replicas"] += 1
    return out


def measure(tmp: Path, plan: Plan) -> dict[str, Any]:
    """Memory of both fleets, then rounds of requests/s with 1 and 3 web replicas."""
    with database.private_database() as url:
        env = {**lab_env(tmp / "lab"), "DATABASE_URL": url}
        lab(["up"], env)
        try:
            single = _families(_memory(env))
            lab(["up", "--web", "3", "--workers", "2"], env, timeout=240)
            fleet = _families(_memory(env))
            rps: dict[str, list[float]] = {"1": [], "3": []}
            p50: dict[str, list[float]] = {"1": [], "3": []}
            p99: dict[str, list[float]] = {"1": [], "3": []}
            errors = 0
            for _ in range(plan.rounds):
                for replicas in ("1", "3"):
                    lab(["up", "--web", replicas], env, timeout=240)
                    time.sleep(2)  # Caddy's first health checks
                    result = load(int(env["CADDY_PORT"]), PATHS, plan.load_s, plan.connections, warmup=1.0)
                    rps[replicas].append(result["rps"])
                    p50[replicas].append(result["p50_ms"])
                    p99[replicas].append(result["p99_ms"])
                    errors += int(result["errors"])
        finally:
            lab(["down"], env)
    return {"plan": plan.__dict__, "single": single, "fleet": fleet, "rps": rps, "p50": p50,
            "p99": p99, "errors": errors, "load_average": os.getloadavg()[0]}


def render(raw: dict[str, Any]) -> str:
    """The memory table and the requests/s comparison."""
    plan = raw["plan"]
    rows = []
    for family in sorted(set(raw["single"]) | set(raw["fleet"])):
        one, many = raw["single"].get(family, {}), raw["fleet"].get(family, {})
        def count(row: dict[str, float]) -> str:
            return f"{row.get('replicas', 0):.0f} ({row.get('processes', 0):.0f})"

        rows.append([family, count(one), f"{one.get('pss_mib', 0):.0f}", count(many),
                     f"{many.get('pss_mib', 0):.0f}"])
    rows.append(["whole stack", "", f"{total(raw['single'], 'pss_mib'):.0f}", "",
                 f"{total(raw['fleet'], 'pss_mib'):.0f}"])
    ratio = [three / one for one, three in zip(raw["rps"]["1"], raw["rps"]["3"], strict=True) if one]
    p50 = {n: median(raw["p50"][n]) for n in ("1", "3")}
    p99 = {n: median(raw.get("p99", {}).get(n, [math.nan])) for n in ("1", "3")}
    shape = ("the median request is quicker (more threads take connections at once) and the slow "
             "tail longer (more processes wait for a core)" if p50["3"] < p50["1"] and p99["3"] > p99["1"]
             else f"p50 {p50['1']:.1f} against {p50['3']:.1f} ms, "
                  f"p99 {p99['1']:.1f} against {p99['3']:.1f} ms")
    return "\n".join([
        "One lab on PostgreSQL (`lab up`, then `lab up --web 3 --workers 2`), memory idle after the "
        "first scrapes: proportional set size (PSS) summed over every process of each service's "
        "replicas, so pages shared by a gunicorn master and its workers count once.",
        "",
        table(["service", "1+1: replicas (processes)", "PSS MiB", "3+2: replicas (processes)", "PSS MiB"],
              rows),
        "",
        f"Requests per second through Caddy ({plan['connections']} connections, "
        f"{plan['load_s']:g} s each, GET /api/todos and GET / alternately, {plan['rounds']} round(s) "
        "alternating 1 and 3 web replicas, each replica 2 gunicorn workers x 4 threads):",
        "",
        table(["web replicas", "requests/s", "p50 ms", "p99 ms"], [
            [n, spread(raw["rps"][n], 0), spread(raw["p50"][n], 1), spread(raw.get("p99", {}).get(n, []), 1)]
            for n in ("1", "3")
        ]),
        "",
        f"3 replicas serve {median(ratio):.2f}x the requests of 1 on this machine ({raw['errors']} "
        "errors in all rounds; the machine's 1-minute load average at the end "
        f"{raw.get('load_average', math.nan):.1f}). Two cores are what both share: more replicas "
        f"add processes to schedule and memory to hold, not CPU; {shape}. A fleet on one machine "
        "teaches; it does not scale.",
    ])
