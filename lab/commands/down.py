"""`lab down`: stop every service this lab started, by the pids in its pid files."""

from __future__ import annotations

import argparse

from lab import procs, services
from lab.config import LabConfig

STOP_TIMEOUT_S = 25.0  # above gunicorn's graceful_timeout, so in-flight requests finish
# Started on demand by other subcommands (`lab notebook`), stopped here all the same.
ON_DEMAND = ("jupyter",)


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab down [--timeout S]`."""
    parser.add_argument(
        "--timeout", type=float, default=STOP_TIMEOUT_S,
        help=f"seconds between SIGTERM and SIGKILL (default {STOP_TIMEOUT_S:g})",
    )


def run(args: argparse.Namespace) -> int:
    """Stop in reverse start order; only processes recorded in our pid files are touched."""
    config = LabConfig.from_env()
    records = []
    for name in (*ON_DEMAND, *reversed(services.SERVICE_NAMES)):
        record = procs.read_pid(config.run_dir, name)
        if record is not None:
            records.append(record)
        elif procs.pid_path(config.run_dir, name).exists():
            print(f"{name}: unreadable pid file removed")
            procs.remove_pid(config.run_dir, name)
    if not records:
        print("nothing to stop")
        return 0
    outcome = procs.stop(records, args.timeout)
    for record in records:
        result = outcome[record.service]
        if result == "not running":
            print(f"{record.service}: was not running (stale pid file removed)")
        elif result == "killed":
            print(f"{record.service}: killed (pid {record.pid}) after {args.timeout:g} s")
        else:
            print(f"{record.service}: stopped (pid {record.pid})")
        procs.remove_pid(config.run_dir, record.service)
    return 0
