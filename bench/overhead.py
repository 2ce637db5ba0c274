"""Instrumentation overhead: four configurations of the same gunicorn, measured interleaved."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import database, procs
from bench.otlp_sink import OtlpSink
from bench.procs import port_of
from bench.runner import load
from bench.stats import median, spread, table
from stack.processes import free_port

SEED_TODOS = 60  # more than a page (PAGE_SIZE 50): GET / renders a full page


@dataclass(frozen=True)
class Plan:
    """How long and how often each configuration is loaded."""

    rounds: int
    duration: float
    warmup: float
    concurrency: int = 16


FULL = Plan(rounds=4, duration=5.0, warmup=1.0)
QUICK = Plan(rounds=1, duration=1.5, warmup=0.5)

CONFIGS: dict[str, str] = {
    "a": "all observability off",
    "b": "logs + metrics",
    "c": "logs + metrics + tracing (live receiver)",
    "d": "logs + metrics + tracing (receiver down)",
    "e": "as (c), 1 request in 10 sampled",
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
    # /healthz, a probe, is untraced by default: trace it here, its row is the cost of a span.
    traced = {**env, "TRACING_ENABLED": "true", "OTEL_PYTHON_FLASK_EXCLUDED_URLS": "/metrics$",
              "OTEL_EXPORTER_OTLP_ENDPOINT": dead if key == "d" else live}
    if key == "e":
        # What a production service would run: the standard head sampler, 10% of traces.
        traced.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.1")
    return traced


def measure(database_url: str, tmp: Path, plan: Plan, keys: str = "abcde") -> dict[str, Any]:
    """Start one gunicorn per configuration, load each endpoint round-robin; raw results."""
    sink = OtlpSink().start()
    dead = f"http://127.0.0.1:{free_port()}"
    database.bulk_insert(database_url, SEED_TODOS, width=40)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {e[0]: {k: [] for k in keys} for e in ENDPOINTS}
    with ExitStack() as started:
        servers = {key: started.enter_context(procs.serve(
            tmp / key, config_env(key, database_url, tmp / key, sink.endpoint, dead))).web
            for key in keys}
        started.callback(sink.stop)
        # CPU time of each server's workers per request: unlike throughput, it hardly moves
        # when other programs on the machine take the cores for a while.
        meters = {key: procs.CpuMeter(web.pid) for key, web in servers.items()}
        for _ in range(plan.rounds):
            for label, method, path, body in ENDPOINTS:
                # a, b, c, d, then a, b, c, d again: background noise hits all alike.
                for key in keys:
                    meters[key].lap()
                    result = load(port_of(servers[key]), path, plan.duration, plan.concurrency,
                                  plan.warmup, method, body)
                    cpu_s = meters[key].lap()
                    result["cpu_ms_per_request"] = 1000 * cpu_s / max(result["sent"], 1)
                    results[label][key].append(result)
                    if method == "POST":
                        database.trim_to(database_url, SEED_TODOS)
        access_lines = {key: servers[key].output().count('"logger": "app.access"') for key in keys}
    return {"plan": plan.__dict__, "results": results, "access_lines": access_lines,
            "exported_requests": sink.requests, "exported_bytes": sink.bytes}


def cpu_ratios(results: dict[str, Any], endpoint: str, key: str, base: str = "a") -> list[float]:
    """Per-round ratios of CPU per request, key over base."""
    pairs = zip(results[endpoint][key], results[endpoint][base], strict=False)
    return [r["cpu_ms_per_request"] / b["cpu_ms_per_request"] for r, b in pairs
            if b["cpu_ms_per_request"]]


def rps_ratios(results: dict[str, Any], endpoint: str, key: str, base: str = "a") -> list[float]:
    """Per-round throughput ratios, key over base."""
    pairs = zip(results[endpoint][key], results[endpoint][base], strict=False)
    return [r["rps"] / b["rps"] for r, b in pairs if b["rps"]]


def render(raw: dict[str, Any]) -> str:
    """The overhead tables: CPU per request and throughput, each against (a); latency."""
    results = raw["results"]
    plan = raw["plan"]
    out = [
        f"{plan['rounds']} rounds; each run {plan['duration']:g} s after {plan['warmup']:g} s "
        f"of warm-up, {plan['concurrency']} keep-alive connections, closed loop. Figures are "
        "median (min..max) over the rounds; ratios are medians of the per-round ratios to (a), "
        "whose runs were back to back with the others'.",
        "",
        "*CPU per request* is the user + system time of the gunicorn workers (master included) "
        "during the run divided by the requests answered; PostgreSQL's share is not in it. It "
        "is the figure to read on a shared machine: throughput moves with whatever else takes "
        "the cores, CPU time per request hardly does. On an otherwise idle machine where the "
        "server is CPU-bound, throughput is inversely proportional to it.",
        "",
    ]
    rows = []
    for label, per_key in results.items():
        for key, runs in per_key.items():
            first = key == "a"
            rows.append([
                label, f"({key}) {CONFIGS[key]}",
                spread([r["cpu_ms_per_request"] for r in runs], 3),
                "1" if first else spread(cpu_ratios(results, label, key), 3),
                spread([r["rps"] for r in runs], 0),
                "1" if first else spread(rps_ratios(results, label, key), 3),
                spread([r["p50_ms"] for r in runs], 1),
                spread([r["p99_ms"] for r in runs], 1),
                sum(r["errors"] for r in runs),
            ])
    out.append(table(["endpoint", "configuration", "CPU ms/request", "CPU vs (a)", "requests/s",
                      "throughput vs (a)", "p50 ms", "p99 ms", "errors"], rows))
    out.append("")
    added = []
    for label, per_key in results.items():
        base = median([r["cpu_ms_per_request"] for r in per_key["a"]])
        for key in ("b", "c", "d", "e"):
            if key in per_key:
                extra = median([r["cpu_ms_per_request"] for r in per_key[key]]) - base
                added.append(f"{label} ({key}) {1000 * extra:+.0f}")
    out.append("CPU added per request against (a), in microseconds: " + "; ".join(added) + ".")
    out.append("")
    out.append(
        f"Checks: access-log lines per configuration {raw['access_lines']}; the live receiver "
        f"took {raw['exported_requests']} OTLP exports ({raw['exported_bytes'] / 2**20:.1f} MiB)."
    )
    return "\n".join(out)
