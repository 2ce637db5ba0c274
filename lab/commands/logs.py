"""`lab logs [service] [-n N] [-f]`: the services' log lines from VAR_DIR/log."""

from __future__ import annotations

import argparse

from stack import topology
from stack.config import LabConfig
from stack.logfiles import follow, merged_tail

# Without a service name: the app's JSON logs, merged in time order (each line names its
# service). Caddy and Prometheus logs are shown when asked for by name.
DEFAULT_SERVICES = ("web", "worker")


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab logs [service] [-n N] [-f]`."""
    parser.add_argument(
        "service", nargs="?",
        help=f"one of {', '.join(topology.SERVICE_NAMES)}: web or worker means every replica, "
             "merged by timestamp, web-2 one replica (default: web and worker)",
    )
    parser.add_argument("-n", "--lines", type=int, default=50, help="lines to show (default 50)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")


def run(args: argparse.Namespace) -> int:
    """Print the last lines, then follow when asked."""
    config = LabConfig.from_env()
    services = topology.build(config)
    names = (args.service,) if args.service else DEFAULT_SERVICES
    known = {s.name for s in services} | {s.job for s in services}
    unknown = [name for name in names if name not in known]
    if unknown:
        print(f"lab logs: no service {unknown[0]!r} in this lab: choose one of {', '.join(sorted(known))}")
        return 2
    paths = [s.log_path(config) for s in services if s.name in names or s.family in names]
    if not any(path.exists() for path in paths):
        print(f"no logs yet under {config.log_dir} (run `lab up`)")
        return 1
    for line in merged_tail(paths, max(0, args.lines)):
        print(line)
    if args.follow:
        try:
            for line in follow(paths):
                print(line, flush=True)
        except KeyboardInterrupt:
            return 0
    return 0
