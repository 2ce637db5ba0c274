"""The `lab` console script: argparse subcommands from the registry in lab.commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lab.commands import COMMANDS, load
from lab.errors import LabError


def chosen_command(argv: Sequence[str]) -> str | None:
    """The registered command argv names (its first word that is not an option), if any."""
    first = next((word for word in argv if not word.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with one subparser per command; only the one argv names is loaded.

    Without argv every command is loaded (for tests and documentation).
    """
    parser = argparse.ArgumentParser(
        prog="lab",
        description="Run the Todo Observability Lab locally, without Docker.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = set(COMMANDS) if argv is None else {chosen_command(argv)}
    for name, entry in COMMANDS.items():
        sub = subparsers.add_parser(name, help=entry.help, description=entry.help)
        if name in wanted:
            command = load(name)
            command.configure(sub)
            sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse argv and run the chosen subcommand; a LabError becomes one clear message."""
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(words).parse_args(words)
    try:
        return int(args.run(args))
    except LabError as exc:
        print(f"lab {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"lab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`lab alerts | head`): stop quietly, as other commands do. Python
        # would flush stdout again at exit and print a traceback; point it at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command that met a closed pipe


if __name__ == "__main__":
    sys.exit(main())
