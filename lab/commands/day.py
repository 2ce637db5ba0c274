"""`lab day`: the workshop day in one command, for a learner at the start of the day.

In order, each step saying what it does (none silent for 10 s):
1. the stack (`lab up`), unless it runs;
2. the learner's working copies and JupyterLab on them (`lab notebook`): open it and read
   00-setup while the next step runs;
3. the run every module needs, with the workshop's faults (`lab load --faults workshop`, five
   minutes), unless this lab has recorded it already;
4. gentle background traffic (two Locust users, all day) for the learner's own exploration;
5. with `--room URL CODE`, joining the facilitator's room (`lab room join`), first, so that a
   wrong code is said at once and not after five minutes;
then where everything is. `lab down` stops all of it. Run again, it starts only what is missing.
"""

from __future__ import annotations

import argparse
import getpass
import time

from lab import jupyter, loadrun
from lab.commands import up
from lab.console import say
from lab.errors import LabError
from stack import launch, topology


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab day [--timeout S] [--room URL CODE --name NAME]`."""
    parser.add_argument("--timeout", type=float, default=launch.DEFAULT_TIMEOUT_S,
                        help="seconds to wait for the stack to be healthy (default %(default)g)")
    parser.add_argument("--room", nargs=2, metavar=("URL", "CODE"), default=None,
                        help="join the facilitator's room (`lab room serve` prints both)")
    parser.add_argument("--name", default=None,
                        help="your name in the room (default: your user name)")
    up.add_fleet_options(parser)


def _join(room: list[str], name: str | None) -> str:
    """Join the room before the long steps; a refusal stops the day with the reason."""
    from room import client

    try:
        joined = client.join(room[0], room[1], name or getpass.getuser())
    except client.RoomError as exc:
        raise LabError(f"{exc} (or start the day without --room and `lab room join` later)", 1) from None
    return f"{joined.url} as {joined.name}"


def run(args: argparse.Namespace) -> int:
    """The day's steps; idempotent."""
    began = time.monotonic()
    config = up.fleet_config(args)
    room = _join(args.room, args.name) if args.room else None
    if room:
        say(f"0/4  joined the room at {room}: your exercise checks go there")
    say("1/4  the stack")
    started = launch.up(config, args.timeout, say)
    config.remember_fleet()
    say(f"     {'up' if started else 'already up'}: {len(topology.build(config))} services healthy")
    say("2/4  your working copies and JupyterLab (open it now: 00-setup while the run records)")
    jupyter.prepare_copies(config, None)
    notebooks = jupyter.start(config)
    say(f"     JupyterLab        {notebooks}")
    say(f"3/4  the workshop's run ({loadrun.WORKSHOP_DURATION // 60} minutes, with its faults)")
    recorded = loadrun.has_workshop_run(config)
    if recorded is not None:
        say(f"     already recorded: {recorded.start:%H:%M} to {recorded.end:%H:%M} UTC")
    else:
        loadrun.workshop_run(config)  # pauses the day's traffic of an earlier `lab day` meanwhile
    say("4/4  gentle background traffic")
    pid = loadrun.start_traffic(config)
    say(f"     {loadrun.TRAFFIC_USERS} users (pid {pid}), log {config.log_dir / 'traffic.log'}")
    say(f"\nyour lab is ready ({time.monotonic() - began:.0f} s):")
    say(f"  {'JupyterLab':<17} {notebooks}")
    say(f"  {'the app':<17} {config.environment.app_url}/")
    say(f"  {'Prometheus':<17} {config.environment.prometheus_url}/")
    say(f"  {'Alertmanager':<17} {config.environment.alertmanager_url}/")
    say(f"  {'recorded run':<17} {config.environment.reports_dir / 'last-run.json'}")
    say(f"  {'logs':<17} {config.log_dir}")
    if room:
        say(f"  {'the room':<17} {room}")
    say("`lab down` stops everything")
    return 0
