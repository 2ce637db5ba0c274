"""`lab up`: migrate, start what is not running, wait until all is healthy, print the URLs."""

from __future__ import annotations

import argparse
import time

from lab.console import say
from stack import launch, topology
from stack.config import MAX_REPLICAS, LabConfig


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab up [--timeout S] [--web N] [--workers M]`."""
    parser.add_argument(
        "--timeout", type=float, default=launch.DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for everything to be healthy (default {launch.DEFAULT_TIMEOUT_S:g})",
    )
    add_fleet_options(parser)


def add_fleet_options(parser: argparse.ArgumentParser) -> None:
    """--web N and --workers M: the fleet's size (WEB_REPLICAS, WORKER_REPLICAS otherwise)."""
    parser.add_argument("--web", type=int, default=None, metavar="N",
                        help=f"web replicas, each its own gunicorn behind Caddy (1..{MAX_REPLICAS}; "
                             "default WEB_REPLICAS or the running fleet, else 1)")
    parser.add_argument("--workers", type=int, default=None, metavar="M",
                        help=f"worker replicas, each its own Celery worker (1..{MAX_REPLICAS}; "
                             "default WORKER_REPLICAS or the running fleet, else 1)")


def fleet_config(args: argparse.Namespace) -> LabConfig:
    """The lab's config with the fleet the command line asks for (the caller remembers it with
    `remember_fleet()` once the fleet runs, for `lab status`, `lab logs`, `lab fault
    --instance`, until `lab down`)."""
    return LabConfig.from_env().with_fleet(args.web, args.workers)


def print_urls(config: LabConfig) -> None:
    """The URLs a user opens, the app through Caddy first, then the rest."""
    services = topology.build(config)
    first = ("caddy", "prometheus", "alertmanager", "worker", "web")
    for service in sorted(services, key=lambda s: first.index(s.job) if s.job in first else len(first)):
        print(f"  {service.label:<17} {service.url}")
    print(f"  {'logs':<17} {config.log_dir}")
    if config.web_replicas > 1 or config.worker_replicas > 1:
        print(f"  {'fleet':<17} {config.web_replicas} web, {config.worker_replicas} worker "
              "replicas (`lab status` lists each)")


def run(args: argparse.Namespace) -> int:
    """Bring the lab up; idempotent."""
    began = time.monotonic()
    config = fleet_config(args)
    started = launch.up(config, args.timeout, say)
    config.remember_fleet()
    elapsed = time.monotonic() - began
    verb = "is up" if started else "was already up"
    print(f"lab {verb}: all {len(topology.build(config))} services healthy in {elapsed:.1f} s")
    print_urls(config)
    return 0
