"""The subcommand registry: every `lab` command, its module and its help line, in one place.

A command is a module of this package with `run(args) -> int` and, when it takes
arguments, `configure(parser)`. Adding `lab foo` means adding lab/commands/foo.py and one
line to COMMANDS below. Only the module of the command being run is imported (as click's
lazy groups do), so `lab status` never pays for pandas or Locust; command modules never
import each other: what they share lives in a module of `lab` they all import.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass

Run = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Entry:
    """One registered command: where its code lives and the line `lab --help` shows."""

    module: str
    help: str


# In `lab --help` order. Module paths are relative to this package.
COMMANDS: dict[str, Entry] = {
    "day": Entry("day", "the workshop day in one command: the stack, JupyterLab on your copies, "
                        "the run the modules need, gentle traffic"),
    "up": Entry("up", "migrate, start web, worker, Caddy, Alertmanager with its receiver and "
                      "Prometheus, wait until healthy"),
    "status": Entry("status", "show each service's pid, port and health"),
    "logs": Entry("logs", "print the services' log lines"),
    "down": Entry("down", "stop everything `lab up` started"),
    "migrate": Entry("migrate", "upgrade the database schema to the newest revision"),
    "alerts": Entry("alerts", "active alerts and silences (Alertmanager, via amtool); "
                              "`alerts silence` adds one"),
    "bench": Entry("bench", "measure instrumentation overhead, footprint and turnaround "
                            "(writes docs/benchmarks.md)"),
    "doctor": Entry("doctor", "pre-flight check: Python, disk, programs, ports, Docker, "
                              "a recorded run, the app"),
    "demo": Entry("demo", "up, a load run with a fault window, every notebook headless, "
                          "an HTML report"),
    "fault": Entry("fault", "switch injected faults on and off, live"),
    "incident": Entry("incident", "replay a seeded incident (faults on and off over time); "
                                  "--blind hides it, `incident answer` grades your diagnosis"),
    "load": Entry("load", "run the Locust scenario headless against the lab (recorded for the "
                          "notebooks)"),
    "progress": Entry("progress", "grade saved notebooks: each exercise right, wrong or "
                                  "unanswered (--json for a facilitator)"),
    "alert-receiver": Entry("alert_receiver", "record Alertmanager's notifications (a service: "
                                              "`lab up` and compose start it)"),
    "room": Entry("room", "a facilitator's live view of the room: `room serve` (facilitator), "
                          "`room join URL CODE` (learner)"),
    "notebook": Entry("notebook", "JupyterLab on your working copies of the notebooks "
                                  "(--reset restores them; stopped by lab down)"),
}


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A subcommand that takes no arguments."""


@dataclass(frozen=True)
class Command:
    """A loaded command: its name, what it runs and how it reads its arguments."""

    name: str
    run: Run
    configure: Configure = _no_arguments


def load(name: str) -> Command:
    """Import the module of command name (only that one) and return its entry points."""
    module = importlib.import_module(f"{__name__}.{COMMANDS[name].module}")
    return Command(name, module.run, getattr(module, "configure", _no_arguments))
