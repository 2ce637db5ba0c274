"""Run the `lab` console script against a temporary VAR_DIR on free ports, and clean up."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from app.layout import PROJECT_ROOT
from stack import launch, topology
from stack.config import BIN_DIR, PORT_DEFAULTS, LabConfig, private_env

ROOT = PROJECT_ROOT
LAB = BIN_DIR / "lab"
SERVICES = topology.SERVICE_NAMES
PORT_VARS = tuple(PORT_DEFAULTS)


def lab_env(var_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment with a private VAR_DIR and every lab port set to a free one; traced
    by default, as `lab up` is (an empty TRACING_ENABLED is unset)."""
    return private_env(var_dir, {"TRACING_ENABLED": "", **(extra or {})})


@dataclass(frozen=True)
class LabRun:
    """The outcome of one `lab ...` invocation."""

    code: int
    stdout: str
    stderr: str


def run_lab(env: Mapping[str, str], *args: str, timeout: float = 120) -> LabRun:
    """Run `lab args...` to completion with env (the real console script, as a user would)."""
    done = subprocess.run(
        [str(LAB), *args], env=dict(env), cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    return LabRun(done.returncode, done.stdout, done.stderr)


def recorded_pids(var_dir: Path) -> dict[str, int]:
    """service -> pid, from the pid files `lab up` wrote."""
    config = LabConfig.from_env({"VAR_DIR": str(var_dir)})
    return {name: record.pid for name, record in launch.recorded(config).items()}


def session_processes(session_ids: set[int]) -> list[psutil.Process]:
    """Live (non-zombie) processes whose session is one of session_ids."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) in session_ids and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def kill_sessions(session_ids: set[int]) -> None:
    """Last resort after a failed test: SIGKILL whatever of these sessions still runs."""
    for proc in session_processes(session_ids):
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            continue


@contextmanager
def lab_stack(env: Mapping[str, str]) -> Iterator[LabRun]:
    """`lab up`; on exit `lab down`, and SIGKILL for anything a failed test left behind."""
    var_dir = Path(env["VAR_DIR"])
    sessions: set[int] = set()
    try:
        up = run_lab(env, "up")
        sessions |= set(recorded_pids(var_dir).values())
        yield up
    finally:
        sessions |= set(recorded_pids(var_dir).values())
        run_lab(env, "down")
        kill_sessions(sessions)
