"""Entry point for `celery -A worker.make_celery worker`: builds the Flask app and its Celery.

PROMETHEUS_MULTIPROC_DIR is fixed here, before prometheus_client is first imported, so that
every prefork pool child records into files the worker's /metrics server aggregates.
"""

from __future__ import annotations

import os

from app.observability.names import WORKER_SERVICE
from app.settings import settings_or_exit

_settings = settings_or_exit(WORKER_SERVICE)

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_settings.layout.metrics_dir("worker")))

# Imported only now: after the multiprocess directory is set.
from app import create_app  # noqa: E402
from app.observability.tracing import defer_tracing_until_fork  # noqa: E402
from worker import signals  # noqa: E402

# This main process only forks the pool: each child installs its own tracer provider.
defer_tracing_until_fork()

# The worker takes over logging itself (worker.signals), before Celery would.
flask_app = create_app(settings=_settings, service=WORKER_SERVICE)
celery_app = flask_app.extensions["celery"]
signals.connect(celery_app, _settings, flask_app)
