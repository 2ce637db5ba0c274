"""The room service under a room of thirty: push latency, the page's, memory, and no push lost.

`lab room serve` runs as a facilitator starts it; Locust (bench/room_learners.py) plays the
learners and the facilitator's page on 127.0.0.1. The workshop pace is compressed about a
hundredfold (a check every second per learner instead of every two minutes or so), so the
paced phase is a harder load than any real room; then the whole room pushes at the same moment,
several times. Every push Locust saw acknowledged must be in the room's database.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.stats import table
from room.store import RoomStore
from stack.config import BIN_DIR
from stack.ports import port_in_use
from stack.processes import free_port


@dataclass(frozen=True)
class Plan:
    """Learners, exercises each, seconds between a learner's checks, all-at-once pushes."""

    learners: int
    exercises: int
    think_s: float
    bursts: int


FULL = Plan(learners=30, exercises=40, think_s=1.0, bursts=5)
QUICK = Plan(learners=4, exercises=4, think_s=0.1, bursts=2)
LOCUSTFILE = Path(__file__).with_name("room_learners.py")


def _rss_mib(pid: int) -> float:
    """Memory of a process and its children (gunicorn's master and worker), MiB: the sum of
    their proportional set sizes (PSS), so that pages the worker shares with the master it was
    forked from count once, as they occupy memory once."""
    try:
        root = psutil.Process(pid)
        return sum(p.memory_full_info().pss for p in (root, *root.children(recursive=True))) / 2**20
    except psutil.Error:
        return 0.0


def _stats(prefix: Path) -> dict[str, dict[str, float]]:
    """Locust's per-request-name statistics from its CSV."""
    rows = {}
    with Path(f"{prefix}_stats.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] != "Aggregated":
                rows[row["Name"]] = {"requests": float(row["Request Count"]),
                                     "failures": float(row["Failure Count"]),
                                     "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]),
                                     "max_ms": float(row["Max Response Time"])}
    return rows


def measure(tmp: Path, plan: Plan) -> dict[str, Any]:
    """One room: serve, load, count, stop."""
    var_dir, port = tmp / "facilitator", free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VAR_DIR": str(var_dir)}
    tmp.mkdir(parents=True, exist_ok=True)
    with (tmp / "room.out").open("w") as out:
        server = subprocess.Popen([str(BIN_DIR / "lab"), "room", "serve", "--port", str(port)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        room = RoomStore(var_dir / "room" / "room.sqlite")
        deadline = time.monotonic() + 30
        while not port_in_use(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        idle_mib = _rss_mib(server.pid)
        peak = [idle_mib]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.25):
                peak.append(_rss_mib(server.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        prefix = tmp / "locust"
        began = time.perf_counter()
        locust = subprocess.run(
            [str(BIN_DIR / "locust"), "-f", str(LOCUSTFILE), "--headless", "--only-summary",
             "-u", str(plan.learners + 1), "-r", str(plan.learners + 1), "-t", "900s",
             "--host", url, "--csv", str(prefix), "--stop-timeout", "10"],
            env={**env, "ROOM_CODE": room.secret("code"), "ROOM_TOKEN": room.secret("token"),
                 "ROOM_LEARNERS": str(plan.learners), "ROOM_EXERCISES": str(plan.exercises),
                 "ROOM_THINK_S": str(plan.think_s), "ROOM_BURSTS": str(plan.bursts)},
            capture_output=True, text=True, timeout=1200, check=False)
        seconds = time.perf_counter() - began
        stop.set()
        sampler.join()
        stats = _stats(prefix)
        stored = room.count()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    pushed = sum(s["requests"] - s["failures"] for name, s in stats.items() if name.startswith("push"))
    return {"plan": plan.__dict__, "stats": stats, "stored": stored, "acknowledged": pushed,
            "seconds": seconds, "idle_mib": idle_mib, "peak_mib": max(peak),
            "locust_exit": locust.returncode, "locust_tail": locust.stderr[-1500:]}


def render(raw: dict[str, Any]) -> str:
    """The requests' latency, the memory, and whether every acknowledged push was stored."""
    plan = raw["plan"]
    rows = [[name, f"{s['requests']:.0f}", f"{s['failures']:.0f}", f"{s['p50_ms']:.0f}",
             f"{s['p95_ms']:.0f}", f"{s['max_ms']:.0f}"] for name, s in sorted(raw["stats"].items())]
    lost = raw["acknowledged"] - raw["stored"]
    return "\n".join([
        f"{plan['learners']} learners (Locust users on 127.0.0.1) each check {plan['exercises']} "
        f"exercises one to three times, one push per check, {plan['think_s']:g} s apart on average "
        "(a real room checks about a hundred times slower), while the facilitator's page asks for "
        f"the room every 2 s; then the whole room pushes at the same moment, {plan['bursts']} times. "
        f"`lab room serve` (gunicorn, one process, {8} threads, SQLite in WAL with synchronous=FULL) "
        f"took it in {raw['seconds']:.0f} s.",
        "",
        table(["request", "count", "failed", "p50 ms", "p95 ms", "max ms"], rows),
        "",
        f"Pushes acknowledged: {raw['acknowledged']:.0f}; verdicts stored: {raw['stored']}; "
        f"lost: {lost:.0f}. The service's memory (master and worker, proportional set size): "
        f"{raw['idle_mib']:.0f} MiB idle, {raw['peak_mib']:.0f} MiB at its peak.",
    ])
