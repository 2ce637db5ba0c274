"""A real Prometheus serving known, synthetic traffic: written as OpenMetrics, turned into a
TSDB block by `promtool tsdb create-blocks-from openmetrics`, and queried over HTTP.

The traffic is steady and known, so a PromQL answer can be checked against arithmetic: for
each (method, endpoint, status) a constant rate of requests per second and a fixed share of
them in each latency bucket, scraped every SCRAPE_INTERVAL_S for DURATION_S up to `end`.
One series is a fault: todos.toggle answers 500 only from FAULT[0] to FAULT[1] seconds
relative to `end` (its 200s go on all along).

A second, separate Prometheus serves a fleet (fleet_openmetrics: the exercises of
notebooks/08-fleet.ipynb): FLEET_WEB web replicas, one answering errors for a while, one killed
and restarted (its counters start again from 0), and FLEET_WORKERS workers, one slow; with the
lab's fleet recording rules (stack/prometheus/rules/todo-fleet.yml) evaluated on it every scrape
interval, as Prometheus would have recorded them.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from analysis import prom
from app.layout import PROJECT_ROOT
from app.observability import names
from tests.support.processes import Proc, free_port, http_ok, start, wait_until

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


# --- a fleet (the exercises of notebooks/08-fleet.ipynb) ------------------------------------
# Four web replicas and two workers: the lab's fleet run has three and two, so an answer that
# writes the fleet's size in is wrong here. Times in seconds relative to the end, each window
# inside the last five minutes the PromQL answers are compared over and holding some of its
# moments (every 25 s from -300 s): an answer right outside a window only is refused.
FLEET_WEB = tuple(f"127.0.0.1:{port}" for port in (5001, 5002, 5003, 5004))
FLEET_WORKERS = ("127.0.0.1:6001", "127.0.0.1:6002")
FLEET_BAD = (FLEET_WEB[2], 0.3, -240, -150)  # this replica answers 30% of its requests with 500
# Killed (no scrape answers: up 0), then restarted between two scrapes: its counters start again
# from 0, and the others serve its share meanwhile.
FLEET_CRASH = (FLEET_WEB[1], -142.5, -117.5)
FLEET_SLOW = (FLEET_WORKERS[1], -270, -120)  # this worker takes a third of the jobs, not half
FLEET_ENDPOINTS = (("api.list_todos", 1.5), ("todos.index", 0.5))  # requests/s of each replica
FLEET_EXPORTS_S = 0.15  # exports each web replica enqueues per second
FLEET_RULES = PROJECT_ROOT / "stack" / "prometheus" / "rules" / "todo-fleet.yml"
_STEP_S = 2.5  # every change above falls on this grid: integrating in its steps is exact


def _crashed(instance: str, t: float) -> bool:
    """True while the replica is dead."""
    who, killed, restarted = FLEET_CRASH
    return instance == who and killed < t < restarted


def _share_of_web(instance: str, t: float) -> float:
    """How much of one replica's share of the traffic this replica serves at t: the others take
    the dead one's share."""
    if _crashed(instance, t):
        return 0.0
    alive = sum(not _crashed(other, t) for other in FLEET_WEB)
    return len(FLEET_WEB) / alive


def _web_rate(instance: str, endpoint_rate: float, status: str, t: float) -> float:
    """Requests per second of one (replica, endpoint, status) at t."""
    who, share, low, high = FLEET_BAD
    failing = share if instance == who and low < t < high else 0.0
    part = failing if status == "500" else 1 - failing
    return endpoint_rate * _share_of_web(instance, t) * part


def _worker_rate(instance: str, t: float) -> float:
    """Jobs per second one worker takes at t (the exports the web replicas enqueue)."""
    total = FLEET_EXPORTS_S * len(FLEET_WEB)
    slow, low, high = FLEET_SLOW
    if low < t < high:
        return total * (1 / 3 if instance == slow else 2 / 3)
    return total / len(FLEET_WORKERS)


def _counter(rate: Callable[[float], float], instance: str, end: int,
             at_zero: bool = False) -> list[tuple[int, float | None]]:
    """(sample time, counter value) every scrape interval of the fleet's traffic: None while the
    replica is dead (no scrape), from 0 again after its restart; the samples before the first
    increment left out (a series appears with its first increment), unless at_zero (a series
    the process creates at 0 when it starts)."""
    who, _, restarted = FLEET_CRASH
    samples: list[tuple[int, float | None]] = []
    value, t = 0.0, float(-DURATION_S)
    for at in range(-DURATION_S, 1, SCRAPE_INTERVAL_S):
        while t < at:
            if instance == who and t == restarted:
                value = 0.0
            value += rate(t + _STEP_S / 2) * _STEP_S
            t += _STEP_S
        samples.append((end + at, None if _crashed(instance, at) else value))
    born = 0 if at_zero else next((i for i, (_, v) in enumerate(samples) if v), len(samples))
    return samples[born:]


def fleet_openmetrics(end: int) -> str:
    """The fleet's raw series (requests, background jobs, up) as OpenMetrics, up to unix time end."""
    lines: list[str] = []

    def family(name: str, kind: str, series: list[tuple[str, list[tuple[int, float | None]]]]) -> None:
        lines.append(f"# TYPE {name} {kind}")
        for labels, samples in series:
            lines.extend(f"{name}{{{labels}}} {v:.6f} {t}" for t, v in samples if v is not None)

    web = f'job="web",environment="{ENVIRONMENT}"'
    worker = f'job="worker",environment="{ENVIRONMENT}"'
    requests = [(f'{web},instance="{i}",method="GET",endpoint="{e}",status="{s}"',
                 _counter(lambda t, i=i, r=r, s=s: _web_rate(i, r, s, t), i, end))
                for i in FLEET_WEB for e, r in FLEET_ENDPOINTS for s in ("200", "500")]
    family(f"{names.HTTP_REQUEST_DURATION}_count", "unknown", requests)
    jobs = [(f'{web},instance="{i}",job_type="export",status="enqueued"',
             _counter(lambda t, i=i: FLEET_EXPORTS_S * _share_of_web(i, t), i, end)) for i in FLEET_WEB]
    for i in FLEET_WORKERS:
        for status in ("started", "succeeded", "failed", "retried"):
            # A worker creates its series at 0 when it starts: they exist before any job.
            done = ((lambda t, i=i: _worker_rate(i, t)) if status in ("started", "succeeded")
                    else (lambda t: 0.0))
            jobs.append((f'{worker},instance="{i}",job_type="export",status="{status}"',
                         _counter(done, i, end, at_zero=True)))
    family("background_jobs_total", "unknown", jobs)
    ups = [(f'{web},instance="{i}"',
            [(end + at, 0.0 if _crashed(i, at) else 1.0) for at in range(-DURATION_S, 1, SCRAPE_INTERVAL_S)])
           for i in FLEET_WEB]
    ups += [(f'{worker},instance="{i}"',
             [(end + at, 1.0) for at in range(-DURATION_S, 1, SCRAPE_INTERVAL_S)]) for i in FLEET_WORKERS]
    family("up", "gauge", ups)
    return "\n".join(lines) + "\n# EOF\n"


def recorded_rules(client: prom.Prometheus, end: int, rules: Path = FLEET_RULES) -> str:
    """The recording rules of a rule file evaluated every scrape interval over the traffic, as
    OpenMetrics: what Prometheus would have recorded. A rule that reads an earlier one of the
    file gets that one's expression inlined (the earlier one is not in the TSDB yet)."""
    start, stop = datetime.fromtimestamp(end - DURATION_S, UTC), datetime.fromtimestamp(end, UTC)
    exprs: dict[str, str] = {}
    lines: list[str] = []
    for group in yaml.safe_load(rules.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            if "record" not in rule:
                continue
            expr = " ".join(rule["expr"].split())
            for name, earlier in exprs.items():
                expr = re.sub(rf"(?<![\w:]){re.escape(name)}(?![\w:])", f"({earlier})", expr)
            exprs[rule["record"]] = expr
            frame = client.range(expr, start, stop, step_s=SCRAPE_INTERVAL_S)
            lines.append(f"# TYPE {rule['record']} gauge")
            labels = [c for c in frame.columns if c not in ("timestamp", "value")]
            for row in frame.itertuples(index=False):
                where = ",".join(f'{k}="{getattr(row, k)}"' for k in labels)
                lines.append(f"{rule['record']}{{{where}}} {row.value!r} {int(row.timestamp.timestamp())}")
    return "\n".join(lines) + "\n# EOF\n"


@dataclass(frozen=True)
class RecordedPrometheus:
    """A client of the running Prometheus and the moment the synthetic traffic ends."""

    client: prom.Prometheus
    end: datetime


def _serve(binary: str, config: Path, data: Path, workdir: Path, name: str) -> tuple[Proc, str]:
    """A Prometheus on data, ready; (its process, its base URL)."""
    port = free_port()
    proc = start(name, [
        binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
        {}, workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{base}/-/ready"), 60, "the synthetic Prometheus")
    except BaseException:
        proc.stop()
        raise
    return proc, base


@contextmanager
def synthetic_prometheus(workdir: Path, traffic: Callable[[int], str] = openmetrics,
                         rules: Path | None = None) -> Iterator[RecordedPrometheus]:
    """Build the TSDB from the traffic (TRAFFIC by default), start a real Prometheus on it, stop
    it (by pid) afterwards. With rules, their recording rules are evaluated over the traffic and
    added to the TSDB before the Prometheus the caller gets starts."""
    promtool, binary = shutil.which("promtool"), shutil.which("prometheus")
    if not (promtool and binary):
        raise FileNotFoundError("prometheus and promtool are needed (stack/install-system-deps.sh)")
    # An hour ago, on a minute boundary: inside the default retention, clear of the head block.
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    end = int(now.timestamp())
    source, data = workdir / "traffic.om", workdir / "tsdb"
    source.write_text(traffic(end), encoding="utf-8")
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
                   check=True, capture_output=True, timeout=120)
    config = workdir / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n", encoding="utf-8")
    name = "prometheus-synthetic"
    if rules is not None:
        proc, base = _serve(binary, config, data, workdir, name)
        try:
            recorded = recorded_rules(prom.Prometheus(base, scrape_interval_s=SCRAPE_INTERVAL_S), end, rules)
        finally:
            proc.stop()
        (workdir / "rules.om").write_text(recorded, encoding="utf-8")
        subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(workdir / "rules.om"),
                        str(data)], check=True, capture_output=True, timeout=120)
    proc, base = _serve(binary, config, data, workdir, name)
    try:
        yield RecordedPrometheus(prom.Prometheus(base, scrape_interval_s=SCRAPE_INTERVAL_S),
                                 datetime.fromtimestamp(end, UTC))
    finally:
        proc.stop()
