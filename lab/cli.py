"""The `lab` console script: argparse subcommands found in lab.commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lab.commands import discover
from lab.errors import LabError


def build_parser() -> argparse.ArgumentParser:
    """The parser with one subparser per registered command."""
    parser = argparse.ArgumentParser(
        prog="lab",
        description="Run the Todo Observability Lab locally, without Docker.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in discover():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse argv and run the chosen subcommand; a LabError becomes one clear message."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except LabError as exc:
        print(f"lab {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
