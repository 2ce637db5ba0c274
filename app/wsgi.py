"""WSGI entry point for gunicorn: `gunicorn -c stack/gunicorn.conf.py app.wsgi:app`."""

from __future__ import annotations

from app import create_app
from app.observability.logging import configure_logging
from app.observability.names import WEB_SERVICE
from app.settings import settings_or_exit

settings = settings_or_exit(WEB_SERVICE)
# The process's logging belongs to its entry point, not to the factory tests call.
configure_logging(WEB_SERVICE, settings.log_level, settings.log_file, settings.instance_id(WEB_SERVICE))
app = create_app(settings=settings)
