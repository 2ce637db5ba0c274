"""A real Prometheus serving known, synthetic traffic: written as OpenMetrics, turned into a
TSDB block by `promtool tsdb create-blocks-from openmetrics`, and queried over HTTP.

The traffic is steady and known, so a PromQL answer can be checked against arithmetic: for
each (method, endpoint, status) a constant rate of requests per second and a fixed share of
them in each latency bucket, scraped every SCRAPE_INTERVAL_S for DURATION_S up to `end`.
One series is a fault: todos.toggle answers 500 only from FAULT[0] to FAULT[1] seconds
relative to `end` (its 200s go on all along).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analysis import prom
from app.observability import names
from tests.support.processes import free_port, http_ok, start, wait_until

SCRAPE_INTERVAL_S = 5
DURATION_S = 600
FAULT = (-40, -10)  # seconds relative to the end of the traffic
ENVIRONMENT = "test"


@dataclass(frozen=True)
class Traffic:
    """One request series: its labels, requests per second and cumulative share per bucket;
    during each of `changes` (low, high, requests per second, shares per bucket) the rate and
    the latency are those instead."""

    method: str
    endpoint: str
    status: str
    per_second: float
    under: dict[float, float]  # le -> share of requests at or under le (cumulative)
    mean_s: float  # average duration, for the _sum series
    active: tuple[int, int] = (-DURATION_S, 0)  # when it runs, in seconds relative to the end
    changes: tuple[tuple[int, int, float, dict[float, float]], ...] = ()

    def _pieces(self, offset: int) -> list[tuple[float, float, dict[float, float]]]:
        """(seconds, requests per second, shares) of each stretch from the start up to offset."""
        low, high = self.active
        until = min(max(offset, low), high)
        cuts = sorted({low, until, *(t for c in self.changes for t in c[:2] if low < t < until)})
        pieces = []
        for begin, finish in itertools.pairwise(cuts):
            rate, under = self.per_second, self.under
            for c_low, c_high, c_rate, c_under in self.changes:
                if c_low <= begin and finish <= c_high:
                    rate, under = c_rate, c_under
            pieces.append((finish - begin, rate, under))
        return pieces

    def count(self, offset: int) -> float:
        """Requests counted up to offset seconds relative to the end (a counter from 0)."""
        return sum(seconds * rate for seconds, rate, _ in self._pieces(offset))

    def bucket(self, le: float, offset: int) -> float:
        """Requests at or under le counted up to offset (the `_bucket` counter)."""
        return sum(seconds * rate * _share(under, le) for seconds, rate, under in self._pieces(offset))

    def share(self, le: float) -> float:
        """Cumulative share of requests at or under le outside the changes."""
        return _share(self.under, le)


def _share(under: dict[float, float], le: float) -> float:
    """Cumulative share at or under le (1 above the largest listed bound)."""
    below = [share for bound, share in under.items() if bound <= le]
    return max(below) if below else 0.0


FAST = {0.005: 0.1, 0.01: 0.5, 0.025: 0.9, 0.05: 1.0}
SLOW = {0.05: 0.2, 0.1: 0.5, 0.25: 0.8, 0.5: 1.0}
# api.list_todos changes twice inside the last five minutes (the range PromQL answers are
# compared over), at the same total rate: from -240 to -180 s half its requests fail instead of
# a fifth, and from -150 to -90 s its successes are fast. A constant copied from one moment (its
# error share, its p95) is then wrong at others; the per-endpoint rates do not move.
LIST_CHANGES = ((-240, -180), (-150, -90))
TRAFFIC = (
    Traffic("GET", "api.list_todos", "200", 2.0, SLOW, 0.12,
            changes=((*LIST_CHANGES[0], 1.25, SLOW), (*LIST_CHANGES[1], 2.0, FAST))),
    Traffic("GET", "api.list_todos", "500", 0.5, FAST, 0.01, changes=((*LIST_CHANGES[0], 1.25, FAST),)),
    Traffic("GET", "todos.index", "200", 1.0, FAST, 0.012),
    Traffic("POST", "api.create_todo", "201", 0.5, FAST, 0.015),
    Traffic("POST", "todos.toggle", "200", 1.0, FAST, 0.01),
    Traffic("POST", "todos.toggle", "500", 1.0, FAST, 0.01, active=FAULT),
)


def requests_between(low: int, high: int, endpoint: str | None = None, status: str = "") -> float:
    """Requests TRAFFIC made from low to high seconds relative to the end (the truth)."""
    return sum(t.count(high) - t.count(low) for t in TRAFFIC
               if endpoint in (None, t.endpoint) and t.status.startswith(status))


# The process_* CPU counters (job, role, pid, CPU seconds per second) and the scrape targets
# that are up: the workshop's saturation and setup exercises query them.
PROCESSES = (
    ("web", "master", "100", 0.01),
    ("web", "worker", "101", 0.40),
    ("web", "worker", "102", 0.35),
    ("worker", "worker-main", "200", 0.05),
    ("worker", "pool-child", "201", 0.02),
)
TARGETS = ("web", "worker", "caddy", "prometheus")


def busiest_role() -> tuple[str, str]:
    """The (job, role) with the most CPU seconds in PROCESSES (the truth for the checks)."""
    totals: dict[tuple[str, str], float] = {}
    for job, role, _, per_second in PROCESSES:
        totals[(job, role)] = totals.get((job, role), 0.0) + per_second
    return max(totals, key=lambda key: totals[key])


def error_share(endpoint: str) -> float:
    """The share of endpoint's requests answered 5xx in TRAFFIC (the truth for the checks)."""
    mine = [t for t in TRAFFIC if t.endpoint == endpoint]
    return sum(t.per_second for t in mine if t.status.startswith("5")) / sum(t.per_second for t in mine)


def openmetrics(end: int) -> str:
    """TRAFFIC as OpenMetrics text, samples every SCRAPE_INTERVAL_S up to the unix time end."""
    metric = names.HTTP_REQUEST_DURATION
    lines = [f"# HELP {metric} Duration of HTTP requests.", f"# TYPE {metric} histogram"]
    for traffic in TRAFFIC:
        labels = (f'job="web",instance="127.0.0.1:1",method="{traffic.method}",'
                  f'endpoint="{traffic.endpoint}",status="{traffic.status}",'
                  f'environment="{ENVIRONMENT}"')
        for t in range(end - DURATION_S, end + 1, SCRAPE_INTERVAL_S):
            if t - end < traffic.active[0]:
                continue  # as a real counter, the series appears with its first increment
            count = traffic.count(t - end)
            for le in names.HTTP_BUCKETS:
                lines.append(f'{metric}_bucket{{{labels},le="{le:g}"}} '
                             f"{traffic.bucket(le, t - end):.6f} {t}")
            lines.append(f'{metric}_bucket{{{labels},le="+Inf"}} {count:.6f} {t}')
            lines.append(f"{metric}_count{{{labels}}} {count:.6f} {t}")
            lines.append(f"{metric}_sum{{{labels}}} {count * traffic.mean_s:.6f} {t}")
    lines += ["# HELP process_cpu_seconds Total user and system CPU time spent in seconds.",
              "# TYPE process_cpu_seconds counter"]
    for job, role, pid, per_second in PROCESSES:
        labels = f'job="{job}",instance="127.0.0.1:1",pid="{pid}",role="{role}"'
        for t in range(end - DURATION_S, end + 1, SCRAPE_INTERVAL_S):
            seconds = per_second * (t - end + DURATION_S)
            lines.append(f"process_cpu_seconds_total{{{labels}}} {seconds:.6f} {t}")
    lines += ["# HELP up Whether the last scrape of the target succeeded.", "# TYPE up gauge"]
    for job in TARGETS:
        for t in range(end - DURATION_S, end + 1, SCRAPE_INTERVAL_S):
            lines.append(f'up{{job="{job}",instance="127.0.0.1:1"}} 1 {t}')
    return "\n".join(lines) + "\n# EOF\n"


@dataclass(frozen=True)
class RecordedPrometheus:
    """A client of the running Prometheus and the moment the synthetic traffic ends."""

    client: prom.Prometheus
    end: datetime


@contextmanager
def synthetic_prometheus(workdir: Path) -> Iterator[RecordedPrometheus]:
    """Build the TSDB from TRAFFIC, start a real Prometheus on it, stop it (by pid) afterwards."""
    promtool, binary = shutil.which("promtool"), shutil.which("prometheus")
    if not (promtool and binary):
        raise FileNotFoundError("prometheus and promtool are needed (stack/install-system-deps.sh)")
    # An hour ago, on a minute boundary: inside the default retention, clear of the head block.
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    end = int(now.timestamp())
    source, data = workdir / "traffic.om", workdir / "tsdb"
    source.write_text(openmetrics(end), encoding="utf-8")
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
                   check=True, capture_output=True, timeout=120)
    config = workdir / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n", encoding="utf-8")
    port = free_port()
    proc = start("prometheus-synthetic", [
        binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
        {}, workdir)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{base}/-/ready"), 60, "the synthetic Prometheus")
        yield RecordedPrometheus(prom.Prometheus(base, scrape_interval_s=SCRAPE_INTERVAL_S),
                                 datetime.fromtimestamp(end, UTC))
    finally:
        proc.stop()
