"""Entry point for `celery -A worker.make_celery worker`: builds the Flask app and its Celery.

PROMETHEUS_MULTIPROC_DIR is fixed here, before prometheus_client is first imported, so that
every prefork pool child records into files the worker's /metrics server aggregates.
"""

from __future__ import annotations

import os
import sys

from app.settings import Settings, SettingsError

try:
    _settings = Settings.from_env()
except SettingsError as exc:  # a clear one-line message instead of a traceback
    print(f"todo-worker: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_settings.layout.metrics_dir("worker")))

# Imported only now: after the multiprocess directory is set.
from app import create_app
from app.observability.tracing import defer_tracing_until_fork
from worker import signals

# This main process only forks the pool: each child installs its own tracer provider.
defer_tracing_until_fork()

flask_app = create_app({"SETTINGS": _settings, "KEEP_LOGGING": True})
celery_app = flask_app.extensions["celery"]
signals.connect(celery_app, _settings, flask_app)
