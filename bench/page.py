"""The page: size of GET / with 50 todos, and its CPU in process against /healthz.

The app runs in a child process (its own interpreter, observability off, the GC settings of
a gunicorn worker) and is called through its WSGI test client, so the figures are the app's
own work without a server or a network. GET / and /healthz are measured in turns (round
after round), each round's figure being CPU seconds per request (`time.process_time`).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.settings import PROJECT_ROOT
from bench import database
from bench.stats import median, spread, table

SEED_TODOS = 50
WIDTH = 40  # characters of text per todo, as in the overhead benchmark


@dataclass(frozen=True)
class Plan:
    """Rounds and requests per round."""

    rounds: int
    page_requests: int
    health_requests: int


FULL = Plan(rounds=9, page_requests=300, health_requests=1500)
QUICK = Plan(rounds=2, page_requests=30, health_requests=100)

# Runs in the child, from the checkout under test (so an older checkout can be measured too).
CHILD = """
import gc, json, os, sys, time
from app import create_app
app = create_app()
client = app.test_client()
gc.freeze()
gc.set_threshold(int(os.environ.get("GC_GEN0_THRESHOLD", "10000")))
plan = json.loads(sys.argv[1])
def cpu_ms(path, n):
    start = time.process_time()
    for _ in range(n):
        client.get(path)
    return (time.process_time() - start) / n * 1000
body = client.get("/").get_data()
for _ in range(30):
    client.get("/"); client.get("/healthz")
rounds = [{"page_ms": cpu_ms("/", plan["page_requests"]),
           "health_ms": cpu_ms("/healthz", plan["health_requests"])} for _ in range(plan["rounds"])]
sys.stdout.write(json.dumps({"rounds": rounds, "body": body.decode()}))
"""


def measure_checkout(database_url: str, tmp: Path, plan: Plan, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Measure the app of the checkout at root against database_url (already seeded)."""
    env = {**os.environ, "DATABASE_URL": database_url, "VAR_DIR": str(tmp), "APP_ENV": "test",
           "OBSERVABILITY": "off", "TRACING_ENABLED": "false", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(plan.__dict__)], cwd=root,
                         env=env, capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"page benchmark child failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    body = result.pop("body").encode()
    result.update(bytes=len(body), gzip_bytes=len(gzip.compress(body)))
    return result


def measure(database_url: str, tmp: Path, plan: Plan) -> dict[str, Any]:
    """The page of 50 todos of this checkout."""
    database.bulk_insert(database_url, SEED_TODOS, width=WIDTH)
    return {"plan": plan.__dict__, "this": measure_checkout(database_url, tmp, plan)}


def summary(result: dict[str, Any]) -> dict[str, float]:
    """Median CPU per request of the page and the probe, and their ratio (median of rounds)."""
    rounds = result["rounds"]
    return {"page_ms": median([r["page_ms"] for r in rounds]),
            "health_ms": median([r["health_ms"] for r in rounds]),
            "ratio": median([r["page_ms"] / r["health_ms"] for r in rounds])}


def render(raw: dict[str, Any]) -> str:
    """Size and in-process CPU of the page."""
    plan = raw["plan"]
    rows = []
    for label, result in raw.items():
        if label == "plan":
            continue
        rounds = result["rounds"]
        rows.append([label, f"{result['bytes'] / 1024:.1f}", f"{result['gzip_bytes'] / 1024:.1f}",
                     spread([r["page_ms"] for r in rounds], 3),
                     spread([r["health_ms"] for r in rounds], 3),
                     spread([r["page_ms"] / r["health_ms"] for r in rounds], 1)])
    return "\n".join([
        f"GET / with {SEED_TODOS} todos of ~{WIDTH} characters on PostgreSQL, called in one process "
        f"through the app's WSGI test client (observability off, gunicorn's GC settings); "
        f"{plan['rounds']} rounds of {plan['page_requests']} pages and {plan['health_requests']} "
        "/healthz, in turns. CPU is the process's own (`time.process_time`): the app, SQLAlchemy "
        "and the database driver, not PostgreSQL. gzip: Python's gzip at level 9 (Caddy sends "
        "its own gzip or zstd).",
        "",
        table(["code", "HTML KiB", "gzip KiB", "GET / CPU ms", "/healthz CPU ms",
               "GET / vs /healthz"], rows),
    ])
