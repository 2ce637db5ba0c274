"""`lab down`: stop every service this lab started, by the pids in its pid files."""

from __future__ import annotations

import argparse

from stack import launch
from stack.config import LabConfig


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab down [--timeout S]`."""
    parser.add_argument(
        "--timeout", type=float, default=launch.STOP_TIMEOUT_S,
        help=f"seconds between SIGTERM and SIGKILL (default {launch.STOP_TIMEOUT_S:g})",
    )


def run(args: argparse.Namespace) -> int:
    """Stop in reverse start order; only processes recorded in our pid files are touched."""
    config = LabConfig.from_env()
    if not launch.down(config, args.timeout):
        print("nothing to stop")
    config.forget_fleet()
    return 0
