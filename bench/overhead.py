"""Instrumentation overhead: four configurations of the same gunicorn, measured interleaved."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import database, procs
from bench.otlp_sink import OtlpSink
from bench.runner import load
from bench.stats import median, spread, table

SEED_TODOS = 60  # more than a page (PAGE_SIZE 50): GET / renders a full page


@dataclass(frozen=True)
class Plan:
    """How long and how often each configuration is loaded."""

    rounds: int
    duration: float
    warmup: float
    concurrency: int = 16


FULL = Plan(rounds=4, duration=6.0, warmup=1.0)
QUICK = Plan(rounds=1, duration=1.5, warmup=0.5)

CONFIGS: dict[str, str] = {
    "a": "all observability off",
    "b": "logs + metrics",
    "c": "logs + metrics + tracing (live receiver)",
    "d": "logs + metrics + tracing (receiver down)",
}

ENDPOINTS: list[tuple[str, str, str, str]] = [
    ("GET /", "GET", "/", ""),
    ("POST /api/todos", "POST", "/api/todos", '{"text": "bench"}'),
    ("GET /healthz", "GET", "/healthz", ""),
]


def config_env(key: str, database_url: str, var_dir: Path, live: str, dead: str) -> dict[str, str]:
    """The environment of configuration key."""
    env = {"DATABASE_URL": database_url, "VAR_DIR": str(var_dir), "APP_ENV": "production",
           "SECRET_KEY": "bench-only-secret-key", "LOG_LEVEL": "INFO"}
    if key == "a":
        return {**env, "OBSERVABILITY": "off", "TRACING_ENABLED": "false"}
    if key == "b":
        return {**env, "TRACING_ENABLED": "false"}
    return {**env, "TRACING_ENABLED": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": live if key == "c" else dead}


def measure(database_url: str, tmp: Path, plan: Plan, keys: str = "abcd") -> dict[str, Any]:
    """Start one gunicorn per configuration, load each endpoint round-robin; raw results."""
    sink = OtlpSink().start()
    dead = f"http://127.0.0.1:{procs.free_port()}"
    database.bulk_insert(database_url, SEED_TODOS, width=40)
    servers: dict[str, tuple[procs.Proc, int]] = {}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {e[0]: {k: [] for k in keys} for e in ENDPOINTS}
    try:
        for key in keys:
            env = config_env(key, database_url, tmp / key, sink.endpoint, dead)
            servers[key] = procs.start_gunicorn(f"web-{key}", env, tmp / key)
        for _ in range(plan.rounds):
            for label, method, path, body in ENDPOINTS:
                # a, b, c, d, then a, b, c, d again: background noise hits all alike.
                for key in keys:
                    result = load(servers[key][1], path, plan.duration, plan.concurrency,
                                  plan.warmup, method, body)
                    results[label][key].append(result)
                    if method == "POST":
                        database.trim_to(database_url, SEED_TODOS)
        access_lines = {key: servers[key][0].output().count('"logger": "app.access"') for key in keys}
    finally:
        for proc, _ in servers.values():
            proc.stop()
        sink.stop()
    return {"plan": plan.__dict__, "results": results, "access_lines": access_lines,
            "exported_requests": sink.requests, "exported_bytes": sink.bytes}


def render(raw: dict[str, Any]) -> str:
    """The overhead tables: throughput, ratio to (a), p50 and p99 per endpoint."""
    results = raw["results"]
    plan = raw["plan"]
    out = [
        f"{plan['rounds']} rounds; each run {plan['duration']:g} s after {plan['warmup']:g} s "
        f"of warm-up, {plan['concurrency']} keep-alive connections, closed loop. Figures are "
        "median (min..max) over the rounds; the ratio is the median of the per-round ratios "
        "to (a), run back to back.",
        "",
    ]
    rows = []
    for label, per_key in results.items():
        base = per_key.get("a", [])
        for key, runs in per_key.items():
            rps = [r["rps"] for r in runs]
            ratios = [r["rps"] / b["rps"] for r, b in zip(runs, base, strict=False) if b["rps"]]
            p50_ratio = [r["p50_ms"] / b["p50_ms"] for r, b in zip(runs, base, strict=False) if b["p50_ms"]]
            rows.append([
                label, f"({key}) {CONFIGS[key]}", spread(rps, 0),
                spread(ratios, 3) if key != "a" else "1",
                spread([r["p50_ms"] for r in runs], 1),
                spread(p50_ratio, 2) if key != "a" else "1",
                spread([r["p99_ms"] for r in runs], 1),
                sum(r["errors"] for r in runs),
            ])
    out.append(table(["endpoint", "configuration", "requests/s", "throughput vs (a)", "p50 ms",
                      "p50 vs (a)", "p99 ms", "errors"], rows))
    out.append("")
    costs = []
    for label, per_key in results.items():
        base = per_key.get("a", [])
        for key in ("b", "c", "d"):
            if key in per_key:
                ratios = [r["rps"] / b["rps"] for r, b in zip(per_key[key], base, strict=False) if b["rps"]]
                costs.append(f"{label} ({key}): {100 * (1 - median(ratios)):.1f}%")
    out.append("Throughput cost against (a): " + "; ".join(costs) + ".")
    out.append("")
    out.append(
        f"Checks: access-log lines per configuration {raw['access_lines']}; the live receiver "
        f"took {raw['exported_requests']} OTLP exports ({raw['exported_bytes'] / 2**20:.1f} MiB)."
    )
    return "\n".join(out)
