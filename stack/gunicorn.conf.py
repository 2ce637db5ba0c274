"""gunicorn settings for the todo web app (used by the Dockerfile and the `lab` launcher).

Workers are gthread (GUNICORN_WORKERS x GUNICORN_THREADS). Metrics are multiprocess:
PROMETHEUS_MULTIPROC_DIR is fixed before any worker imports prometheus_client, emptied
when the master starts, and a dead worker's live gauges are dropped in child_exit.
Telemetry is set up after fork; the app is never preloaded in the master.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from app.observability.logging import as_json_handler
from app.observability.names import WEB_SERVICE
from app.settings import settings_or_exit

_settings = settings_or_exit(WEB_SERVICE)

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_settings.layout.metrics_dir("web")))

wsgi_app = "app.wsgi:app"
bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{_settings.web_port}")
workers = _settings.gunicorn_workers
threads = _settings.gunicorn_threads
worker_class = "gthread"
preload_app = False
timeout = 30
graceful_timeout = 20
keepalive = 5
# Slow clients: gunicorn sits behind Caddy, which buffers; cap header sizes anyway.
limit_request_line = 8190
limit_request_fields = 100
# Our JSON access log (one line per request, with request id) replaces gunicorn's.
accesslog = None
proxy_allow_ips = ",".join(_settings.trusted_proxies)
forwarded_allow_ips = proxy_allow_ips
# gunicorn >= 24 opens a control socket at one path per user ($HOME/.gunicorn): every
# gunicorn of that user (tests start several at once) would fight over it. Nothing of
# ours uses it.
control_socket_disable = True


class JsonLogger(Logger):  # type: ignore[misc]
    """gunicorn's own messages (boot, worker exits) as JSON lines too."""

    def setup(self, cfg: Any) -> None:
        """Let gunicorn build its handlers, then give them our formatter."""
        super().setup(cfg)
        for handler in self.error_log.handlers:
            as_json_handler(handler, WEB_SERVICE, _settings.instance_id(WEB_SERVICE))


logger_class = JsonLogger


def on_starting(server: Any) -> None:
    """Master start: say what we run against, empty the metrics directory."""
    from app.observability.metrics import reset_multiprocess_dir
    from app.observability.tracing import defer_tracing_until_fork
    from app.settings import mask_url

    server.log.info(
        "starting todo-web",
        extra={
            "app_env": _settings.app_env,
            "database": mask_url(_settings.database_url),
            "broker": mask_url(_settings.celery_broker_url),
            "workers": workers,
            "threads": threads,
            "tracing": _settings.tracing_enabled,
        },
    )
    reset_multiprocess_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    # Should the app ever be preloaded, the master must still not own a tracer provider.
    defer_tracing_until_fork()


def post_fork(server: Any, worker: Any) -> None:
    """Worker start: tracing is created here, after fork, never in the master; the job
    counters this process publishes start at 0."""
    from app.observability import names
    from app.observability.metrics import declare_job_series
    from app.observability.tracing import setup_tracing

    setup_tracing(_settings, WEB_SERVICE)
    declare_job_series(names.JOB_TYPES, (names.JOB_ENQUEUED,), _settings.app_env)


def post_worker_init(worker: Any) -> None:
    """Worker ready (the app is loaded): tune the cyclic garbage collector.

    With Python's default threshold (700 net allocations) a collection starts inside
    nearly every request that renders a page; each one promotes that request's live
    objects, and the promoted ones soon set off full collections of the whole heap.
    Measured in bench/findings.md: on GET / about 300 us of CPU per request without
    tracing and 700 us with it, cut to tens of microseconds. The app's startup objects
    are never garbage: gc.freeze() moves them out of every later collection.
    """
    import gc

    if _settings.gc_gen0_threshold:
        gc.freeze()
        gc.set_threshold(_settings.gc_gen0_threshold, *gc.get_threshold()[1:])


def worker_exit(server: Any, worker: Any) -> None:
    """Worker exit: flush buffered spans, close the app's database and broker connections."""
    from flask import Flask

    from app import close_app
    from app.jobs import close_broker_connections
    from app.observability.tracing import flush_tracing

    flush_tracing(2000)
    app = getattr(worker, "wsgi", None)  # unset when the app failed to load
    if isinstance(app, Flask):
        close_app(app)
    close_broker_connections()


def child_exit(server: Any, worker: Any) -> None:
    """Master: a worker died; drop its live-gauge files."""
    from app.observability.metrics import mark_process_dead

    mark_process_dead(worker.pid)
