"""A bounded soak of the local stack: `python -m bench.soak --minutes 10 --users 30`.

Brings the lab up (`lab up`) in a temporary VAR_DIR on free ports, over a private PostgreSQL
and a private Redis (never the machine's shared ones), runs the mixed Locust scenario
(loadtests/, shape `soak`) through Caddy, and samples every process's memory and open file
descriptors, and the PostgreSQL and Redis connection counts, while it runs. Afterwards every
export must be finished. Prints the figures and, with --write-doc, puts them into
docs/reliability.md between the soak markers. Exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg2
import redis

from app.layout import PROJECT_ROOT
from loadtests.run import run_headless
from stack import launch
from stack.config import LabConfig
from stack.errors import StackError
from stack.private_services import PrivateRedis, private_postgres

DOC = PROJECT_ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
SERVICES = ("web", "worker", "caddy")


@dataclass
class Sample:
    """One look at the running stack."""

    at_s: float
    rss_mib: dict[str, float]  # service -> sum over its processes
    fds: dict[str, int]
    processes: dict[str, int]
    pg_connections: int
    redis_clients: int


@dataclass
class Sampler:
    """Samples the stack every interval seconds until stopped."""

    config: LabConfig
    pg_url: str
    redis_url: str
    interval: float
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def take(self, began: float) -> Sample:
        """Measure once."""
        rss: dict[str, float] = {}
        fds: dict[str, int] = {}
        count: dict[str, int] = {}
        for service, record in launch.recorded(self.config).items():
            if service not in SERVICES:
                continue
            try:
                top = psutil.Process(record.pid)
                group = [top, *top.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            rss[service], fds[service], count[service] = 0.0, 0, 0
            for proc in group:
                try:
                    rss[service] += proc.memory_info().rss / 2**20
                    fds[service] += proc.num_fds()
                    count[service] += 1
                except psutil.NoSuchProcess:
                    pass
        conn = psycopg2.connect(self.pg_url)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            (pg_count,) = cur.fetchone()
        conn.close()
        clients = int(redis.Redis.from_url(self.redis_url).info("clients")["connected_clients"])
        # Our own two probe connections are not the stack's.
        return Sample(time.monotonic() - began, rss, fds, count, int(pg_count) - 1, clients - 1)

    def run(self, began: float) -> None:
        """Sample until stopped."""
        while not self._stop.wait(0 if not self.samples else self.interval):
            self.samples.append(self.take(began))

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()


def growth(samples: list[Sample], service: str, warmup_s: float) -> tuple[float, float, float]:
    """RSS (MiB) after warm-up, at the end, and the largest seen, for one service."""
    steady = [s for s in samples if s.at_s >= warmup_s and service in s.rss_mib] or samples
    values = [s.rss_mib.get(service, 0.0) for s in steady]
    return values[0], values[-1], max(values)


def export_states(pg_url: str) -> dict[str, int]:
    """Exports by state."""
    conn = psycopg2.connect(pg_url)
    with conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM exports GROUP BY status")
        states = {str(k): int(v) for k, v in cur.fetchall()}
    conn.close()
    return states


def server_errors(web_log: Path) -> int:
    """5xx answers in the app's JSON access log."""
    count = 0
    for line in web_log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{") and '"app.access"' in line:
            record = json.loads(line)
            if int(record.get("status_code", record.get("status", 0)) or 0) >= 500:
                count += 1
    return count


def report(args: argparse.Namespace, result: object, samples: list[Sample], states: dict[str, int],
           five_xx: int, started_at: datetime) -> tuple[str, bool]:
    """The figures as a Markdown block, and whether every check passed."""
    warmup = min(60.0, args.minutes * 60 / 5)
    lines = [
        f"Run {started_at:%Y-%m-%d %H:%M} UTC: `python -m bench.soak --minutes {args.minutes:g} "
        f"--users {args.users}` (lab up: gunicorn 2x4, Celery prefork, Caddy, Prometheus; private "
        f"PostgreSQL and Redis; Locust shape `soak`, mixed reader/writer/exporter/api users; "
        f"2-core machine shared with other engineers' test runs).",
        "",
        f"- requests {result.requests} (≈{result.rps:.1f}/s), Locust failures "  # type: ignore[attr-defined]
        f"{result.failures}, 5xx in the app's access log {five_xx}; "  # type: ignore[attr-defined]
        f"p50 {result.p50_ms} ms, p95 {result.p95_ms} ms, p99 "  # type: ignore[attr-defined]
        f"{result.percentiles_ms.get('99%')} ms",  # type: ignore[attr-defined]
        f"- exports by final state: {states}",
        "",
        f"| service | processes | RSS after {warmup:.0f}s warm-up (MiB) | RSS at end | max | growth | "
        "fds after warm-up | fds at end | fds max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ok = result.failures == 0 and five_xx == 0  # type: ignore[attr-defined]
    ok = ok and set(states) <= {"succeeded"} and states.get("succeeded", 0) > 0
    steady = [s for s in samples if s.at_s >= warmup] or samples
    for service in SERVICES:
        first, last, peak = growth(samples, service, warmup)
        fds = [s.fds.get(service, 0) for s in steady]
        procs = max(s.processes.get(service, 0) for s in samples)
        pct = (last - first) / first * 100 if first else 0.0
        lines.append(f"| {service} | {procs} | {first:.1f} | {last:.1f} | {peak:.1f} | {pct:+.1f}% | "
                     f"{fds[0]} | {fds[-1]} | {max(fds)} |")
        # A leak grows without bound; allow the caches and arenas of a warm process.
        ok = ok and pct < 25 and fds[-1] <= fds[0] + 20
    pg = [s.pg_connections for s in steady]
    rc = [s.redis_clients for s in steady]
    ok = ok and max(pg) <= 2 * 15 + 10
    lines += ["",
              f"- PostgreSQL connections of the stack: after warm-up {pg[0]}, end {pg[-1]}, max {max(pg)} "
              f"(pool bound: 2 web workers x (5 + 10 overflow) + worker children)",
              f"- Redis clients: after warm-up {rc[0]}, end {rc[-1]}, max {max(rc)}",
              f"- samples: {len(samples)} every {args.sample_every:g}s; median web RSS "
              f"{statistics.median(s.rss_mib.get('web', 0) for s in steady):.1f} MiB",
              f"- verdict: {'pass' if ok else 'FAIL'}"]
    return "\n".join(lines), ok


def write_doc(block: str) -> None:
    """Replace the soak figures in docs/reliability.md."""
    text = DOC.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print (and optionally record) the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--write-doc", action="store_true", help="record the figures in docs/reliability.md")
    args = parser.parse_args(argv)
    if not 0.5 <= args.minutes <= 120 or not 1 <= args.users <= 500:
        parser.error("--minutes must be 0.5..120 and --users 1..500")

    var_dir = Path(tempfile.mkdtemp(prefix="todolab-soak-"))
    started_at = datetime.now(UTC)
    with private_postgres() as pg:
        data_url = pg.create_database("soak")
        broker = PrivateRedis(var_dir / "redis")
        broker.start()
        # What `lab up` runs, traced as it is by default, on free ports in VAR_DIR var_dir.
        config = LabConfig.private(var_dir, {
            "DATABASE_URL": data_url, "CELERY_BROKER_URL": broker.url, "CELERY_RESULT_BACKEND": "",
            "LOG_LEVEL": "INFO", "APP_ENV": "development", "TRACING_ENABLED": ""})
        try:
            try:
                launch.up(config, timeout=180)
            except StackError as exc:
                print(f"the stack did not come up: {exc}", file=sys.stderr)
                return 1
            host = config.url("CADDY_PORT")
            sampler = Sampler(config, data_url, broker.url, args.sample_every)
            began = time.monotonic()
            thread = threading.Thread(target=sampler.run, args=(began,), daemon=True)
            thread.start()
            result = run_headless(host, "soak", args.users, int(args.minutes * 60),
                                  var_dir / "reports", extra_env={"LOAD_WAIT": "0.5,2"},
                                  spawn_rate=max(1.0, args.users / 10))
            # Exports still in flight at the end get a bounded time to finish.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and set(export_states(data_url)) - {"succeeded", "failed"}:
                time.sleep(1)
            sampler.stop()
            thread.join(30)
            sampler.samples.append(sampler.take(began))
            states = export_states(data_url)
            five_xx = server_errors(config.layout.log("web"))
        finally:
            launch.down(config)
            broker.kill()
    print(result.summary())
    block, ok = report(args, result, sampler.samples, states, five_xx, started_at)
    print(block)
    if args.write_doc:
        write_doc(block)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
