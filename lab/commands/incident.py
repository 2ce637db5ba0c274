"""`lab incident --seed N`: replay a reproducible incident by switching faults over time."""

from __future__ import annotations

import argparse
import time

from app.faults import write_faults
from lab.commands.fault import board
from lab.errors import LabError
from lab.incident import schedule


def configure(parser: argparse.ArgumentParser) -> None:
    """Seed, duration, episodes, dry run."""
    parser.add_argument("--seed", type=int, required=True, help="the same seed replays the same incident")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--episodes", type=int, default=3, help="fault episodes (default 3)")
    parser.add_argument("--dry-run", action="store_true", help="print the schedule, change nothing")


def run(args: argparse.Namespace) -> int:
    """Print the schedule, then apply each step at its time; faults are cleared at the end."""
    try:
        steps = schedule(args.seed, args.duration, args.episodes)
    except ValueError as exc:
        raise LabError(str(exc), 2) from None
    for step in steps:
        print(f"t+{step.at:6.1f}s  {step.description}")
    if args.dry_run:
        return 0
    switchboard = board()
    started = time.monotonic()
    try:
        for step in steps:
            time.sleep(max(0.0, started + step.at - time.monotonic()))
            write_faults(switchboard.path, step.faults)
            print(f"[t+{time.monotonic() - started:6.1f}s] applied: {step.description}", flush=True)
        time.sleep(max(0.0, started + args.duration - time.monotonic()))
    finally:
        write_faults(switchboard.path, {})
    print("incident over; no fault in force")
    return 0
