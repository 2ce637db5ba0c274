"""`lab demo`: the whole lab in one command (what `make lab` runs).

Brings the stack up (as `lab up`), runs five minutes of the Locust scenario with two fault
windows (half of the list pages' answers fail, then the list page slows beyond the 0.25 s
objective), long and strong enough that alerts fire and resolve during the run, executes
every notebook headless with the exercises answered by their reference solutions, and writes
reports/lab-report-<UTC>.html: the notebooks, and the alert timeline against the faults and
the load with predicted and measured detection delays.
The stack keeps running for the user to explore; `lab down` stops it. Exit code 1 when a
notebook (a check, the verification table) failed: the report says which and why.
"""

from __future__ import annotations

import argparse
import shutil
from datetime import UTC, datetime

from curriculum import notebook_run
from lab import loadrun
from lab.alert_report import alert_section
from lab.errors import LabError
from lab.notebook_env import notebook_env
from loadtests.shapes import SHAPE_NAMES, make_profile
from stack import launch
from stack.config import LabConfig

DEFAULT_DURATION = loadrun.WORKSHOP_DURATION


def configure(parser: argparse.ArgumentParser) -> None:
    """Load and fault options; the defaults make the five-minute demo."""
    parser.add_argument("--shape", choices=SHAPE_NAMES, default="steady")
    parser.add_argument("--users", type=int, default=loadrun.WORKSHOP_USERS,
                        help=f"Locust users (default {loadrun.WORKSHOP_USERS})")
    parser.add_argument("--duration", type=int, default=DEFAULT_DURATION,
                        help=f"seconds of load (default {DEFAULT_DURATION})")
    schedule = ", ".join(f"{fault} at {window} s" for fault, window in loadrun.WORKSHOP_FAULTS)
    parser.add_argument("--fault", default=None,
                        help=f"one fault instead of the default schedule ({schedule}); 'none' for none")
    parser.add_argument("--fault-window", metavar="A-B", default=None,
                        help="seconds after the start when --fault is on (default: middle third)")
    parser.add_argument("--timeout", type=float, default=launch.DEFAULT_TIMEOUT_S,
                        help="seconds to wait for the stack to be healthy")


def run(args: argparse.Namespace) -> int:
    """Up, load with a fault window, notebooks, report; print where everything is."""
    config = LabConfig.from_env()
    launch.up(config, args.timeout)
    planned: list[loadrun.PlannedFault] = []
    if args.fault is None:
        planned = loadrun.workshop_faults(float(args.duration))
    elif args.fault.lower() != "none":
        planned = [loadrun.parse_fault(args.fault, args.fault_window, float(args.duration))]
    profile = make_profile(args.shape, args.users, None, args.duration)
    record = loadrun.recorded_load(config, profile, planned, extra_env=loadrun.workshop_wait(config))
    alerts_html = alert_section(config, record)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = config.environment.reports_dir / f"lab-report-{stamp}"
    env = {**notebook_env(config), "LAB_FILL_SOLUTIONS": "1", "LAB_OUTPUT_DIR": str(out)}
    print(f"executing the notebooks headless into {out} ...", flush=True)
    outcomes = notebook_run.run_notebooks(notebook_run.notebooks(), out, env)
    faults = ", ".join(f"{f.name}={f.value:g} {f.on:%H:%M:%S}-{f.off:%H:%M:%S}" for f in record.faults)
    summary = {
        "load run": f"{record.start:%Y-%m-%d %H:%M:%S} to {record.end:%H:%M:%S} UTC, shape "
                    f"{record.shape}, {record.users} users, {record.duration:g} s",
        "injected": faults or "no fault",
        "Locust report": str(record.html),
        "executed notebooks": str(out),
    }
    report = notebook_run.write_report(outcomes, out.with_suffix(".html"), summary, alerts_html)
    latest = config.environment.reports_dir / "lab-report-latest.html"
    shutil.copyfile(report, latest)

    print(f"\nreport: {report}")
    print("the lab keeps running; `lab down` stops it")
    print(f"  {'app (via Caddy)':<17} {config.environment.app_url}/")
    print(f"  {'Prometheus':<17} {env['PROMETHEUS_URL']}/")
    print(f"  {'Locust UI':<17} .venv/bin/locust -f loadtests/locustfile.py "
          f"--host {config.environment.app_url} "
          f"--web-port {config.port('LOCUST_PORT')}  (then http://127.0.0.1:{config.port('LOCUST_PORT')}/)")
    print(f"  {'JupyterLab':<17} `lab notebook`, then http://127.0.0.1:{config.port('JUPYTER_PORT')}/lab")
    failed = [o for o in outcomes if not o.ok]
    if failed:
        details = "\n".join(f"{o.source.name}:\n{o.error}" for o in failed)
        raise LabError(f"{len(failed)} notebook(s) failed (see {report}):\n{details}")
    return 0
