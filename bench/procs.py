"""Start and stop the processes a benchmark measures: gunicorn, Caddy, a Celery worker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from app.layout import PROJECT_ROOT

BIN = Path(os.path.abspath(sys.executable)).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll check() every 50 ms until it is true; raise after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


def http_ok(url: str) -> bool:
    """True when url answers 200."""
    return requests.get(url, timeout=2).status_code == 200


@dataclass
class Proc:
    """A child process in its own process group, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while it runs."""
        return self.popen.poll() is None

    def output(self) -> str:
        """What it wrote so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the group, SIGKILL if it lingers."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """Our environment without settings that would leak into the child, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "PROMETHEUS_MULTIPROC")) and k not in (
               "TRACING_ENABLED", "OBSERVABILITY", "DATABASE_URL", "CELERY_BROKER_URL",
               "CELERY_RESULT_BACKEND", "LOG_FILE", "TRACE_FILE", "VAR_DIR")}
    return {**env, **extra}


def start(name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> Proc:
    """Start argv in a new session with env (already complete); output to log_dir/name.out."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.out"
    with open(log_path, "ab") as fh:
        popen = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=dict(env), stdout=fh,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    return Proc(name, popen, log_path)


def start_gunicorn(name: str, env: Mapping[str, str], log_dir: Path, workers: int = 2,
                   threads: int = 4) -> tuple[Proc, int]:
    """gunicorn with the project's config on a free port; returns (proc, port) once healthy."""
    port = free_port()
    full = clean_env({**env, "WEB_PORT": str(port), "GUNICORN_WORKERS": str(workers),
                      "GUNICORN_THREADS": str(threads)})
    proc = start(name, [str(BIN / "gunicorn"), "-c", str(PROJECT_ROOT / "stack" / "gunicorn.conf.py")],
                 full, log_dir)
    _await(proc, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 60, "gunicorn /healthz")
    return proc, port


def start_caddy(upstream_port: int, tmp: Path) -> tuple[Proc, int]:
    """Caddy from stack/caddy/Caddyfile in front of 127.0.0.1:upstream_port."""
    port, metrics_port = free_port(), free_port()
    env = clean_env({
        "CADDY_PORT": str(port), "CADDY_METRICS_PORT": str(metrics_port),
        "WEB_UPSTREAM": f"127.0.0.1:{upstream_port}",
        "STATIC_ROOT": str(PROJECT_ROOT / "app" / "static"), "CADDY_ADMIN": "off",
        "XDG_CONFIG_HOME": str(tmp / "caddy-config"), "XDG_DATA_HOME": str(tmp / "caddy-data"),
    })
    caddyfile = PROJECT_ROOT / "stack" / "caddy" / "Caddyfile"
    proc = start("caddy", ["caddy", "run", "--adapter", "caddyfile", "--config", str(caddyfile)],
                 env, tmp)
    _await(proc, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 30, "Caddy")
    return proc, port


def start_celery_worker(env: Mapping[str, str], log_dir: Path) -> Proc:
    """A solo-child prefork worker that forks a fresh child per task (peak RSS per task)."""
    port = free_port()
    full = clean_env({**env, "WORKER_METRICS_PORT": str(port)})
    proc = start("worker", [
        str(BIN / "celery"), "-A", "worker.make_celery", "--quiet", "worker", "--concurrency=1",
        "--pool=prefork", "--loglevel=INFO", "--max-tasks-per-child=1", f"--hostname=bench-{port}@%h",
    ], full, log_dir)
    _await(proc, lambda: " ready." in proc.output(), 60, "the Celery worker")
    return proc


def _await(proc: Proc, check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for check(), failing early with the output if the process died."""
    try:
        wait_until(lambda: not proc.alive() or check(), timeout, what)
        if not proc.alive():
            raise TimeoutError(f"{proc.name} exited")
    except TimeoutError as exc:
        proc.stop()
        raise RuntimeError(f"{proc.name} did not start ({exc}):\n{proc.output()[-2000:]}") from None


class CpuMeter:
    """CPU seconds (user + system) used by a process tree, per process so that a replaced
    worker neither loses nor double-counts time."""

    def __init__(self, pid: int) -> None:
        """Meter the tree under pid (pid included)."""
        self.pid = pid
        self._last = self._sample()

    def _sample(self) -> dict[tuple[int, float], float]:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return {}
        sample = {}
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                sample[(proc.pid, proc.create_time())] = times.user + times.system
        return sample

    def lap(self) -> float:
        """CPU seconds used since the previous lap (or since creation)."""
        now = self._sample()
        used = sum(value - self._last.get(key, 0.0) for key, value in now.items())
        self._last = now
        return used


def json_lines(text: str) -> list[dict[str, object]]:
    """The JSON objects among a process's output lines."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found
