"""A blind incident: one fault, drawn from a seed, that the learner must find and describe.

`lab incident --seed N --blind` switches the fault on and off without saying what it is and
records only the seed and the moment it started (VAR_DIR/incidents/blind-N.json): the fault
itself is derived again from the seed when the diagnosis is graded, so the record gives
nothing away. The learner answers with `lab incident answer --seed N --fault KIND --endpoint
NAME --start T --end T`, or from a notebook with `blind_incident.answer(...)`.

What is graded, and the tolerance on the window:

- the fault kind (error_rate, latency or slow_db);
- the endpoint it hit (slow_db hits every endpoint that reads the database: answer `*`);
- the window. A fault shows in Prometheus at the first scrape after it starts (up to one
  scrape interval later) and a rate over a window keeps counting it for one window after it
  stopped; a learner reading either edge off a `rate(...[1m])` chart is therefore late by up
  to a window plus a scrape, and early by up to the chart's resolution. Each edge is right
  within [-2 scrape intervals, +(rate window + 1 scrape interval)] of the truth: -10 s/+65 s
  with the lab's 5 s scrape and 1m windows. The logs give the edges to the second, well
  inside that.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analysis import prom
from app.environment import LOCAL

# Busy endpoints of the load (loadtests/), so a fault on one shows in the traffic.
TARGET_ENDPOINTS = ("todos.index", "todos.add", "api.list_todos", "api.create_todo", "todos.toggle")
BLIND_KINDS = ("error_rate", "latency", "slow_db")
# A fleet (`lab up --web 3`) adds one bad replica to the pool: errors or latency on one web
# replica (every endpoint it serves), or one replica crashed (SIGKILL) and restarted.
CRASH = "crash"
FLEET_KINDS = ("error_rate", "latency", CRASH)
ANSWER_KINDS = (*BLIND_KINDS, CRASH)
ALL_ENDPOINTS = "*"  # the answer for a fault that hits every endpoint (slow_db)
ALL_SYNONYMS = ("*", "all", "every", "any", "none")
MIN_DURATION_S = 10.0
RATE_WINDOW_S = 60.0  # the notebooks' and recording rules' rate window

WHAT_SHOWS = {
    "error_rate": "5xx answers on one endpoint: the error-rate chart by endpoint, status_code "
                  "in the access log (its ERROR access lines), spans with status ERROR",
    "latency": "one endpoint slower, still answering 200: its p95 by endpoint rises, its "
               "duration_ms in the log grows, and in its trace the server span itself is long "
               "with no slow child span",
    "slow_db": "every endpoint that reads the database slower at once: p95 rises on all of "
               "them, and in their traces the database span (a pg_sleep before each read) is "
               "the long one",
    CRASH: "a replica gone and back: `up` is 0 for one instance for a while, its log stops and "
           "starts again with new pids; Caddy routes around it, so users see little or nothing",
}
# In a fleet: what a fault on one replica shows, beside its kind's own signs.
ONE_REPLICA = ("one replica: the fleet's ratio or p95 moves a little, the same broken down "
               "`by (instance)` (or the access lines grouped by their `instance` field) shows one "
               "replica far from its peers, on every endpoint it serves")


@dataclass(frozen=True)
class Incident:
    """The fault a seed draws: kind, endpoint (None for slow_db), value, and when, in seconds."""

    seed: int
    duration: float
    kind: str
    endpoint: str | None
    value: float | list[float]
    on_s: float
    off_s: float
    # The web replica (1-based) a fleet's incident hits; None: the whole service.
    replica: int | None = None

    def faults(self, instance: str | None = None) -> dict[str, float | list[float]]:
        """The switchboard assignment that makes this fault (app.faults names); instance: the
        replica's Prometheus instance, for a fault on one replica. A crash switches nothing."""
        if self.kind == CRASH:
            return {}
        name = f"{self.kind}.{self.endpoint}" if self.endpoint else self.kind
        return {f"{name}@{instance}" if self.replica and instance else name: self.value}


def plan(seed: int, duration: float = 300.0, web_replicas: int = 1) -> Incident:
    """The incident of a seed: the same seed, duration and fleet always give the same fault.
    With one web replica the draw is the same as it always was (the facilitator's keys hold);
    with more, half the seeds draw one bad replica instead (a draw of its own)."""
    if duration < MIN_DURATION_S:
        raise ValueError(f"a blind incident lasts at least {MIN_DURATION_S:g}s")
    if web_replicas > 1:
        fleet = random.Random(f"blind-fleet-{seed}")
        if fleet.random() < 0.5:
            return _replica_incident(seed, duration, web_replicas, fleet)
    rng = random.Random(f"blind-incident-{seed}")
    kind = rng.choice(BLIND_KINDS)
    endpoint: str | None = rng.choice(TARGET_ENDPOINTS)
    value: float | list[float]
    if kind == "error_rate":
        value = round(rng.uniform(0.2, 0.5), 2)
    elif kind == "latency":
        low = round(rng.uniform(0.3, 0.5), 2)  # above the 0.25 s objective: it is missed
        value = [low, round(low + rng.uniform(0.1, 0.3), 2)]
    else:
        endpoint, value = None, round(rng.uniform(0.2, 0.4), 2)
    on = rng.uniform(0.15, 0.35) * duration
    length = rng.uniform(0.3, 0.45) * duration
    return Incident(seed, duration, kind, endpoint, value, round(on, 1), round(on + length, 1))


def _replica_incident(seed: int, duration: float, web_replicas: int, rng: random.Random) -> Incident:
    """One bad web replica: errors or latency on all it serves, or a crash and restart."""
    kind = rng.choice(FLEET_KINDS)
    replica = rng.randint(1, web_replicas)
    value: float | list[float]
    if kind == "error_rate":
        value = round(rng.uniform(0.3, 0.6), 2)
    elif kind == "latency":
        low = round(rng.uniform(0.3, 0.5), 2)
        value = [low, round(low + rng.uniform(0.1, 0.3), 2)]
    else:
        value = 1.0
    on = rng.uniform(0.15, 0.35) * duration
    length = rng.uniform(0.3, 0.45) * duration
    return Incident(seed, duration, kind, None, value, round(on, 1), round(on + length, 1), replica)


# --- the record of a run --------------------------------------------------------------------

def record_path(var_dir: Path, seed: int) -> Path:
    """VAR_DIR/incidents/blind-<seed>.json."""
    return var_dir / "incidents" / f"blind-{seed}.json"


@dataclass(frozen=True)
class Run:
    """A blind incident that was run: its seed, duration and start (no hint of the fault)."""

    seed: int
    duration: float
    started: datetime
    # The size of the fleet it ran on (which replica the fault hit follows from the seed, and
    # is written nowhere a learner can read).
    web_replicas: int = 1

    def save(self, var_dir: Path) -> Path:
        """Write the record (atomically)."""
        path = record_path(var_dir, self.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**asdict(self), "started": prom.require_aware(self.started).isoformat()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, var_dir: Path, seed: int) -> Run:
        """The record of seed's last run; a clear message when it was never run here."""
        path = record_path(var_dir, seed)
        if not path.is_file():
            raise FileNotFoundError(f"no blind incident with seed {seed} was run in this lab "
                                    f"({path} is missing): `lab incident --seed {seed} --blind`")
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(int(data["seed"]), float(data["duration"]), datetime.fromisoformat(data["started"]),
                   int(data.get("web_replicas", 1)))

    @property
    def incident(self) -> Incident:
        """The fault this run switched."""
        return plan(self.seed, self.duration, self.web_replicas)

    @property
    def fault_on(self) -> datetime:
        """When the fault went on."""
        return self.started + timedelta(seconds=self.incident.on_s)

    @property
    def fault_off(self) -> datetime:
        """When the fault went off."""
        return self.started + timedelta(seconds=self.incident.off_s)


def parse_time(text: str, started: datetime) -> datetime:
    """'+95' (seconds after the start), 'HH:MM[:SS]' (UTC, the incident's day) or ISO 8601."""
    text = text.strip()
    if re.fullmatch(r"\+\d+(\.\d+)?", text):
        return started + timedelta(seconds=float(text[1:]))
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text)
    if clock:
        day = started.astimezone(UTC)
        moment = day.replace(hour=int(clock[1]), minute=int(clock[2]), second=int(clock[3] or 0),
                             microsecond=0)
        return moment
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use +SECONDS after the start, HH:MM[:SS] "
                         "(UTC) or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- grading --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """One graded part of a diagnosis and what to learn from it."""

    name: str
    right: bool
    explanation: str


@dataclass(frozen=True)
class Grade:
    """A graded diagnosis."""

    seed: int
    parts: tuple[Part, ...]

    @property
    def right(self) -> bool:
        """True when every part is right."""
        return all(p.right for p in self.parts)

    @property
    def score(self) -> str:
        """'3 of 4'."""
        return f"{sum(p.right for p in self.parts)} of {len(self.parts)}"

    def __str__(self) -> str:
        lines = [f"blind incident {self.seed}: {self.score} right"]
        lines += [f"  {'✔' if p.right else '✘'} {p.name}: {p.explanation}" for p in self.parts]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        rows = "\n".join(f"- {'✔' if p.right else '✘'} **{p.name}**: {p.explanation}" for p in self.parts)
        return f"**Blind incident {self.seed}: {self.score} right**\n\n{rows}"

    def as_dict(self) -> dict[str, Any]:
        """For `--json` and files a facilitator collects."""
        return {"seed": self.seed, "right": self.right, "score": self.score,
                "parts": [asdict(p) for p in self.parts]}


@dataclass(frozen=True)
class WindowTolerance:
    """How early and how late an edge of the window may be, from scrape interval and rate window."""

    early_s: float
    late_s: float

    @classmethod
    def for_lab(cls, scrape_interval_s: float = prom.DEFAULT_SCRAPE_INTERVAL_S,
                rate_window_s: float = RATE_WINDOW_S) -> WindowTolerance:
        """[-2 scrapes, +(window + 1 scrape)] (see the module docstring)."""
        return cls(2 * scrape_interval_s, rate_window_s + scrape_interval_s)

    def describe(self) -> str:
        """'-10 s/+65 s'."""
        return f"-{self.early_s:g} s/+{self.late_s:g} s"


def _edge(name: str, given: datetime, truth: datetime, tolerance: WindowTolerance, reveal: bool) -> Part:
    """One edge of the window, with why it is off when it is (the true time only when revealed)."""
    off = (given - truth).total_seconds()
    right = -tolerance.early_s <= off <= tolerance.late_s
    said = f"you said {given:%H:%M:%S} UTC (accepted {tolerance.describe()} around the true {name})"
    if reveal:
        said += f"; it was {truth:%H:%M:%S} UTC ({off:+.0f} s)"
    if right:
        return Part(name, True, said)
    if off > 0:
        why = (" Too late: a `rate(...[1m])` chart keeps showing the fault for a minute after "
               "it stopped and shows its start only gradually; read the edges from the access "
               "log's timestamps (the first and last affected request) or from a shorter window."
               if name == "end" else
               " Too late: the fault was already in force. The first affected request in the log "
               "(or the first scrape where the endpoint's counter jumps) marks the start.")
    elif name == "end":
        why = (" Too early: the fault was still in force then. Look for the last affected request "
               "in the log, not the moment the chart began to fall: a rate over a window falls "
               "while the fault still acts.")
    else:
        why = (" Too early: nothing was wrong yet then. Was that a neighbouring endpoint or "
               "ordinary noise? Compare with the minutes before.")
    return Part(name, False, said + "." + why)


def grade(run: Run, fault: str, endpoint: str, start: datetime, end: datetime,
          tolerance: WindowTolerance | None = None, reveal: bool = False,
          instance: str = "", fleet: Sequence[str] = ()) -> Grade:
    """Grade a diagnosis of run's incident: kind, endpoint, each edge of the window, and on a
    fleet the replica (instance: its Prometheus instance, or "*"/"all" for every replica;
    fleet: the web replicas' instances, the first replica first).

    A wrong part says what to look at and how to tell, never the answer itself, so that the
    learner can investigate again; reveal (asked for by the learner) adds the truth.
    """
    truth = run.incident
    tolerance = tolerance or WindowTolerance.for_lab()
    kind = fault.strip().lower()
    if kind == truth.kind:
        kind_part = Part("fault kind", True, f"{truth.kind}.")
    else:
        tell = "; ".join(f"{name}: {shows}" for name, shows in WHAT_SHOWS.items() if name != kind)
        kind_part = Part("fault kind", False, (
            f"not {kind}. Check the symptom against what each kind shows ({kind}: "
            f"{WHAT_SHOWS.get(kind, 'not a kind the incident draws')}) and against the others: {tell}."
            + (f" It was {truth.kind}." if reveal else "")))
    parts = [kind_part]
    named = endpoint.strip()
    if truth.endpoint is None and truth.replica:
        right = named.lower() in ALL_SYNONYMS
        parts.append(Part("endpoint", right, "every endpoint (of one replica)." if right else (
            f"not {named} alone: compare the endpoints `by (endpoint)`; when they all show it "
            "together the cause is something they share." + (" It was every endpoint." if reveal else ""))))
    elif truth.endpoint is None:
        right = named.lower() in ALL_SYNONYMS
        parts.append(Part("endpoint", right, "every endpoint that reads the database." if right else (
            f"not {named} alone: compare the p95 of several endpoints with their own minutes "
            "before; when several rise together the cause is something they share."
            + (" It was every endpoint that reads the database." if reveal else ""))))
    else:
        right = named == truth.endpoint
        parts.append(Part("endpoint", right, f"{truth.endpoint}." if right else (
            f"not {named}: break the symptom down `by (endpoint)` (or group the access log by "
            "endpoint) and compare each with the minutes before the incident."
            + (f" It was {truth.endpoint}." if reveal else ""))))
    parts.append(_edge("start", start, run.fault_on, tolerance, reveal))
    parts.append(_edge("end", end, run.fault_off, tolerance, reveal))
    if run.web_replicas > 1:
        replica = run.incident.replica
        hit = fleet[replica - 1] if replica and len(fleet) >= replica else None
        if replica and hit is None:
            raise ValueError(f"the fleet's web instances are needed to grade replica {replica}")
        parts.append(_instance_part(hit, instance.strip(), reveal))
    return Grade(run.seed, tuple(parts))


def web_instances(ports: Mapping[str, int], replicas: int) -> list[str]:
    """The local fleet's web replicas as Prometheus names them (the launcher's port rule)."""
    return [f"{LOCAL}:{ports['WEB_PORT'] + i}" for i in range(replicas)]


def _instance_part(truth: str | None, named: str, reveal: bool) -> Part:
    """On a fleet: which replica (or every one) the fault hit (truth None: every one)."""
    if truth is None:
        right = named.lower() in ALL_SYNONYMS
        return Part("instance", right, "every replica alike." if right else (
            f"not {named or 'one replica'} alone: compare the symptom `by (instance)`; when every "
            "replica shows it alike the cause is not one replica."
            + (" It was every replica." if reveal else "")))
    right = named == truth
    return Part("instance", right, f"{truth}." if right else (
        f"not {named or 'every replica'}: break the symptom down `by (instance)` (`up` for a "
        "replica that went away) and compare each replica with its peers."
        + (f" It was {truth}." if reveal else "")))


def to_room(stage: str, seed: int, graded: Grade | None = None, **diagnosis: str) -> None:
    """Tell the joined room (if any) where the learner is: "started", "over" or "answered"
    (with the graded diagnosis). Queued in the background; never raises."""
    try:
        from room import client

        status = "unanswered" if graded is None else "right" if graded.right else "wrong"
        detail: dict[str, Any] = {"stage": stage, "seed": seed, **diagnosis}
        if graded is not None:
            detail["score"] = graded.score
        client.push("incident", status, module="07-incident", source="incident", detail=detail)
    except Exception:  # the room must never break the incident
        return


def answer(seed: int, fault: str, endpoint: str, start: str, end: str,
           var_dir: Path | None = None, scrape_interval_s: float | None = None,
           reveal: bool = False, instance: str = "") -> Grade:
    """Grade a diagnosis from a notebook: the same as `lab incident answer` (reveal=True: and
    say the answer)."""
    from analysis.lab_context import LabContext

    context = LabContext.from_env()
    run = Run.load(var_dir or context.var_dir, seed)
    tolerance = WindowTolerance.for_lab(scrape_interval_s or context.scrape_interval_s)
    graded = grade(run, fault, endpoint, parse_time(start, run.started), parse_time(end, run.started),
                   tolerance, reveal, instance,
                   web_instances(context.environment.ports, run.web_replicas))
    to_room("answered", seed, graded, fault=fault, endpoint=endpoint, start=start, end=end)
    return graded
