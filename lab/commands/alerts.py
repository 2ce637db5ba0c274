"""`lab alerts`: what Alertmanager holds now, through its own CLI (amtool).

    lab alerts                                   active alerts, then silences
    lab alerts silence alertname=WorkerDown [--duration 30m] [--comment TEXT]
    lab alerts expire SILENCE_ID

Alertmanager keeps only what is active; every notification ever sent is in
$VAR_DIR/log/alerts.jsonl (the receiver's record, analysis.alerting.load_alerts).
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import subprocess

import requests

from lab.errors import LabError
from stack import alertmanager_config as alertmanager
from stack.config import LabConfig


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab alerts [silence MATCHER... | expire ID]`."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    silence = actions.add_parser("silence", help="silence alerts matching label matchers")
    silence.add_argument("matchers", nargs="+", metavar="MATCHER",
                         help='label matchers, e.g. alertname=WorkerDown or severity=~"page|ticket"')
    silence.add_argument("--duration", default="30m", help="how long (default 30m)")
    silence.add_argument("--comment", default="silenced from lab alerts", help="why")
    expire = actions.add_parser("expire", help="end a silence before its time")
    expire.add_argument("silence_id")


def amtool(config: LabConfig, *args: str) -> str:
    """Run amtool against this lab's Alertmanager; its output, or a LabError with its message."""
    program = shutil.which("amtool", path=config.env.get("PATH"))
    if not program:
        raise LabError("amtool not found on PATH: install the Debian package "
                       "'prometheus-alertmanager' (sudo apt-get install prometheus-alertmanager)")
    done = subprocess.run([program, f"--alertmanager.url={alertmanager.url(config)}", *args],
                          capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise LabError(f"amtool {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def require_alertmanager(config: LabConfig) -> None:
    """A clear message when this lab's Alertmanager does not answer."""
    session = requests.Session()
    session.trust_env = False  # loopback: never through a proxy from the environment
    try:
        session.get(f"{alertmanager.url(config)}/-/ready", timeout=3).raise_for_status()
    except requests.RequestException:
        raise LabError(f"Alertmanager does not answer at {alertmanager.url(config)}: "
                       "start the lab with `lab up`") from None


def run(args: argparse.Namespace) -> int:
    """List, silence or expire."""
    config = LabConfig.from_env()
    require_alertmanager(config)
    if args.action == "silence":
        silence_id = amtool(config, "silence", "add", f"--duration={args.duration}",
                            f"--comment={args.comment}", f"--author={getpass.getuser()}",
                            *args.matchers).strip()
        print(f"silence {silence_id} added for {args.duration}: {' '.join(args.matchers)}")
        print(f"`lab alerts expire {silence_id}` ends it early")
        return 0
    if args.action == "expire":
        amtool(config, "silence", "expire", args.silence_id)
        print(f"silence {args.silence_id} expired")
        return 0
    print(f"firing, not silenced or inhibited ({alertmanager.url(config)}/#/alerts):")
    print(amtool(config, "alert", "query").rstrip() or "  none")
    print("\nsilences:")
    print(amtool(config, "silence", "query").rstrip() or "  none")
    return 0
