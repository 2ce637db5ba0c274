"""WSGI entry point for gunicorn: `gunicorn -c stack/gunicorn.conf.py app.wsgi:app`."""

from __future__ import annotations

import sys

from app import create_app
from app.settings import SettingsError

try:
    app = create_app()
except SettingsError as exc:
    print(f"todo-web: configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
