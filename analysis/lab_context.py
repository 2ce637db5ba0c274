"""Where the running lab is, found from the environment, and the record of its last load run.

The notebooks call ``LabContext.from_env()`` and never hard-code an address: it resolves the
lab's environment as every program of the lab does (``app.environment.LabEnvironment``, whose
docstring lists the variables: PROMETHEUS_URL, JAEGER_URL, LAB_VAR_DIR or VAR_DIR, LAB_APP_URL,
LAB_REPORTS_DIR, LAB_SCRAPE_INTERVAL_S, ...). `lab notebook` sets them for its kernels.

A load run started by ``lab load`` or ``lab demo`` is recorded in ``last-run.json``: its
edges (moments with a full scrape on each side and no traffic in between, so counter
differences are exact), Locust's report files and the faults switched on during it.

Live windows: ``lab.window(minutes=10)`` is the last ten minutes of whatever traffic there
was (a learner's clicks, the Locust UI, `lab load`), not only the recorded run; with
``fallback="run"`` it is the last recorded run instead when those minutes had no request.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from analysis import logs, prom, traces
from app.environment import LabEnvironment
from app.layout import Layout
from app.observability import names

LAST_RUN = "last-run.json"


@dataclass(frozen=True)
class FaultWindow:
    """A fault that was in force from `on` to `off` (timezone-aware UTC)."""

    name: str
    value: float
    on: datetime
    off: datetime

    @property
    def endpoint(self) -> str | None:
        """The Flask endpoint the fault aimed at (error_rate.api.list_todos -> api.list_todos)."""
        _, _, endpoint = self.name.partition("@")[0].partition(".")
        return endpoint or None

    @property
    def instance(self) -> str | None:
        """The one replica the fault acted on (error_rate@127.0.0.1:5002 -> 127.0.0.1:5002),
        None for the whole service."""
        _, _, instance = self.name.partition("@")
        return instance or None


@dataclass(frozen=True)
class RunRecord:
    """One recorded load run: its edges, Locust's reports and the faults injected during it."""

    start: datetime
    end: datetime
    host: str
    shape: str
    users: int
    duration: float
    stats_csv: Path
    stats_json: Path
    html: Path
    faults: list[FaultWindow] = field(default_factory=list)

    def to_json(self) -> str:
        """The record as JSON (times ISO 8601 with offset, paths as strings)."""
        data = asdict(self)
        return json.dumps(data, default=_encode, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """The inverse of to_json."""
        data = json.loads(text)
        return cls(
            start=datetime.fromisoformat(data["start"]), end=datetime.fromisoformat(data["end"]),
            host=str(data["host"]), shape=str(data["shape"]), users=int(data["users"]),
            duration=float(data["duration"]), stats_csv=Path(data["stats_csv"]),
            stats_json=Path(data["stats_json"]), html=Path(data["html"]),
            faults=[FaultWindow(f["name"], float(f["value"]), datetime.fromisoformat(f["on"]),
                                datetime.fromisoformat(f["off"])) for f in data["faults"]],
        )


# The one command that records the run every module needs: the workshop's faults (error windows
# on the two list pages, then latency on one), as `lab demo` injects them (lab/loadrun.py).
WORKSHOP_RUN = "lab load --faults workshop"


def lacks(faults: Sequence[FaultWindow], kind: str, what: str) -> bool:
    """True, after one line that says what is missing and the command that records it, when no
    fault of kind (error_rate, latency, ...) is among the run's faults; False otherwise.

    A notebook asks before it draws what a fault shows: a run without one (a plain `lab load`)
    then gets a sentence and a command, never a flat chart under text about a spike.
    """
    if any(f.name.partition("@")[0].split(".")[0] == kind for f in faults):
        return False
    print(f"This run has no {kind} fault, so {what} would show nothing here. Record a run that "
          f"has one with `{WORKSHOP_RUN}` (5 minutes), then run this notebook again.")
    return True


def _encode(value: Any) -> str:
    if isinstance(value, datetime):
        return prom.require_aware(value).isoformat()
    return str(value)


def write_run(reports_dir: Path, record: RunRecord) -> Path:
    """Save record as reports_dir/last-run.json (atomically: a notebook never reads half)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / LAST_RUN
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(record.to_json(), encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class Window:
    """A stretch of time the notebooks look at: live minutes, or a recorded run."""

    start: datetime
    end: datetime
    source: str  # "live" (the last N minutes) or "run" (the last recorded load run)
    requests: float  # requests Prometheus counted in it (increase, so restarts are handled)
    faults: list[FaultWindow] = field(default_factory=list)  # recorded faults overlapping it

    @property
    def seconds(self) -> float:
        """Its length in seconds."""
        return (self.end - self.start).total_seconds()

    def __str__(self) -> str:
        """One line a learner reads above the charts."""
        what = "the last recorded load run" if self.source == "run" else \
            f"the last {self.seconds / 60:g} minutes"
        return (f"{what}: {self.start:%H:%M:%S} to {self.end:%H:%M:%S} UTC, "
                f"{self.requests:.0f} requests")


def requests_between(prometheus: prom.Prometheus, start: datetime, end: datetime) -> float:
    """Requests the app counted between start and end (0 when none, or no series yet)."""
    seconds = max(1, round((end - start).total_seconds()))
    value = prometheus.scalar(f"sum(increase({names.HTTP_REQUEST_DURATION}_count[{seconds}s]))", end)
    return 0.0 if math.isnan(value) else value


@dataclass(frozen=True)
class LabContext:
    """Addresses and paths of the running lab: its LabEnvironment (app/environment.py), as a
    notebook reads it."""

    environment: LabEnvironment

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LabContext:
        """Resolve the lab's environment (os.environ by default)."""
        return cls(LabEnvironment.from_env(env))

    @property
    def prometheus_url(self) -> str:
        """Prometheus's base URL."""
        return self.environment.prometheus_url

    @property
    def jaeger_url(self) -> str | None:
        """Jaeger's query API, or None (traces from the local span file)."""
        return self.environment.jaeger_url

    @property
    def var_dir(self) -> Path:
        """The lab's VAR_DIR, absolute."""
        return self.environment.var_dir

    @property
    def app_url(self) -> str:
        """The app through Caddy."""
        return self.environment.app_url

    @property
    def reports_dir(self) -> Path:
        """Locust's reports and last-run.json."""
        return self.environment.reports_dir

    @property
    def scrape_interval_s(self) -> float:
        """Prometheus's scrape interval, in seconds."""
        return self.environment.scrape_interval_s

    @property
    def web_log(self) -> Path:
        """The web processes' JSON log."""
        return Layout(self.var_dir).log("web")

    @property
    def worker_log(self) -> Path:
        """The Celery worker's JSON log."""
        return Layout(self.var_dir).log("worker")

    def replica_logs(self, family: str) -> list[Path]:
        """The JSON logs of every replica of family ("web": web.jsonl, web-2.jsonl, ...): a
        fleet (`lab up --web 3`) writes one file per replica, each line naming its `instance`."""
        first = Layout(self.var_dir).log(family)
        others = sorted(first.parent.glob(f"{family}-[0-9]*{first.suffix}"),
                        key=lambda p: int(p.stem.rpartition("-")[2]))
        return [p for p in (first, *others) if p.is_file()]

    @property
    def span_file(self) -> Path:
        """The local span file (written when no OTLP endpoint is configured)."""
        return Layout(self.var_dir).span_file

    def prometheus(self) -> prom.Prometheus:
        """A client for the lab's Prometheus."""
        return prom.Prometheus(self.prometheus_url, scrape_interval_s=self.scrape_interval_s)

    def last_run(self) -> RunRecord:
        """The last recorded load run; a clear message when there is none yet."""
        path = self.reports_dir / LAST_RUN
        if not path.is_file():
            raise FileNotFoundError(
                f"no load run recorded in {path}: run `lab load` (or `lab demo`) first")
        return RunRecord.from_json(path.read_text(encoding="utf-8"))

    def window(self, minutes: float = 10.0, end: datetime | None = None,
               fallback: str | None = None) -> Window:
        """The last `minutes` before end (now), with the requests counted in them.

        fallback="run": when those minutes hold no request, the last recorded load run instead
        (what a headless run wants when nobody clicked around). Recorded fault windows that
        overlap the window come along, so charts can shade them.
        """
        if fallback not in (None, "run"):
            raise ValueError(f"fallback must be None or 'run', not {fallback!r}")
        if minutes <= 0:
            raise ValueError("minutes must be positive")
        prometheus = self.prometheus()
        stop = prom.require_aware(end, "end") if end else datetime.now(UTC)
        start = stop - timedelta(minutes=minutes)
        counted = requests_between(prometheus, start, stop)
        recorded = self._recorded_run()
        if counted == 0 and fallback == "run":
            if recorded is None:
                raise FileNotFoundError(
                    f"no request in the last {minutes:g} minutes and no recorded run: click "
                    "around the app, start Locust, or run `lab load`")
            return Window(recorded.start, recorded.end, "run",
                          requests_between(prometheus, recorded.start, recorded.end),
                          list(recorded.faults))
        faults = [f for f in (recorded.faults if recorded else []) if f.on < stop and f.off > start]
        return Window(start, stop, "live", counted, faults)

    def study(self, minutes: float | None = None, end: datetime | None = None) -> Window:
        """What a notebook looks at: the last recorded run (minutes None, as headless runs do),
        or the last `minutes` before end (now) of whatever traffic there was (falling back to
        the run when they were idle)."""
        if minutes:
            return self.window(minutes, end, fallback="run")
        recorded = self.last_run()
        return Window(recorded.start, recorded.end, "run",
                      requests_between(self.prometheus(), recorded.start, recorded.end),
                      list(recorded.faults))

    def _recorded_run(self) -> RunRecord | None:
        """The last recorded run, or None when there is none."""
        try:
            return self.last_run()
        except FileNotFoundError:
            return None

    def load_logs(self) -> logs.LogLoad:
        """The web and worker logs (every replica's, the files that exist) as one frame."""
        paths = [*self.replica_logs("web"), *self.replica_logs("worker")]
        if not paths:
            where = Layout(self.var_dir).log_dir
            raise FileNotFoundError(f"no log files under {where}: is LAB_VAR_DIR right?")
        return logs.load_logs(*paths)

    def trace(self, trace_id: str, wait_s: float = 20.0,
              services: tuple[str, ...] = ()) -> list[traces.Span]:
        """The spans of one trace, from Jaeger or the span file, waiting for them to be flushed.

        Spans are exported in batches (every few seconds), so a trace of a request made just
        now can take a moment to appear; the wait stops as soon as its root span (and a span
        of each of `services`) is there.
        """
        deadline = time.monotonic() + wait_s
        while True:
            spans = self._fetch_trace(trace_id)
            complete = any(s.parent_id is None for s in spans) and \
                set(services) <= {s.service for s in spans}
            if complete or time.monotonic() >= deadline:
                return spans
            time.sleep(0.5)

    def _fetch_trace(self, trace_id: str) -> list[traces.Span]:
        """One attempt at reading a trace."""
        if self.jaeger_url:
            try:
                return traces.fetch_jaeger_trace(self.jaeger_url, trace_id)
            except (requests.RequestException, LookupError):
                # Jaeger answers 404 until the batch holding the trace is exported: wait.
                return []
        if not self.span_file.is_file():
            return []
        return traces.read_span_file(self.span_file, trace_id).spans


def wait_for_scrape(prometheus: prom.Prometheus, after: float, job: str = "web",
                    timeout_s: float = 60.0) -> None:
    """Block until Prometheus holds a scrape of every target of job taken after the unix time
    `after`. Every one: the replicas of a fleet are scraped at different moments, and a replica
    whose last scrape is older than `after` would miss its latest requests at the edge."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = prometheus.instant(f'timestamp(up{{job="{job}"}})')
        if len(frame) and float(frame["value"].min()) > after:
            return
        time.sleep(0.25)
    raise TimeoutError(f"Prometheus took no scrape of {job} within {timeout_s:g}s")


def quiet_edge(prometheus: prom.Prometheus, jobs: tuple[str, ...] = ("web",)) -> datetime:
    """A run edge: a moment with a scrape on each side and (the caller's promise) no traffic.

    Counter values pinned at this moment then hold every request before it and none after.
    """
    before = time.time()
    for job in jobs:
        wait_for_scrape(prometheus, before, job)
    edge = time.time()
    for job in jobs:
        wait_for_scrape(prometheus, edge, job)
    return datetime.fromtimestamp(edge, UTC)
