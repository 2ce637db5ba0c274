"""`lab load [--shape NAME] [--users N] [--spawn-rate R] [--duration S] [--workers N]
[--fault NAME=VALUE ...] [--faults workshop|fleet] [--host URL]`.

Runs the lab's Locust scenario headless against the running stack through Caddy, between two
quiet edges (a Prometheus scrape on each side of a moment without traffic), optionally with
a fault switched on and off during the run, and records the run in
$LAB_REPORTS_DIR/last-run.json for the notebooks. `--workers N` drives the load from a Locust
master and N worker processes (one Python process is one core's worth of load); the record
and the reports are the same.

`--host URL` (or LOAD_HOST) loads another app instead, any deployment of the todo app: Locust
alone, no quiet edges, no fault, no record (the notebooks' record is the lab's own); its
reports go to $LAB_REPORTS_DIR as well.
"""

from __future__ import annotations

import argparse

from lab import loadrun
from loadtests.shapes import SHAPE_NAMES
from stack.config import LabConfig


def configure(parser: argparse.ArgumentParser) -> None:
    """Shape, users, duration, and an optional fault window."""
    parser.add_argument("--shape", choices=SHAPE_NAMES, default=None,
                        help="the load shape (default: LOAD_SHAPE, else steady)")
    parser.add_argument("--users", type=int, default=None,
                        help="peak users (default: LOAD_USERS, else the shape's)")
    parser.add_argument("--spawn-rate", type=float, default=None,
                        help="users started per second (default: LOAD_SPAWN_RATE, else the shape's)")
    parser.add_argument("--duration", type=int, default=None,
                        help="seconds (default: LOAD_DURATION, else the shape's)")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="Locust worker processes under one master (default 0: a single process)")
    parser.add_argument("--fault", metavar="NAME=VALUE", default=None,
                        help="inject this fault during the run, e.g. error_rate.api.list_todos=0.2")
    parser.add_argument("--fault-window", metavar="A-B", default=None,
                        help="seconds after the start when the fault is on (default: middle third)")
    parser.add_argument("--host", metavar="URL", default=None,
                        help="load the app at URL instead of the lab's (default: LOAD_HOST): "
                             "not recorded, no faults")
    parser.add_argument("--faults", choices=("workshop", "fleet"), default=None,
                        help="workshop: the workshop's faults, as `lab demo` injects them: the run every "
                             f"module needs (5 minutes; {loadrun.WORKSHOP_USERS} users unless --users); "
                             "fleet: the fleet module's run (`lab up --web 3 --workers 2` first; 4 "
                             "minutes): one bad web replica, one slow worker, one web replica crashed "
                             "and restarted")


def run(args: argparse.Namespace) -> int:
    """Run the load and print where its reports are (lab/loadrun.py does it all)."""
    loadrun.run_load(LabConfig.from_env(), args)
    return 0
