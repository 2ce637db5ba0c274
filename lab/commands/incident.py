"""`lab incident --seed N [--blind]`: replay a reproducible incident by switching faults over time.

Without --blind the schedule (several episodes) is printed as it is applied. With --blind one
fault drawn from the seed (curriculum.blind_incident) runs without a word about what it is;
`lab incident answer --seed N --fault KIND --endpoint NAME --start T --end T` grades the
learner's diagnosis afterwards (or while it runs).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import UTC, datetime

from curriculum import blind_incident
from lab.errors import LabError
from lab.incident import Step, schedule
from stack import launch, topology
from stack.config import LabConfig
from stack.heartbeat import heartbeat
from stack.switchboard import FaultSwitch
from stack.topology import Service


def configure(parser: argparse.ArgumentParser) -> None:
    """run (default) or answer; seed, duration, episodes, blind, dry run; the diagnosis."""
    parser.add_argument("action", nargs="?", choices=("run", "answer", "key"), default="run",
                        help="run the incident (default); answer: grade your diagnosis; key: the "
                             "facilitator's key, what a blind seed draws (do not show the room)")
    parser.add_argument("--seed", type=int, required=True, help="the same seed replays the same incident")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--episodes", type=int, default=3, help="fault episodes (default 3; "
                        "a blind incident has one)")
    parser.add_argument("--dry-run", action="store_true", help="print the schedule, change nothing")
    parser.add_argument("--blind", action="store_true",
                        help="one fault drawn from the seed, never shown: find it, then "
                             "`lab incident answer`")
    diagnosis = parser.add_argument_group("answer (your diagnosis of a blind incident)")
    diagnosis.add_argument("--fault", choices=blind_incident.ANSWER_KINDS,
                           help="the fault kind (crash: a replica of a fleet went away)")
    diagnosis.add_argument("--endpoint", help="the Flask endpoint it hit (e.g. api.list_todos; "
                           "'*' when every endpoint was hit)")
    diagnosis.add_argument("--start", help="when it started: HH:MM[:SS] UTC, +SECONDS after the "
                           "incident's start, or ISO 8601")
    diagnosis.add_argument("--end", help="when it ended (same forms)")
    diagnosis.add_argument("--instance", default="",
                           help="on a fleet (`lab up --web 3`): the replica it hit, as Prometheus's "
                                "instance (127.0.0.1:5001) or web-2; '*' for every replica")
    diagnosis.add_argument("--json", action="store_true", help="print the grade as JSON")
    diagnosis.add_argument("--reveal", action="store_true",
                           help="also say the right answer for each part (a wrong part otherwise "
                                "says where to look, not what it was)")


def _apply(steps: list[Step], duration: float, blind: bool) -> None:
    """Apply each step at its time; every fault is cleared at the end, even on Ctrl-C. A blind
    incident's faults are quiet: no log line, span attribute or error text names them, and
    clearing them is as silent."""
    switch = FaultSwitch.for_env()
    started = time.monotonic()
    # A line every few seconds: the time spent and left, never what is in force (blind).
    beat = heartbeat(f"incident {'(blind) ' if blind else ''}running", total_s=duration)
    try:
        with beat:
            for step in steps:
                time.sleep(max(0.0, started + step.at - time.monotonic()))
                switch.replace(step.faults, quiet=blind)
                if not blind:
                    print(f"[t+{time.monotonic() - started:6.1f}s] applied: {step.description}", flush=True)
            time.sleep(max(0.0, started + duration - time.monotonic()))
    finally:
        switch.replace({}, quiet=blind)


def _replica(config: LabConfig, number: int | None) -> Service | None:
    """The web replica a fleet's incident hits (1-based), or None."""
    web = [s for s in topology.build(config) if s.family == "web"]
    return web[number - 1] if number else None


def _crash_window(config: LabConfig, replica: Service, on_s: float, off_s: float) -> threading.Thread:
    """A thread that crashes the replica at on_s and starts it again at off_s (silently)."""
    began = time.monotonic()

    def run() -> None:
        time.sleep(max(0.0, began + on_s - time.monotonic()))
        launch.crash(config, replica.name)
        time.sleep(max(0.0, began + off_s - time.monotonic()))
        launch.up(config, say=lambda _: None)

    return threading.Thread(target=run, daemon=True)


def _run_blind(args: argparse.Namespace, config: LabConfig) -> int:
    incident = blind_incident.plan(args.seed, args.duration, config.web_replicas)
    if args.dry_run:
        print(f"blind incident {args.seed}: {args.duration:g} s; the fault is not shown")
        return 0
    replica = _replica(config, incident.replica)
    instance = replica.instance(config) if replica else None
    faults = incident.faults(instance)
    steps = [Step(incident.on_s, faults, "on"), Step(incident.off_s, {}, "off")]
    run = blind_incident.Run(args.seed, args.duration, datetime.now(UTC), config.web_replicas)
    run.save(config.var_dir)
    crash = _crash_window(config, replica, incident.on_s, incident.off_s) \
        if replica and incident.kind == blind_incident.CRASH else None
    if crash:
        crash.start()
    blind_incident.to_room("started", args.seed)
    print(f"blind incident {args.seed}: started {run.started:%H:%M:%S} UTC, lasts "
          f"{args.duration:g} s. Something will go wrong on its own; find what, where and when "
          "(metrics, logs, traces), then:\n"
          f"  lab incident answer --seed {args.seed} --fault KIND --endpoint NAME "
          "--start HH:MM:SS --end HH:MM:SS"
          + (" --instance REPLICA" if config.web_replicas > 1 else ""), flush=True)
    _apply(steps, args.duration, blind=True)
    if crash:
        crash.join(30)
    blind_incident.to_room("over", args.seed)
    print(f"blind incident {args.seed} over at {datetime.now(UTC):%H:%M:%S} UTC; no fault in force")
    return 0


def _answer(args: argparse.Namespace, config: LabConfig) -> int:
    missing = [f"--{name}" for name in ("fault", "endpoint", "start", "end") if getattr(args, name) is None]
    if missing:
        raise LabError(f"answer needs {', '.join(missing)}", 2)
    try:
        run = blind_incident.Run.load(config.var_dir, args.seed)
        start = blind_incident.parse_time(args.start, run.started)
        end = blind_incident.parse_time(args.end, run.started)
    except (FileNotFoundError, ValueError) as exc:
        raise LabError(str(exc), 2) from None
    from stack.prometheus_config import SCRAPE_INTERVAL

    tolerance = blind_incident.WindowTolerance.for_lab(float(SCRAPE_INTERVAL.removesuffix("s")))
    web = [s.instance(config) for s in topology.build(config.with_fleet(run.web_replicas, None))
           if s.family == "web"]
    graded = blind_incident.grade(run, args.fault, args.endpoint, start, end, tolerance, args.reveal,
                                  _named_instance(args.instance, config), web)
    blind_incident.to_room("answered", args.seed, graded, fault=args.fault, endpoint=args.endpoint,
                           start=args.start, end=args.end)
    print(json.dumps(graded.as_dict(), indent=1) if args.json else graded)
    return 0 if graded.right else 1


def _named_instance(named: str, config: LabConfig) -> str:
    """The instance a learner named: a replica name (web-2) becomes its instance."""
    for service in topology.build(config):
        if service.family == "web" and named.strip() == service.name:
            return service.instance(config)
    return named


def _key(args: argparse.Namespace, config: LabConfig) -> int:
    """The facilitator's seed key: what the blind incident of a seed draws, and when."""
    try:
        incident = blind_incident.plan(args.seed, args.duration, config.web_replicas)
    except ValueError as exc:
        raise LabError(str(exc), 2) from None
    replica = _replica(config, incident.replica)
    where = (f"every endpoint of replica {replica.name} ({replica.instance(config)})" if replica
             else incident.endpoint or "every endpoint that reads the database")
    print(f"seed {incident.seed} ({incident.duration:g} s): {incident.kind} on {where} "
          f"({json.dumps(incident.value)}), from +{incident.on_s:g} s to +{incident.off_s:g} s")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the incident (blind or with its schedule shown), grade an answer, or print the key."""
    config = LabConfig.from_env()
    if args.action == "answer":
        return _answer(args, config)
    if args.action == "key":
        return _key(args, config)
    try:
        if args.blind:
            return _run_blind(args, config)
        steps = schedule(args.seed, args.duration, args.episodes)
    except ValueError as exc:
        raise LabError(str(exc), 2) from None
    for step in steps:
        print(f"t+{step.at:6.1f}s  {step.description}")
    if args.dry_run:
        return 0
    _apply(steps, args.duration, blind=False)
    print("incident over; no fault in force")
    return 0
