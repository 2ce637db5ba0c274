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
import os
import secrets
import time
from pathlib import Path

from lab import workshop
from lab.errors import LabError
from lab.notebook_env import notebook_env
from stack import processes, topology
from stack.config import LOCAL, LabConfig
from stack.logfiles import tail
from stack.ports import port_in_use

NAME = "jupyter"
START_TIMEOUT_S = 60.0


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab notebook [--reset [NOTEBOOK ...]] [--timeout S]`."""
    parser.add_argument("--reset", nargs="*", metavar="NOTEBOOK", default=None,
                        help="restore the working copies (all, or the named ones, e.g. "
                             "01-metrics) from the tracked notebooks; yours are moved aside")
    parser.add_argument("--copies-only", action="store_true",
                        help="make (or with --reset restore) the working copies and start nothing")
    parser.add_argument("--run", nargs="?", const=True, default=None, metavar="OUT_DIR",
                        help="start nothing: run every tracked notebook headless with the exercises "
                             "answered, into OUT_DIR (default: a new folder of LAB_REPORTS_DIR), and "
                             "write an HTML report beside it; exit 1 if one failed")
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT_S,
                        help=f"seconds to wait for JupyterLab (default {START_TIMEOUT_S:g})")


def _prepare_copies(config: LabConfig, reset: list[str] | None) -> None:
    """Make (or reset) the working copies and say what happened."""
    report = workshop.working_copies(config, reset is not None, reset or ())
    where = config.workshop_dir
    if report.copied:
        print(f"working copies: {len(report.copied)} notebook(s) copied into {where}")
    if report.reset:
        print(f"working copies: {', '.join(p.name for p in report.reset)} restored from the "
              f"tracked notebooks; your versions are in {report.set_aside}")
    if not report.copied and not report.reset:
        print(f"working copies: {where} (yours, kept as you saved them)")


def _token(config: LabConfig) -> str:
    """JUPYTER_TOKEN, else the one this lab chose before, else a new one (kept private)."""
    given = config.env.get("JUPYTER_TOKEN", "").strip()
    if given:
        return given
    path = config.run_dir / "jupyter.token"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    config.run_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    path.touch(mode=0o600)
    path.write_text(token + "\n", encoding="utf-8")
    return token


def _ready(base: str) -> bool:
    """True when JupyterLab's server answers its unauthenticated /api endpoint."""
    try:
        return processes.http_session().get(f"{base}/api", timeout=2).status_code == 200
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    """Start JupyterLab unless it already runs; print its URL (or, --run, run the notebooks)."""
    if args.run is not None:
        from curriculum.notebook_run import run_all

        return run_all(None if args.run is True else Path(args.run))
    config = LabConfig.from_env()
    _prepare_copies(config, args.reset)
    if args.copies_only:
        return 0
    port = config.port("JUPYTER_PORT")
    base = f"http://{LOCAL}:{port}"
    token = _token(config)
    url = f"{base}/lab?token={token}"
    record = processes.read_pid(config.run_dir, NAME)
    if record is not None and record.matches():
        if f"--ServerApp.root_dir={config.workshop_dir}" not in record.argv:
            # Started by an older lab on the tracked notebooks: edits would land in git.
            print(f"{NAME}: running (pid {record.pid}) on another folder than your working "
                  f"copies in {config.workshop_dir}: `lab down` and `lab notebook` again")
            return 1
        print(f"{NAME}: already running (pid {record.pid})\n  JupyterLab        {url}")
        return 0
    processes.remove_pid(config.run_dir, NAME)
    if port_in_use(port):
        raise LabError(f"port {port} (JUPYTER_PORT) is already in use: set JUPYTER_PORT to a free port")
    env = {**topology.child_env(config), **notebook_env(config), "JUPYTER_TOKEN": token,
           "JUPYTER_RUNTIME_DIR": str(config.var_dir / "jupyter" / "runtime")}
    argv = [str(config.bin_dir / "jupyter"), "lab", "--no-browser", f"--ip={LOCAL}",
            f"--port={port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={config.workshop_dir}",
            # Loopback only: no extension catalogue or update check on PyPI.
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # CI containers run as root; Jupyter refuses it otherwise
    log = config.log_dir / "jupyter.log"
    popen, record = processes.start_detached(NAME, argv, env, config.workshop_dir, log,
                                         config.run_dir, port)
    deadline = time.monotonic() + args.timeout
    while not _ready(base):
        if popen.poll() is not None or time.monotonic() > deadline:
            processes.stop([record], 10)
            processes.remove_pid(config.run_dir, NAME)
            shown = "\n".join(f"  {line}" for line in tail(log, 20))
            raise LabError(f"JupyterLab did not start; last lines of {log}:\n{shown}")
        time.sleep(0.5)
    print(f"{NAME}: started (pid {popen.pid})\n  JupyterLab        {url}\n`lab down` stops it")
    return 0
