"""`lab fault set NAME=VALUE ... | clear [NAME ...] | list`: the live fault switchboard."""

from __future__ import annotations

import argparse

from app.faults import FaultError, parse_assignment
from lab.errors import LabError
from stack.switchboard import FaultSwitch, SwitchboardError


def configure(parser: argparse.ArgumentParser) -> None:
    """The three actions."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    set_ = actions.add_parser("set", help="switch faults on (or change them): NAME=VALUE ...")
    set_.add_argument("assignments", nargs="+", metavar="NAME=VALUE",
                      help="e.g. error_rate=0.2, error_rate.todos.add=0.5, latency=0.1-0.4, "
                           "slow_db=0.2, export_failure_rate=1, worker_delay=2")
    clear = actions.add_parser("clear", help="switch faults off (all, or the names given)")
    clear.add_argument("names", nargs="*", metavar="NAME")
    actions.add_parser("list", help="show the faults in force")


def _show(faults: dict[str, float | list[float]]) -> None:
    if not faults:
        print("no fault in force")
    for name, value in sorted(faults.items()):
        shown = f"{value[0]}-{value[1]}" if isinstance(value, list) else f"{value:g}"
        print(f"{name}={shown}")


def run(args: argparse.Namespace) -> int:
    """Apply the action and show what is in force now."""
    switch = FaultSwitch.for_env()
    try:
        if args.action == "set":
            faults = switch.set(dict(parse_assignment(a) for a in args.assignments))
        elif args.action == "clear":
            unknown = [n for n in args.names if n not in switch.current()]
            if unknown:
                raise LabError(f"not in force: {', '.join(unknown)}", 2)
            faults = switch.clear(*args.names)
        else:
            faults = switch.current()
    except (FaultError, SwitchboardError) as exc:
        raise LabError(str(exc), 2) from None
    _show(faults)
    return 0
