"""Scrape cost: /metrics latency, size and series count after N requests, 2 and 4 workers."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from app.layout import Layout
from bench import database, procs
from bench.overhead import SEED_TODOS, config_env
from bench.procs import port_of
from bench.runner import load
from bench.stats import spread, table
from stack.processes import free_port

FULL_REQUESTS = 100_000
QUICK_REQUESTS = 3_000
SCRAPES = 20
# Mostly cheap requests (so 100,000 take about a minute), with a listing, a page and an
# unmatched path so that several endpoints and statuses have series.
TRAFFIC = ["/healthz"] * 7 + ["/api/todos?per_page=5", "/", "/no-such-page"]
WORKER_COUNTS = (2, 4)


def series(body: str) -> int:
    """Samples in an exposition (lines that are not comments)."""
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def measure(database_url: str, tmp: Path, total: int) -> dict[str, Any]:
    """Start gunicorn with 2 and 4 workers, send total requests to each, then scrape both."""
    if not database.scalar(database_url, "SELECT count(*) FROM todos"):
        database.bulk_insert(database_url, SEED_TODOS, width=40)
    dead = f"http://127.0.0.1:{free_port()}"
    out: dict[str, Any] = {"requests": total, "workers": {}}
    with ExitStack() as up:
        servers = {}
        for workers in WORKER_COUNTS:
            var_dir = tmp / f"scrape-{workers}"
            running = up.enter_context(procs.serve(
                var_dir, config_env("b", database_url, var_dir, dead, dead), workers=workers))
            servers[workers] = port_of(running.web)
        for workers, port in servers.items():
            started = time.perf_counter()
            result = load(port, TRAFFIC, concurrency=16, total=total)
            out["workers"][workers] = {"load_s": time.perf_counter() - started,
                                       "load_rps": result["rps"], "sent": result["requests"],
                                       "latency_ms": [], "bytes": 0, "series": 0}
        session = requests.Session()
        for _ in range(SCRAPES):
            # Alternate the two servers so that background load affects both alike.
            for workers, port in servers.items():
                began = time.perf_counter()
                response = session.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
                elapsed = (time.perf_counter() - began) * 1000
                entry = out["workers"][workers]
                entry["latency_ms"].append(elapsed)
                entry["bytes"] = len(response.content)
                entry["series"] = series(response.text)
        for workers in servers:
            mp_dir = Layout(tmp / f"scrape-{workers}").metrics_dir("web")
            out["workers"][workers]["db_files"] = len(os.listdir(mp_dir)) if mp_dir.exists() else 0
    return out


def render(raw: dict[str, Any]) -> str:
    """One row per worker count."""
    rows = []
    for workers, entry in raw["workers"].items():
        rows.append([workers, f"{entry['sent']:,}", f"{entry['load_rps']:.0f}",
                     spread(entry["latency_ms"], 1), f"{max(entry['latency_ms']):.1f}",
                     f"{entry['bytes'] / 1024:.1f}", entry["series"], entry["db_files"]])
    return "\n".join([
        f"gunicorn (logs + metrics, 4 threads per worker) after {raw['requests']:,} requests "
        "(7 in 10 to /healthz, the rest to /api/todos, / and an unmatched path), then "
        f"{SCRAPES} scrapes of /metrics per server, alternating between the servers.",
        "",
        table(["workers", "requests sent", "req/s while sending", "scrape ms median (min..max)",
               "scrape ms max", "body KiB", "series (samples)", "multiprocess files"], rows),
    ])
