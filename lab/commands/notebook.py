"""`lab notebook [--reset [NOTEBOOK ...]] [--copies-only] [--run [OUT_DIR]]`: JupyterLab on the
learner's working copies (or, --run, every tracked notebook executed headless, as `lab demo` does).

The working copies live in VAR_DIR/workshop (lab.workshop): made from the tracked notebooks
the first time, never overwritten after, so the tracked notebooks stay pristine and `lab demo`
runs those, not a learner's edits. `--reset` restores copies from the tracked notebooks (the
learner's versions are moved aside, not deleted). `--copies-only` makes or resets the copies
and starts nothing: the Docker path's jupyter service runs it at start, before its own
JupyterLab (and a facilitator can run it there with --reset).

Started detached and recorded in var/run/jupyter.pid like the other services, so `lab down`
stops it. It listens on 127.0.0.1:JUPYTER_PORT (default 8888) with a token (JUPYTER_TOKEN, or
one chosen now and kept in var/run/jupyter.token) printed in the URL.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lab import jupyter
from stack.config import LabConfig


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab notebook [--reset [NOTEBOOK ...]] [--timeout S]`."""
    parser.add_argument("--reset", nargs="*", metavar="NOTEBOOK", default=None,
                        help="restore the working copies (all, or the named ones, e.g. "
                             "01-metrics) from the tracked notebooks; yours are moved aside")
    parser.add_argument("--copies-only", action="store_true",
                        help="make (or with --reset restore) the working copies and start nothing")
    # dest is not "run": that is the command's function (lab/cli.py's set_defaults).
    parser.add_argument("--run", nargs="?", const=True, default=None, metavar="OUT_DIR", dest="execute",
                        help="start nothing: run every tracked notebook headless with the exercises "
                             "answered, into OUT_DIR (default: a new folder of LAB_REPORTS_DIR), and "
                             "write an HTML report beside it; exit 1 if one failed")
    parser.add_argument("--timeout", type=float, default=jupyter.START_TIMEOUT_S,
                        help=f"seconds to wait for JupyterLab (default {jupyter.START_TIMEOUT_S:g})")


def run(args: argparse.Namespace) -> int:
    """Start JupyterLab unless it already runs; print its URL (or, --run, run the notebooks)."""
    if args.execute is not None:
        from curriculum.notebook_run import run_all

        return run_all(None if args.execute is True else Path(args.execute))
    config = LabConfig.from_env()
    jupyter.prepare_copies(config, args.reset)
    if args.copies_only:
        return 0
    url = jupyter.start(config, args.timeout)
    print(f"  JupyterLab        {url}\n`lab down` stops it")
    return 0
