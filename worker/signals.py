"""Worker-side observability wired through Celery signals.

Run-side signals fire in the pool child that runs the task; worker_init and
worker_ready in the main process. Every receiver is connected with weak=False.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from celery import Celery, signals
from flask import Flask

from app import close_app
from app.db import close as close_db
from app.jobs import close_broker_connections
from app.observability import names
from app.observability.context import task_var
from app.observability.logging import configure_logging
from app.observability.metrics import (
    BACKGROUND_JOB_DURATION,
    BACKGROUND_JOBS,
    ProcessGroupCollector,
    declare_job_series,
    mark_process_dead,
    multiprocess_dir,
    reset_multiprocess_dir,
)
from app.observability.tracing import flush_tracing, setup_tracing
from app.settings import Settings, mask_url

log = logging.getLogger(__name__)
_started: dict[str, float] = {}


def _job_type(task: Any) -> str | None:
    """The job_type a task declares; tasks without one are not counted."""
    return getattr(task, "job_type", None)


def _request_id(task: Any) -> str:
    """The web request id that travelled in the message headers."""
    request = task.request
    value = getattr(request, names.TASK_REQUEST_ID_HEADER, None)
    if not value and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(names.TASK_REQUEST_ID_HEADER)
    return str(value or "")


def _say_through_logging() -> None:
    """Route Celery's shutdown notices ("worker: Warm shutdown") through our JSON logging.

    Celery prints them straight to the real stdout, the only plain-text lines a worker
    would otherwise write. Logging from a signal handler is safe here: the handler runs in
    the main thread between bytecodes, and logging's locks are re-entrant.
    """
    from celery.apps import worker as celery_worker

    say = logging.getLogger("celery.apps.worker")

    def safe_say(msg: str, f: Any = None) -> None:
        say.info(msg.strip())

    celery_worker.safe_say = safe_say


def _flush_then_die(signum: int, _frame: Any) -> None:
    """Pool child SIGTERM: flush spans (bounded), then take the default action."""
    flush_tracing(1000)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def connect(celery_app: Celery, settings: Settings, flask_app: Flask) -> None:
    """Connect the worker's logging, metrics and tracing receivers."""
    environment = settings.app_env

    def setup_logging(**_: Any) -> None:
        # Taking this signal stops Celery from replacing our JSON handlers.
        configure_logging(names.WORKER_SERVICE, settings.log_level, settings.log_file,
                          settings.instance_id(names.WORKER_SERVICE))

    # Celery sends setup_logging only after worker_init and its privilege check, whose
    # messages would otherwise reach stdout as plain text: configure JSON logging now.
    setup_logging()

    def worker_init(**_: Any) -> None:
        # Main process, before the pool forks: start from an empty metrics directory and
        # serve the aggregate of all children on a port of our own.
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        log.info(
            "starting todo-worker",
            extra={
                "app_env": settings.app_env,
                "database": mask_url(settings.database_url),
                "broker": mask_url(settings.celery_broker_url),
                "result_backend": mask_url(settings.celery_result_backend),
                "tracing": settings.tracing_enabled,
            },
        )
        _say_through_logging()
        directory = multiprocess_dir()
        if not directory:
            return
        reset_multiprocess_dir(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(ProcessGroupCollector(os.getpid(), "worker-main", "pool-child"))
        start_http_server(settings.metrics_port, addr="0.0.0.0", registry=registry)
        log.info("worker metrics on :%s/metrics", settings.metrics_port)

    def process_init(**_: Any) -> None:
        declare_job_series(
            names.JOB_TYPES,
            (names.JOB_STARTED, names.JOB_SUCCEEDED, names.JOB_FAILED, names.JOB_RETRIED),
            environment,
        )
        if setup_tracing(settings, names.WORKER_SERVICE):
            # A SIGTERM sent to the whole process group (Ctrl-C's cousin, systemd's
            # control-group kill, our tests) kills pool children with the default action,
            # skipping worker_process_shutdown: flush buffered spans first, then die of the
            # same signal so that the pool sees the same exit as before.
            signal.signal(signal.SIGTERM, _flush_then_die)

    def process_shutdown(**_: Any) -> None:
        flush_tracing()
        mark_process_dead(os.getpid())
        close_db(flask_app)

    def prerun(task_id: str, task: Any, **_: Any) -> None:
        job_type = _job_type(task)
        task_var.set({
            names.F_TASK_ID: task_id,
            names.F_JOB_TYPE: job_type or task.name,
            names.F_REQUEST_ID: _request_id(task),
        })
        if job_type:
            _started[task_id] = time.perf_counter()
            BACKGROUND_JOBS.labels(job_type, names.JOB_STARTED, environment).inc()

    def finished(task: Any, task_id: str | None, status: str) -> None:
        job_type = _job_type(task)
        if not job_type or task_id is None:
            return
        BACKGROUND_JOBS.labels(job_type, status, environment).inc()
        began = _started.pop(task_id, None)
        if began is not None:
            BACKGROUND_JOB_DURATION.labels(job_type, status, environment).observe(
                time.perf_counter() - began
            )

    def success(sender: Any, **_: Any) -> None:
        finished(sender, sender.request.id, names.JOB_SUCCEEDED)

    def failure(sender: Any, task_id: str, **_: Any) -> None:
        finished(sender, task_id, names.JOB_FAILED)

    def retry(sender: Any, request: Any, **_: Any) -> None:
        finished(sender, getattr(request, "id", None), names.JOB_RETRIED)

    def postrun(**_: Any) -> None:
        task_var.set(None)

    def worker_ready(**_: Any) -> None:
        # Main process, consuming: recover exports whose message the broker lost.
        from app.exports.tasks import requeue_stale_exports

        with flask_app.app_context():
            try:
                requeue_stale_exports(settings.stale_export_s)
            except Exception:
                log.exception("could not look for stale exports")
        # This process is done with the database: a pool child forked later must not
        # inherit (and at its exit close) a connection of ours.
        close_db(flask_app)

    def worker_shutdown(**_: Any) -> None:
        # Main process, after the pool stopped: close what the app still holds.
        close_app(flask_app)
        close_broker_connections()

    signals.worker_ready.connect(worker_ready, weak=False)
    signals.worker_shutdown.connect(worker_shutdown, weak=False)
    signals.setup_logging.connect(setup_logging, weak=False)
    signals.worker_init.connect(worker_init, weak=False)
    signals.worker_process_init.connect(process_init, weak=False)
    signals.worker_process_shutdown.connect(process_shutdown, weak=False)
    signals.task_prerun.connect(prerun, weak=False)
    signals.task_success.connect(success, weak=False)
    signals.task_failure.connect(failure, weak=False)
    signals.task_retry.connect(retry, weak=False)
    signals.task_postrun.connect(postrun, weak=False)
