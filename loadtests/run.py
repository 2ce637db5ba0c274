"""Run a headless Locust scenario in a subprocess and summarise its reports.

`lab load` calls `run_headless` (`lab load --host URL` for any other deployment of the app).
`workers=N` runs Locust's distributed mode on this machine: one master and N worker processes
(Locust's `--processes N`); the master gathers the workers' statistics and writes the same
reports as a single process does.

Locust runs as a child process so that its gevent monkeypatching never touches the caller.
Locust is started with `--exit-code-on-error 0`: failed requests are results to report, not
errors, so `run_headless` never raises because requests failed; it raises `LoadRunError` only
when Locust itself could not run (bad arguments, crash, timeout), with the tail of Locust's log.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loadtests.shapes import Profile

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
# Locust needs a few seconds to start and to stop its users after the shape ends.
STARTUP_GRACE_SECONDS = 60
# Users finish the task in hand when the shape ends (killed mid-request, a request would reach
# the server and its logs but never Locust's statistics).
STOP_TIMEOUT_SECONDS = 10
REPORTED_PERCENTILES = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "100%")


class LoadRunError(RuntimeError):
    """Locust could not run (as opposed to: it ran and some requests failed)."""


@dataclass(frozen=True)
class EndpointStats:
    """One request name of a run (method and name), as Locust counted it."""

    method: str
    name: str
    requests: int
    failures: int
    median_ms: float | None
    average_ms: float | None
    rps: float
    percentiles_ms: dict[str, float | None]


@dataclass(frozen=True)
class LoadRunResult:
    """What a headless run left behind and its aggregate figures (the "Aggregated" row)."""

    host: str
    shape: str
    users: int
    duration: float
    command: list[str]
    returncode: int
    stats_csv: Path
    history_csv: Path
    stats_json: Path
    failures_csv: Path
    exceptions_csv: Path
    html: Path
    log: Path
    requests: int
    failures: int
    rps: float
    percentiles_ms: dict[str, float | None]
    endpoints: list[EndpointStats] = field(default_factory=list)
    workers: int = 0

    @property
    def failure_ratio(self) -> float:
        """Failed requests / all requests (0.0 when nothing was sent)."""
        return self.failures / self.requests if self.requests else 0.0

    @property
    def p50_ms(self) -> float | None:
        """Median response time over all requests (Locust rounds it)."""
        return self.percentiles_ms.get("50%")

    @property
    def p95_ms(self) -> float | None:
        """95th percentile over all requests (Locust rounds it)."""
        return self.percentiles_ms.get("95%")

    def endpoint(self, method: str, name: str) -> EndpointStats | None:
        """The statistics of one request name, if it was requested at all."""
        return next((e for e in self.endpoints if e.method == method and e.name == name), None)

    def summary(self) -> str:
        """A few human lines: figures and where the reports are."""
        return "\n".join([
            f"load run: shape={self.shape} users={self.users} duration={self.duration:g}s"
            f" host={self.host}" + (f" workers={self.workers}" if self.workers else ""),
            f"requests={self.requests} failures={self.failures}"
            f" ({self.failure_ratio:.2%}) rps={self.rps:.1f}"
            f" p50={self.p50_ms}ms p95={self.p95_ms}ms p99={self.percentiles_ms.get('99%')}ms",
            f"stats:   {self.stats_csv}",
            f"history: {self.history_csv}",
            f"html:    {self.html}",
        ])


def read_stats(stats_json: Path) -> list[EndpointStats]:
    """Every request name of a run, and the "Aggregated" total (method ""), from Locust's
    --json-file: written at quit from every request, where `_stats.csv`, rewritten on a
    one-second timer and not at quit, misses the requests of the last second (a CI run
    counted 114 injected 500s in the access log and 113 failures in the CSV)."""
    from analysis.locust_json import read_stats_json  # pandas: only when a run is read

    def number(value: float | None) -> float | None:
        return None if value is None or math.isnan(value) else float(value)  # NaN: no request

    return [
        EndpointStats(
            method=str(row["Type"]),
            name=str(row["Name"]),
            requests=int(row["Request Count"]),
            failures=int(row["Failure Count"]),
            median_ms=number(row["Median Response Time"]),
            average_ms=number(row["Average Response Time"]),
            rps=float(row["Requests/s"]),
            percentiles_ms={p: number(row.get(p)) for p in REPORTED_PERCENTILES},
        )
        for row in read_stats_json(stats_json).to_dict("records")
    ]


def read_user_counts(history_csv: Path) -> list[tuple[int, int]]:
    """(unix timestamp, user count) from the "Aggregated" rows of a stats history CSV."""
    with open(history_csv, newline="", encoding="utf-8") as fh:
        return [
            (int(row["Timestamp"]), int(row["User Count"]))
            for row in csv.DictReader(fh)
            if row["Name"] == "Aggregated"
        ]


def report_prefix(reports_dir: Path, shape: str, now: datetime | None = None) -> Path:
    """A fresh timestamped base path, e.g. reports/load-20261129T061500Z-ramp."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    prefix = reports_dir / f"load-{stamp}-{shape}"
    number = 1
    while prefix.with_name(prefix.name + "_stats.csv").exists():
        number += 1
        prefix = reports_dir / f"load-{stamp}-{shape}-{number}"
    return prefix


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (for the Locust master)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# How often a run says how far it is: a command is never silent for 10 s.
PROGRESS_EVERY_S = 5.0


def requests_so_far(history_csv: Path) -> tuple[int, int]:
    """(requests, failures) of the last "Aggregated" row Locust wrote in its history CSV (0, 0
    before its first row)."""
    try:
        with open(history_csv, encoding="utf-8", newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("Name") == "Aggregated"]
    except OSError:
        return 0, 0
    if not rows:
        return 0, 0
    return int(rows[-1].get("Total Request Count") or 0), int(rows[-1].get("Total Failure Count") or 0)


def _wait(proc: subprocess.Popen[bytes], limit: float, duration: float, history_csv: Path,
          progress: Callable[[str], None] | None) -> int:
    """proc's exit status, telling progress how far the run is meanwhile; TimeoutExpired past limit."""
    if progress is None:
        return proc.wait(timeout=limit)
    began = time.monotonic()
    while True:
        try:
            return proc.wait(timeout=PROGRESS_EVERY_S)
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - began
            if elapsed >= limit:
                raise
            requests, failures = requests_so_far(history_csv)
            left = max(0.0, duration - elapsed)
            progress(f"load: {elapsed:.0f} s of {duration:.0f} s ({left:.0f} s left), "
                     f"{requests} requests so far, {failures} failed")


def run_headless(
    host: str,
    profile: Profile,
    reports_dir: Path = Path("reports"),
    extra_env: Mapping[str, str] | None = None,
    workers: int = 0,
    progress: Callable[[str], None] | None = None,
) -> LoadRunResult:
    """Run the lab's locustfile headless against host with profile (made once, by
    loadtests.shapes.profile_from or make_profile) and return its reports and figures.

    workers: 0 runs one Locust process; N > 0 a master and N worker processes. progress, when
    given, is told every PROGRESS_EVERY_S how far the run is (elapsed, left, requests so far).
    """
    if workers < 0:
        raise ValueError(f"workers must be 0 (one process) or more, not {workers}")
    reports_dir = Path(reports_dir).resolve()
    reports_dir.mkdir(parents=True, exist_ok=True)
    prefix = report_prefix(reports_dir, profile.name)
    html = prefix.with_name(prefix.name + ".html")
    log = prefix.with_name(prefix.name + ".log")
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", host.rstrip("/"),
        "--shape", profile.name,
        "--shape-users", str(profile.users),
        "--shape-spawn-rate", f"{profile.spawn_rate:g}",
        "--shape-duration", f"{profile.duration:g}",
        "--csv", str(prefix), "--csv-full-history", "--html", str(html),
        # _stats.csv is rewritten on a 1 s timer and not at quit, so the last second can be
        # missing from it; the JSON file is written at shutdown with every request.
        "--json-file", str(prefix),
        "--stop-timeout", str(STOP_TIMEOUT_SECONDS),
        "--exit-code-on-error", "0",
        "--only-summary",
    ]
    if workers:
        # The master runs the shape and writes every report from the workers' statistics.
        # On loopback (the workers are our own children; no other machine may join) and on a
        # port of its own: Locust's fixed default (5557) would collide with any other
        # distributed run on the machine, and its workers would then report nothing.
        port = str(_free_port())
        command += ["--processes", str(workers),
                    "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                    "--master-host", "127.0.0.1", "--master-port", port]
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(log, "wb") as out:
        # Own session: on timeout the whole Locust process group is stopped, nothing else.
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        limit = profile.duration + STOP_TIMEOUT_SECONDS + STARTUP_GRACE_SECONDS
        history = prefix.with_name(prefix.name + "_stats_history.csv")
        try:
            returncode = _wait(proc, limit, profile.duration, history, progress)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            raise LoadRunError(
                f"locust did not finish within {limit:g}s;"
                f" log: {log}"
            ) from None
    stats_csv = prefix.with_name(prefix.name + "_stats.csv")
    stats_json = prefix.with_name(prefix.name + ".json")
    if returncode != 0 or not stats_json.is_file():
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise LoadRunError(f"locust exited with {returncode}; log {log}:\n{tail}")
    endpoints = read_stats(stats_json)
    total = next((e for e in endpoints if e.name == "Aggregated"), None)
    return LoadRunResult(
        host=host,
        shape=profile.name,
        users=profile.users,
        duration=profile.duration,
        command=command,
        returncode=returncode,
        stats_csv=stats_csv,
        history_csv=prefix.with_name(prefix.name + "_stats_history.csv"),
        stats_json=stats_json,
        failures_csv=prefix.with_name(prefix.name + "_failures.csv"),
        exceptions_csv=prefix.with_name(prefix.name + "_exceptions.csv"),
        html=html,
        log=log,
        requests=total.requests if total else 0,
        failures=total.failures if total else 0,
        rps=total.rps if total else 0.0,
        percentiles_ms=total.percentiles_ms if total else {},
        endpoints=[e for e in endpoints if e.name != "Aggregated"],
        workers=workers,
    )
