"""Start one process a test stops, kills or restarts itself, through the stack library.

Stacks that run for a test or a module come from the fixtures of tests/support/plugin.py;
these helpers serve the tests that take services down one by one (tests/test_reliability.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.layout import PROJECT_ROOT
from stack import launch, processes
from stack.config import BIN_DIR, LabConfig
from stack.errors import StackError
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


def _one(service: str, env: Mapping[str, str], **options: Any) -> launch.Handle:
    """service alone, attached, in env's VAR_DIR on free ports; the caller stops it."""
    config = LabConfig.private(Path(env["VAR_DIR"]), env, **options)
    try:
        return launch.start_one(config, service)
    except StackError as exc:
        raise AssertionError(f"{service} did not start:\n{exc}") from None


def start_gunicorn(env: Mapping[str, str], workers: int = 2, threads: int = 4) -> tuple[Proc, str]:
    """Real gunicorn with the project's config on a free port; returns (proc, base_url)."""
    web = _one("web", {**env, "GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": str(threads)})
    return web, web.url


def start_celery_worker(env: Mapping[str, str], concurrency: int = 2,
                        extra_args: tuple[str, ...] = ()) -> tuple[Proc, str]:
    """A real prefork Celery worker; returns (proc, metrics_url) once it serves metrics and
    has logged that it is ready."""
    worker = _one("worker", env, worker_concurrency=concurrency,
                  worker_args=("--loglevel=INFO", f"--hostname=worker-{free_port()}@%h", *extra_args))
    return worker, worker.metrics_url
