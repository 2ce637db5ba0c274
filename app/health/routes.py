"""GET /healthz, /readyz, /healthz/background, /metrics."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from app.db import db
from app.health.tasks import ping
from app.observability.metrics import ProcessGroupCollector, exposition

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness: the process answers. Touches no dependency."""
    return jsonify({"status": "ok"}), 200


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: the database answers a trivial query."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:
        db.session.rollback()
        return jsonify({"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}), 503
    return jsonify({"status": "ok", "database": "ok"}), 200


def check_background(celery_app: Celery, timeout: float) -> tuple[bool, dict[str, Any]]:
    """Broker reachable and at least one worker answering a ping."""
    details: dict[str, Any] = {}
    try:
        with celery_app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            broadcast = "fanout" in conn.transport.implements.exchange_type
    except Exception as exc:
        details["broker"] = f"unreachable: {type(exc).__name__}"
        return False, details
    details["broker"] = "ok"
    try:
        if broadcast:
            replies = celery_app.control.ping(timeout=timeout) or []
            workers = sorted(name for reply in replies for name in reply)
        else:
            # Brokers without broadcast (the embedded SQLite transport): a ping task.
            workers = [ping.apply_async(expires=timeout).get(timeout=timeout)]
    except Exception as exc:
        details["workers"] = []
        details["error"] = f"no worker answered: {type(exc).__name__}"
        return False, details
    details["workers"] = workers
    if not workers:
        details["error"] = "no worker answered"
    return bool(workers), details


@bp.get("/healthz/background")
def background() -> tuple[Response, int]:
    """Background processing: 200 when the broker is up and a worker answers, else 503."""
    ok, details = check_background(
        current_app.extensions["celery"], current_app.config["BROKER_TIMEOUT"]
    )
    return jsonify({"status": "ok" if ok else "unavailable", **details}), 200 if ok else 503


_process_collector: ProcessGroupCollector | None = None


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition, aggregated over every gunicorn worker."""
    global _process_collector
    if _process_collector is None:
        # Under gunicorn the parent is the master: report it and all its workers.
        _process_collector = ProcessGroupCollector(os.getppid(), "master", "worker")
    body, content_type = exposition(_process_collector)
    return Response(body, content_type=content_type)
