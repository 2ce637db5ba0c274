"""Run the `lab` console script against a temporary VAR_DIR on free ports, and clean up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
LAB = Path(sys.executable).parent / "lab"
SERVICES = ("web", "worker", "caddy", "prometheus")
PORT_VARS = ("CADDY_PORT", "WEB_PORT", "WORKER_METRICS_PORT", "PROMETHEUS_PORT",
             "CADDY_METRICS_PORT", "LOCUST_PORT", "JUPYTER_PORT")
# Variables of the caller's shell that would point the lab somewhere else than the test wants.
_SCRUBBED = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "EXPORT_DIR",
             "PROMETHEUS_MULTIPROC_DIR", "LOG_FILE", "TRACE_FILE", "TRACING_ENABLED",
             "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "LAB_CADDYFILE")


def free_ports(count: int) -> list[int]:
    """count distinct TCP ports nobody listens on (all held open until all are chosen)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


def lab_env(var_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment with a private VAR_DIR and every lab port set to a free one."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(zip(PORT_VARS, map(str, free_ports(len(PORT_VARS))), strict=True))
    env.update({"VAR_DIR": str(var_dir), "APP_ENV": "test"})
    env.update(extra or {})
    return env


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
    pids = {}
    for service in SERVICES:
        path = var_dir / "run" / f"{service}.pid"
        if path.exists():
            pids[service] = int(json.loads(path.read_text())["pid"])
    return pids


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
