"""`lab fault set NAME=VALUE ... | clear [NAME ...] | list`: the live fault switchboard."""

from __future__ import annotations

import argparse

from app.faults import FaultError, parse_assignment
from lab.errors import LabError
from stack import topology
from stack.config import LabConfig
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
    for action in (set_, clear):
        action.add_argument("--instance", default=None, metavar="REPLICA",
                            help="one replica only: web-2, worker-2 (`lab status` lists them) or its "
                                 "Prometheus instance such as 127.0.0.1:5001")
    actions.add_parser("list", help="show the faults in force")


def _show(faults: dict[str, float | list[float]]) -> None:
    if not faults:
        print("no fault in force")
    for name, value in sorted(faults.items()):
        shown = f"{value[0]}-{value[1]}" if isinstance(value, list) else f"{value:g}"
        print(f"{name}={shown}")


def instance_of(replica: str, config: LabConfig) -> str:
    """The Prometheus instance of a replica named as `lab status` names it (web-2), or the
    instance itself; LabError naming the replicas when it is neither."""
    services = [s for s in topology.build(config) if s.family]
    for service in services:
        if replica in (service.name, service.instance(config)):
            return service.instance(config)
    if ":" in replica and config.environment.app_elsewhere:
        return replica  # a stack this launcher did not start (compose): its own addresses
    names = ", ".join(f"{s.name} ({s.instance(config)})" for s in services)
    raise LabError(f"no replica {replica!r} in this lab: choose one of {names}", 2)


def run(args: argparse.Namespace) -> int:
    """Apply the action and show what is in force now."""
    config = LabConfig.from_env()
    switch = FaultSwitch.for_config(config)
    # An empty --instance is a replica named "", not the whole service.
    where = f"@{instance_of(args.instance, config)}" if getattr(args, "instance", None) is not None else ""
    try:
        if args.action == "set":
            faults = switch.set(dict(parse_assignment(f"{name}{where}={value}" if sep else name)
                                     for name, sep, value in (a.partition("=") for a in args.assignments)))
        elif args.action == "clear":
            args.names = [f"{name}{where}" for name in args.names] or \
                [name for name in switch.current() if where and name.endswith(where)]
            if where and not args.names:
                raise LabError(f"no fault in force on {args.instance}", 2)
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
