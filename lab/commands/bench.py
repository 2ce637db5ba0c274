"""`lab bench [SECTION] [--quick]`: the benchmarks (bench/); `all` rewrites docs/benchmarks.md."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    """The same arguments as `python -m bench`."""
    from bench.__main__ import configure as bench_arguments

    bench_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks; they start their own servers, apart from a running lab."""
    from bench.__main__ import run as bench_run

    return bench_run(args, command="lab bench")
