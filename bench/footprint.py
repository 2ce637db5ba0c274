"""Footprint and turnaround of the local stack: `lab up` cold start, memory idle and under
load over every process of every service, `lab down`; optionally `lab demo`."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.runner import load
from bench.stats import spread, table
from stack import launch
from stack.config import BIN_DIR, LabConfig, private_env


@dataclass(frozen=True)
class Plan:
    """How many cold starts, and how long the load lasts."""

    runs: int
    load_s: float


FULL = Plan(runs=3, load_s=15.0)
QUICK = Plan(runs=1, load_s=3.0)


def lab_env(var_dir: Path) -> dict[str, str]:
    """A lab of its own: a fresh VAR_DIR and free ports, embedded SQLite (the defaults)."""
    # The launcher's own defaults otherwise: development, traced (an empty value is unset).
    settings = {"LAB_REPORTS_DIR": str(var_dir / "reports"), "APP_ENV": "development",
                "TRACING_ENABLED": ""}
    return private_env(var_dir, settings)


def lab(args: list[str], env: dict[str, str], timeout: float = 180) -> tuple[float, str]:
    """Run `lab ARGS`; returns (seconds, output); raises with the output on failure."""
    started = time.perf_counter()
    out = subprocess.run([str(BIN_DIR / "lab"), *args], env=env, capture_output=True, text=True,
                         timeout=timeout, check=False)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"lab {' '.join(args)} failed ({out.returncode}):\n"
                           f"{(out.stdout + out.stderr)[-3000:]}")
    return seconds, out.stdout + out.stderr


def memory(pids: dict[str, int]) -> dict[str, dict[str, float]]:
    """Per service: process count, summed RSS and summed PSS (MiB) over its whole tree.

    RSS counts pages shared by a forked parent and its children once per process; PSS splits
    them, so the PSS sum is what the stack really occupies.
    """
    result = {}
    for service, pid in pids.items():
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        rss = pss = 0
        count = 0
        for proc in tree:
            try:
                info = proc.memory_full_info()
            except psutil.Error:
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            count += 1
        result[service] = {"processes": count, "rss_mib": rss / 2**20, "pss_mib": pss / 2**20}
    return result


def total(mem: dict[str, dict[str, float]], key: str) -> float:
    """Sum of one figure over all services."""
    return sum(m[key] for m in mem.values())


def one_run(tmp: Path, plan: Plan) -> dict[str, Any]:
    """Cold `lab up`, idle memory, memory under load, `lab down`; times of each step."""
    var_dir = tmp / f"lab-{time.monotonic_ns()}"
    env = lab_env(var_dir)
    up_s, _ = lab(["up"], env)
    try:
        pids = {name: r.pid for name, r in launch.recorded(LabConfig.from_env(env)).items()}
        time.sleep(2)  # let the first scrapes and the worker's pool settle
        idle = memory(pids)
        peak: dict[str, dict[str, float]] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                now = memory(pids)
                if total(now, "rss_mib") > total(peak, "rss_mib") if peak else True:
                    peak.clear()
                    peak.update(now)
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        port = int(env["CADDY_PORT"])
        posting = threading.Thread(target=load, args=(port, "/api/todos", plan.load_s, 4),
                                   kwargs={"method": "POST", "body": '{"text": "footprint"}'})
        posting.start()
        load_started = time.perf_counter()
        reading = load(port, ["/", "/api/todos", "/healthz"], plan.load_s, 12)
        posting.join()
        load_s = time.perf_counter() - load_started
        stop.set()
        sampler.join()
    finally:
        down_s, _ = lab(["down"], env)
    return {"up_s": up_s, "down_s": down_s, "load_s": load_s, "idle": idle, "load": peak,
            "load_rps": reading["rps"], "load_errors": reading["errors"]}


def measure(tmp: Path, plan: Plan) -> dict[str, Any]:
    """plan.runs cold starts, each with idle and loaded memory."""
    return {"plan": plan.__dict__, "runs": [one_run(tmp, plan) for _ in range(plan.runs)]}


def render(raw: dict[str, Any]) -> str:
    """Cold start, turnaround and memory tables."""
    runs = raw["runs"]
    out = [
        f"{len(runs)} cold start(s) of `lab up` in a fresh VAR_DIR on free ports (embedded SQLite "
        "database and broker, tracing to the local span file: the launcher's defaults), "
        f"then {raw['plan']['load_s']:g} s of load through Caddy (12 connections reading "
        "/, /api/todos, /healthz and 4 posting todos), then `lab down`.",
        "",
        table(["step", "seconds"], [
            ["`lab up` cold, to all healthy", spread([r["up_s"] for r in runs], 1)],
            ["`lab down`", spread([r["down_s"] for r in runs], 1)],
            ["up + load + down (turnaround)",
             spread([r["up_s"] + r["load_s"] + r["down_s"] for r in runs], 1)],
        ]),
        "",
    ]
    services = sorted({s for r in runs for s in (*r["idle"], *r["load"])})
    rows = []
    for service in [*services, "whole stack"]:
        def fig(phase: str, key: str, service: str = service) -> list[float]:
            if service == "whole stack":
                return [total(r[phase], key) for r in runs]
            return [r[phase][service][key] for r in runs if service in r[phase]]
        procs_n = fig("load", "processes")
        rows.append([service, f"{procs_n[0]:.0f}" if procs_n else "-",
                     spread(fig("idle", "rss_mib"), 0), spread(fig("idle", "pss_mib"), 0),
                     spread(fig("load", "rss_mib"), 0), spread(fig("load", "pss_mib"), 0)])
    out.append(table(["service", "processes", "idle RSS MiB", "idle PSS MiB",
                      "under load RSS MiB", "under load PSS MiB"], rows))
    out.append("")
    out.append(
        "Under load is the sample (every 0.5 s) with the largest summed RSS. The load reached "
        + ", ".join(f"{r['load_rps']:.0f} req/s ({r['load_errors']} errors)" for r in runs)
        + " on the read connections."
    )
    return "\n".join(out)
