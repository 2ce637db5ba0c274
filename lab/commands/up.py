"""`lab up`: migrate, start what is not running, wait until all is healthy, print the URLs."""

from __future__ import annotations

import argparse
import time

from lab.console import say
from stack import launch, topology
from stack.config import LabConfig


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab up [--timeout S]`."""
    parser.add_argument(
        "--timeout", type=float, default=launch.DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for everything to be healthy (default {launch.DEFAULT_TIMEOUT_S:g})",
    )


def print_urls(config: LabConfig) -> None:
    """The URLs a user opens, the app through Caddy first, then the rest."""
    services = topology.build(config)
    first = ("caddy", "prometheus", "alertmanager", "worker", "web")
    for service in sorted(services, key=lambda s: first.index(s.name) if s.name in first else len(first)):
        print(f"  {service.label:<17} {service.url}")
    print(f"  {'logs':<17} {config.log_dir}")


def run(args: argparse.Namespace) -> int:
    """Bring the lab up; idempotent."""
    began = time.monotonic()
    config = LabConfig.from_env()
    started = launch.up(config, args.timeout, say)
    elapsed = time.monotonic() - began
    verb = "is up" if started else "was already up"
    print(f"lab {verb}: all {len(topology.build(config))} services healthy in {elapsed:.1f} s")
    print_urls(config)
    return 0
