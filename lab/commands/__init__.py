"""The subcommand registry: every module in this package that defines COMMAND is one.

Adding `lab foo` means adding lab/commands/foo.py with a COMMAND; nothing else changes.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

# Listed first in `lab --help`, in this order; other subcommands follow alphabetically.
PREFERRED_ORDER = ("up", "status", "logs", "down", "migrate")


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A subcommand that takes no arguments."""


@dataclass(frozen=True)
class Command:
    """One `lab` subcommand: its name, help line, arguments and what it runs."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None] = _no_arguments


def discover() -> list[Command]:
    """Every COMMAND defined by a module of this package, in help order."""
    found: dict[str, Command] = {}
    for module_info in pkgutil.iter_modules(__path__):
        try:
            module = importlib.import_module(f"{__name__}.{module_info.name}")
        except Exception as exc:
            # One broken subcommand must not take `lab down` with it: say so and go on.
            print(f"lab: skipping subcommand module {module_info.name}: {exc!r}", file=sys.stderr)
            continue
        command = getattr(module, "COMMAND", None)
        if isinstance(command, Command):
            found[command.name] = command

    def order(name: str) -> tuple[int, str]:
        rank = PREFERRED_ORDER.index(name) if name in PREFERRED_ORDER else len(PREFERRED_ORDER)
        return rank, name

    return [found[name] for name in sorted(found, key=order)]
