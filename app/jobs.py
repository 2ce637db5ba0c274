"""Background jobs from the app's side: Celery bound to the Flask app, and publishing a task.

The celery_init_app pattern of Flask's Celery example. The worker process (worker/) starts
Celery on this binding; the app never imports the worker.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.result import AsyncResult
from flask import Flask
from kombu import pools
from sqlalchemy.pool import NullPool

from app.observability import names
from app.observability.context import request_id_var
from app.observability.metrics import BACKGROUND_JOBS
from app.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings derived from the app's settings."""
    timeout = settings.broker_timeout_s
    transport_options: dict[str, Any] = {}
    result_engine_options: dict[str, Any] = {}
    if settings.celery_broker_url.startswith("sqla+sqlite"):
        # Web workers and pool children share the broker file: wait on locks, don't fail.
        # kombu keeps one engine per broker URL for the life of the process and never
        # disposes it: without a pool, each connection is closed when its transaction ends,
        # so none is left open between polls or at shutdown (opening a file costs ~0.1 ms).
        transport_options.update(connect_args={"timeout": 30}, poolclass=NullPool)
    elif settings.celery_broker_url.startswith("redis"):
        transport_options.update(
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            # A message whose worker died un-acked is handed out again after this long.
            visibility_timeout=settings.visibility_timeout_s,
        )
    if settings.celery_result_backend.startswith("db+sqlite"):
        # The same for the result store: Celery keeps a pooled engine in each pool child
        # and has no hook that disposes it.
        result_engine_options["poolclass"] = NullPool
    return {
        "broker_url": settings.celery_broker_url,
        "result_backend": settings.celery_result_backend,
        "database_engine_options": result_engine_options,
        "broker_transport_options": transport_options,
        "broker_connection_timeout": timeout,
        "broker_connection_retry_on_startup": True,
        "redis_socket_connect_timeout": timeout,
        "redis_socket_timeout": timeout,
        # Publishing fails fast (bounded) when the broker is down: the web answers 503.
        "task_publish_retry_policy": {
            "max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1,
        },
        # At-least-once: ack after the task ran, requeue when a pool child dies mid-task.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 24 * 3600,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_default_queue": "celery",
    }


class ConfiguredCelery(Celery):
    """A Celery app that uses the broker and result store it is configured with.

    Celery's settings read CELERY_BROKER_URL (and its _READ_ and _WRITE_ forms) and
    CELERY_RESULT_BACKEND from the environment *ahead of* the configuration
    (celery/app/utils.py, Settings.broker_url): a shell that exported them would send an app
    built for another broker to the exported one. Here the app's own settings, which read the
    same variables once, are what every connection and the result backend use.
    """

    def connection_for_read(self, url: str | None = None, **kwargs: Any) -> Any:
        """The consuming connection, to the configured broker."""
        return super().connection_for_read(url or self.conf.get("broker_url"), **kwargs)

    def connection_for_write(self, url: str | None = None, **kwargs: Any) -> Any:
        """The publishing connection, to the configured broker."""
        return super().connection_for_write(url or self.conf.get("broker_url"), **kwargs)

    def connection(self, hostname: str | None = None, *args: Any, **kwargs: Any) -> Any:
        """Celery's older connection entry point, to the configured broker as well."""
        return super().connection(hostname or self.conf.get("broker_url"), *args, **kwargs)

    def _get_backend(self) -> Any:
        """The configured result store (not the environment's CELERY_RESULT_BACKEND)."""
        configured: str | None = self.conf.get("result_backend")
        if configured:
            self.backend_cls = configured
        return super()._get_backend()


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Create the Celery app whose tasks run inside app.app_context()."""

    class FlaskTask(Task):
        """A task that runs in the Flask app context (database session, config)."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = ConfiguredCelery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(celery_config(settings))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def close_broker_connections() -> None:
    """Close the broker connections of every Celery app of this process: at its exit only."""
    # kombu pools them per broker URL for the whole process, shared by every Celery app
    # (one per create_app): closing them for one app would break the others.
    pools.reset()


def enqueue(task: Task, *args: Any, environment: str, task_id: str | None = None) -> AsyncResult:
    """Publish task(*args) with the current request id; count it once it is on the broker.

    Raises kombu's OperationalError when the broker cannot be reached within the
    publish retry policy (a few seconds), so the caller can answer 503.
    """
    result = task.apply_async(
        args=args, task_id=task_id, headers={names.TASK_REQUEST_ID_HEADER: request_id_var.get() or ""}
    )
    BACKGROUND_JOBS.labels(task.job_type, names.JOB_ENQUEUED, environment).inc()
    return result
