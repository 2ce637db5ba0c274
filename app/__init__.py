"""The todo app: create_app() builds a fresh, fully observed Flask app; nothing is built on import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, request
from werkzeug.exceptions import Forbidden

from app.observability.names import WEB_SERVICE
from app.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "close_app", "create_app"]

def create_app(test_config: Mapping[str, Any] | None = None, *, settings: Settings | None = None,
               service: str = WEB_SERVICE) -> Flask:
    """Build the app from settings (the environment's by default), then test_config on top.

    As in Flask's tutorial: test_config holds Flask config overrides (TESTING, ...). The
    process's logging is its entry point's business (app.wsgi, worker.make_celery).
    """
    from app import db, errors
    from app.admin import bp as admin_bp
    from app.api import bp as api_bp
    from app.exports import bp as exports_bp
    from app.faults import switchboard
    from app.health import bp as health_bp
    from app.jobs import celery_init_app
    from app.observability import names, web
    from app.observability.tracing import instrument_engine, setup_tracing
    from app.todos import bp as todos_bp

    settings = settings or Settings.from_env()

    from app.validation import Request

    app = Flask(__name__)
    # Every JSON and form body is checked before it is parsed (size, depth, UTF-8).
    app.request_class = Request
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=db.engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_content_length,
        APP_ENV=settings.app_env,
        EXPORT_DIR=str(settings.export_dir),
        PAGE_SIZE=settings.page_size,
        BROKER_TIMEOUT=settings.broker_timeout_s,
        SETTINGS=settings,
        JSON_SORT_KEYS=False,
    )
    app.config.from_mapping(test_config or {})

    tracing = setup_tracing(settings, names.WEB_SERVICE)
    if tracing:
        from app.observability.tracing import instrument_flask

        # First, so that the server span is current in every other hook (request id,
        # fault injection) and still current when their teardown runs.
        instrument_flask(app)

    db.init_app(app)
    celery_init_app(app, settings)
    web.init_app(
        app, settings.app_env, settings.trusted_proxies, observe=settings.observability_enabled
    )
    errors.register(app)

    @app.before_request
    def _guard() -> None:
        """Refuse oversized bodies up front and cross-site form posts."""
        length = request.content_length
        if length is not None and length > app.config["MAX_CONTENT_LENGTH"]:
            abort(413)
        # Werkzeug cuts a chunked body at the limit silently (a truncated body, then a
        # misleading 400): read it now (cached for the view) and refuse it if it reached it.
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if length is None and chunked and len(request.get_data(cache=True)) >= app.config[
                "MAX_CONTENT_LENGTH"]:
            abort(413)
        origin = request.headers.get("Origin")
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
        if unsafe and origin and urlsplit(origin).netloc != request.host:
            raise Forbidden("cross-site request refused")

    # service: the process this app serves (the worker builds one too), for its replica's faults.
    app.extensions["faults"] = switchboard(settings.faults_file, settings.instance_id(service))
    for blueprint in (todos_bp, api_bp, exports_bp, health_bp, admin_bp):
        app.register_blueprint(blueprint)

    if tracing:
        with app.app_context():
            instrument_engine(db.db.engine)
    return app


def close_app(app: Flask) -> None:
    """Close the connections the app holds open (its database pool); it serves no more after."""
    # For a process that is done with the app: a gunicorn worker exiting, a Celery worker
    # shutting down, a test's teardown. The pool would otherwise keep them until the
    # collector (or the exit) drops them. The broker's connections are kombu's, shared by
    # the process (app.jobs.close_broker_connections); the embedded one holds none.
    from app import db

    db.close(app)
