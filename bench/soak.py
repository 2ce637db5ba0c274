"""A bounded soak of the local stack: `python -m bench soak --minutes 10 --users 30`.

Brings the lab up (`lab up`) in a temporary VAR_DIR on free ports, over a private PostgreSQL
and a private Redis (never the machine's shared ones), runs the mixed Locust scenario
(loadtests/, shape `soak`) through Caddy, and samples every process's memory and open file
descriptors, and the PostgreSQL and Redis connection counts, while it runs. Afterwards every
export must be finished. Prints the figures and, with --write-doc, puts them into
docs/reliability.md between the soak markers. Exit code 0 when every check passed.

With --incident-seed N, faults are switched on and off while it runs (the seeded schedule of
`lab incident`, written to the stack's fault switchboard): failures the faults cause by
design (answers and exports marked "injected fault") are counted apart, every other failure
is unexpected. A ledger writer creates todos through Caddy with Idempotency-Keys, retrying a
failed create with its key; at the end every create answered 2xx must be in the database
exactly once.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import redis
import requests

from app.layout import PROJECT_ROOT
from loadtests.run import run_headless
from loadtests.shapes import make_profile
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


INJECTED = "injected fault"
LEDGER_PREFIX = "soak-ledger"


@dataclass
class Incident:
    """`lab incident --seed N` running beside the load, as an instructor would run it: it
    switches the stack's faults on and off by the seed's schedule and clears them at the end."""

    proc: subprocess.Popen[str]
    log_path: Path
    applied: list[tuple[float, str]] = field(default_factory=list)

    @classmethod
    def start(cls, config: LabConfig, seed: int, duration: float, episodes: int) -> Incident:
        """Start the incident for duration seconds."""
        log_path = config.log_dir / "incident.out"
        with log_path.open("w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                [str(config.bin_dir / "lab"), "incident", "--seed", str(seed), "--duration",
                 f"{duration:g}", "--episodes", str(episodes)],
                env=config.env, stdout=out, stderr=subprocess.STDOUT, text=True)
        return cls(proc, log_path)

    def finish(self) -> None:
        """Wait for the schedule's end (it ends with the load), then read what was applied."""
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.terminate()  # lab incident clears every fault when it stops
            self.proc.wait(30)
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            found = re.match(r"\[t\+\s*([0-9.]+)s\] applied: (.*)", line)
            if found:
                self.applied.append((float(found.group(1)), found.group(2)))


@dataclass
class Ledger:
    """Creates uniquely named todos with Idempotency-Keys, retrying each failed create with
    its key (up to `tries` times), and remembers which were acknowledged."""

    base: str
    interval: float = 0.25
    tries: int = 6
    acknowledged: list[str] = field(default_factory=list)
    unacknowledged: list[str] = field(default_factory=list)
    replays: int = 0
    retries: int = 0
    injected: int = 0
    unexpected: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def create(self, session: requests.Session, text: str) -> None:
        """One create, retried with the same key until it is acknowledged."""
        key = text.replace(" ", "-")  # keys are visible ASCII, no spaces
        for attempt in range(self.tries):
            if attempt:
                self.retries += 1
                time.sleep(0.5 * attempt)
            try:
                response = session.post(f"{self.base}/api/todos", json={"text": text},
                                        headers={"Idempotency-Key": key}, timeout=30)
            except requests.RequestException as exc:
                self.unexpected.append(f"{type(exc).__name__}")
                continue
            if response.status_code == 201:
                self.acknowledged.append(text)
                self.replays += response.headers.get("Idempotent-Replayed") == "true"
                return
            if response.status_code == 500 and INJECTED in response.text:
                self.injected += 1
            else:
                self.unexpected.append(f"{response.status_code} {response.text[:120]}")
        self.unacknowledged.append(text)

    def run(self) -> None:
        """Create until stopped."""
        session = requests.Session()
        n = 0
        while not self._stop.wait(self.interval):
            n += 1
            self.create(session, f"{LEDGER_PREFIX} {n:06d}")

    def stop(self) -> None:
        """Stop creating."""
        self._stop.set()

    def check(self, pg_url: str) -> tuple[int, int, int]:
        """(acknowledged missing, acknowledged duplicated, rows of unacknowledged creates)."""
        conn = psycopg2.connect(pg_url)
        with conn.cursor() as cur:
            cur.execute("SELECT text, count(*) FROM todos WHERE text LIKE %s GROUP BY text",
                        (LEDGER_PREFIX + "%",))
            rows = {str(t): int(c) for t, c in cur.fetchall()}
        conn.close()
        missing = sum(1 for t in self.acknowledged if t not in rows)
        duplicated = sum(1 for c in rows.values() if c > 1)
        return missing, duplicated, sum(rows.get(t, 0) for t in self.unacknowledged)


def locust_failures(failures_csv: Path) -> tuple[int, int, int, list[str]]:
    """Locust failures split: (caused by injected faults, of them answers 500, others, the
    others' messages). An injected export failure is a failed export, not a 5xx answer."""
    if not failures_csv.exists():
        return 0, 0, 0, []
    injected = injected_500 = other = 0
    messages: list[str] = []
    with failures_csv.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            n = int(row.get("Occurrences") or 0)
            error = row.get("Error", "")
            if INJECTED in error:
                injected += n
                injected_500 += n if "got 500" in error else 0
            else:
                other += n
                messages.append(f"{row.get('Method')} {row.get('Name')}: {error[:160]} x{n}")
    return injected, injected_500, other, messages


def growth(samples: list[Sample], service: str, warmup_s: float) -> tuple[float, float, float]:
    """RSS (MiB) after warm-up, at the end, and the largest seen, for one service."""
    steady = [s for s in samples if s.at_s >= warmup_s and service in s.rss_mib] or samples
    values = [s.rss_mib.get(service, 0.0) for s in steady]
    return values[0], values[-1], max(values)


def export_states(pg_url: str) -> dict[str, int]:
    """Exports by state; a failure injected by design is its own state, `failed (injected)`."""
    conn = psycopg2.connect(pg_url)
    with conn.cursor() as cur:
        cur.execute("SELECT status, coalesce(error, '') LIKE %s, count(*) FROM exports GROUP BY 1, 2",
                    (f"%{INJECTED}%",))
        states: dict[str, int] = {}
        for status, injected, n in cur.fetchall():
            name = f"{status} (injected)" if injected else str(status)
            states[name] = states.get(name, 0) + int(n)
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


@dataclass
class Outcome:
    """Everything the soak checks, gathered after the run."""

    result: Any  # loadtests.run.LoadRunResult
    samples: list[Sample]
    states: dict[str, int]
    five_xx: int
    injected_failures: int
    injected_500s: int
    other_failures: int
    failure_messages: list[str]
    ledger: Ledger
    ledger_check: tuple[int, int, int]
    incident: Incident | None
    load: tuple[float, float, float]


def report(args: argparse.Namespace, o: Outcome, started_at: datetime) -> tuple[str, bool]:
    """The figures as a Markdown block, and whether every check passed."""
    warmup = min(60.0, args.minutes * 60 / 5)
    result = o.result
    faults = (f"; faults switched by `lab incident --seed {args.incident_seed}`'s schedule"
              if o.incident else "")
    # Injected 500s reach the access log too: each was seen by Locust or the ledger.
    unexpected_5xx = o.five_xx - o.injected_500s - o.ledger.injected
    missing, duplicated, unacked_rows = o.ledger_check
    lines = [
        f"Run {started_at:%Y-%m-%d %H:%M} UTC: `python -m bench soak --minutes {args.minutes:g} "
        f"--users {args.users}"
        + (f" --incident-seed {args.incident_seed}" if o.incident else "") + "` (lab up: gunicorn "
        f"2x4, Celery prefork, Caddy, Prometheus; private PostgreSQL and Redis; Locust shape "
        f"`soak`, mixed reader/writer/exporter/api users, creates sent with Idempotency-Keys"
        f"{faults}; 2-core machine shared with other engineers' test runs: load average "
        f"{o.load[0]:.1f} / {o.load[1]:.1f} / {o.load[2]:.1f} (1/5/15 min) at the end).",
        "",
        f"- requests {result.requests} (≈{result.rps:.1f}/s); Locust failures {result.failures}: "
        f"{o.injected_failures} injected by design ({o.injected_500s} answers 500, the rest "
        f"exports failed), **{o.other_failures} unexpected**; 5xx in the "
        f"app's access log {o.five_xx}, of which not injected **{unexpected_5xx}**; p50 "
        f"{result.p50_ms} ms, p95 {result.p95_ms} ms, p99 {result.percentiles_ms.get('99%')} ms",
        f"- exports by final state: {o.states}",
        f"- ledger writer (POST /api/todos with Idempotency-Key, a failed create retried with its "
        f"key): {len(o.ledger.acknowledged)} acknowledged; {o.ledger.retries} retries sent with "
        f"the same key, {o.ledger.replays} of them answered as replays; "
        f"{len(o.ledger.unacknowledged)} never acknowledged ({unacked_rows} of them stored); "
        f"injected 500s {o.ledger.injected}; "
        f"acknowledged but missing **{missing}**, duplicated **{duplicated}**; unexpected answers "
        f"{len(o.ledger.unexpected)}",
    ]
    if o.incident:
        lines.append("- faults: " + "; ".join(f"{at / 60:.1f} min {what}" for at, what in o.incident.applied))
    for message in o.failure_messages[:10]:
        lines.append(f"- unexpected failure: {message}")
    for message in o.ledger.unexpected[:10]:
        lines.append(f"- ledger, unexpected answer: {message}")
    lines += [
        "",
        f"| service | processes | RSS after {warmup:.0f}s warm-up (MiB) | RSS at end | max | growth | "
        "fds after warm-up | fds at end | fds max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ok = o.other_failures == 0 and unexpected_5xx == 0
    ok = ok and not missing and not duplicated and not o.ledger.unexpected and o.ledger.acknowledged != []
    ok = ok and set(o.states) <= {"succeeded", "failed (injected)"} and o.states.get("succeeded", 0) > 0
    steady = [s for s in o.samples if s.at_s >= warmup] or o.samples
    for service in SERVICES:
        first, last, peak = growth(o.samples, service, warmup)
        fds = [s.fds.get(service, 0) for s in steady]
        procs = max(s.processes.get(service, 0) for s in o.samples)
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
              f"- samples: {len(o.samples)} every {args.sample_every:g}s; median web RSS "
              f"{statistics.median(s.rss_mib.get('web', 0) for s in steady):.1f} MiB",
              f"- verdict: {'pass' if ok else 'FAIL'}"]
    return "\n".join(lines), ok


def write_doc(block: str) -> None:
    """Replace the soak figures in docs/reliability.md."""
    text = DOC.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}", encoding="utf-8")


def configure(parser: argparse.ArgumentParser) -> None:
    """`python -m bench soak`'s options."""
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--incident-seed", type=int, default=None,
                        help="switch faults on and off by this seed's incident schedule")
    parser.add_argument("--write-doc", action="store_true", help="record the figures in docs/reliability.md")


def run(args: argparse.Namespace) -> int:
    """Run the soak; print (and optionally record) the figures."""
    if not 0.5 <= args.minutes <= 120 or not 1 <= args.users <= 500:
        print("bench soak: --minutes must be 0.5..120 and --users 1..500", file=sys.stderr)
        return 2

    var_dir = Path(tempfile.mkdtemp(prefix="todolab-soak-"))
    started_at = datetime.now(UTC)
    incident: Incident | None = None
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
            ledger = Ledger(host)
            began = time.monotonic()
            threads = [threading.Thread(target=sampler.run, args=(began,), daemon=True),
                       threading.Thread(target=ledger.run, daemon=True)]
            if args.incident_seed is not None:
                duration = args.minutes * 60
                incident = Incident.start(config, args.incident_seed, duration,
                                          max(3, int(args.minutes // 5)))
            for thread in threads:
                thread.start()
            # A worker_delay episode slows exports: poll long enough that only a stuck export
            # is reported as one.
            profile = make_profile("soak", args.users, max(1.0, args.users / 10), int(args.minutes * 60))
            result = run_headless(host, profile, var_dir / "reports",
                                  extra_env={"LOAD_WAIT": "0.5,2", "LOAD_EXPORT_MAX_POLLS": "400"})
            ledger.stop()
            if incident:
                incident.finish()
            # Exports still in flight at the end get a bounded time to finish.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and {"queued", "running"} & set(export_states(data_url)):
                time.sleep(1)
            sampler.stop()
            for thread in threads:
                thread.join(60)
            sampler.samples.append(sampler.take(began))
            injected, injected_500s, other, messages = locust_failures(result.failures_csv)
            outcome = Outcome(
                result=result, samples=sampler.samples, states=export_states(data_url),
                five_xx=server_errors(config.layout.log("web")), injected_failures=injected,
                injected_500s=injected_500s, other_failures=other, failure_messages=messages, ledger=ledger,
                ledger_check=ledger.check(data_url), incident=incident, load=os.getloadavg(),
            )
        finally:
            launch.down(config)
            broker.kill()
    print(result.summary())
    block, ok = report(args, outcome, started_at)
    print(block)
    if args.write_doc:
        write_doc(block)
    return 0 if ok else 1

