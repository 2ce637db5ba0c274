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

os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(_settings.var_dir / "prometheus" / "worker")
)

from app import create_app  # noqa: E402  (after the multiprocess directory is set)
from worker import signals  # noqa: E402

flask_app = create_app({"SETTINGS": _settings, "KEEP_LOGGING": True})
celery_app = flask_app.extensions["celery"]
signals.connect(celery_app, _settings)
