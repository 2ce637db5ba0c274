"""Start and stop the real processes the tests run against (gunicorn, Celery, ...)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll check() until it is true; fail with what after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


@dataclass
class Proc:
    """A child process with its output going to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        """Everything the process has written so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process group and wait; SIGKILL if it does not go."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode


def start(name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> Proc:
    """Start argv in its own process group with env added to ours; output to a log file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.out"
    full_env = {**os.environ, **env}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if "PROMETHEUS_MULTIPROC_DIR" in env:
        full_env["PROMETHEUS_MULTIPROC_DIR"] = env["PROMETHEUS_MULTIPROC_DIR"]
    fh = open(log_path, "ab")  # noqa: SIM115 (the child owns it)
    popen = subprocess.Popen(
        argv, cwd=ROOT, env=full_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )
    fh.close()
    return Proc(name, popen, log_path, dict(env))


def http_ok(url: str) -> bool:
    """True when url answers 200."""
    return requests.get(url, timeout=2).status_code == 200


def start_gunicorn(
    env: Mapping[str, str], log_dir: Path, workers: int = 2, threads: int = 4
) -> tuple[Proc, str]:
    """Real gunicorn with the project's config on a free port; returns (proc, base_url)."""
    port = free_port()
    proc = start(
        "web",
        [str(BIN / "gunicorn"), "-c", str(ROOT / "stack" / "gunicorn.conf.py")],
        {**env, "WEB_PORT": str(port), "GUNICORN_WORKERS": str(workers),
         "GUNICORN_THREADS": str(threads)},
        log_dir,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: not proc.alive() or http_ok(base + "/healthz"), 30,
                   "gunicorn to answer /healthz")
        if not proc.alive():
            raise TimeoutError
    except TimeoutError:
        proc.stop()
        raise AssertionError(f"gunicorn did not start:\n{proc.output()[-3000:]}") from None
    return proc, base


def start_celery_worker(env: Mapping[str, str], log_dir: Path, concurrency: int = 2,
                        name: str = "worker", extra_args: tuple[str, ...] = ()) -> tuple[Proc, str]:
    """A real prefork Celery worker; returns (proc, metrics_url) once it serves metrics and
    has logged that it is ready."""
    port = free_port()
    proc = start(
        name,
        [str(BIN / "celery"), "-A", "worker.make_celery", "--quiet", "worker",
         f"--concurrency={concurrency}", "--pool=prefork", "--loglevel=INFO",
         f"--hostname={name}-{port}@%h", *extra_args],
        {**env, "WORKER_METRICS_PORT": str(port)},
        log_dir,
    )
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_until(lambda: not proc.alive() or (" ready." in proc.output() and http_ok(metrics_url)),
                   60, "the Celery worker to be ready")
        if not proc.alive():
            raise TimeoutError
    except TimeoutError:
        proc.stop()
        raise AssertionError(f"celery worker did not start:\n{proc.output()[-3000:]}") from None
    return proc, metrics_url
