"""Start and stop the real processes the tests run against (gunicorn, Celery, ...), on the
stack library's process primitives (stack.processes)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from app.layout import PROJECT_ROOT
from stack import processes
from stack.config import BIN_DIR
from stack.processes import Proc, free_port, http_session, wait_until

__all__ = ["BIN", "ROOT", "Proc", "free_port", "http_ok", "start", "start_celery_worker",
           "start_gunicorn", "wait_until"]

ROOT = PROJECT_ROOT
BIN = BIN_DIR


def start(name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> Proc:
    """Start argv in its own process group with env added to ours; output to log_dir/<name>.out."""
    full_env = {**os.environ, **env}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if "PROMETHEUS_MULTIPROC_DIR" in env:
        full_env["PROMETHEUS_MULTIPROC_DIR"] = env["PROMETHEUS_MULTIPROC_DIR"]
    proc = processes.start(name, argv, full_env, ROOT, log_dir / f"{name}.out")
    proc.env = dict(env)
    return proc


def http_ok(url: str) -> bool:
    """True when url answers 200."""
    return http_session().get(url, timeout=2).status_code == 200


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
