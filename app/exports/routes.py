"""POST /export, GET /tasks/<id>, GET /download/<id>."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    request,
    send_file,
    url_for,
)
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from werkzeug.wrappers.response import Response as BaseResponse

from app import idempotency
from app.db import db
from app.errors import ApiError
from app.exports.tasks import export_path, export_todos
from app.jobs import enqueue
from app.models import Export, utcnow
from app.observability.web import current_request_id

bp = Blueprint("exports", __name__)
log = logging.getLogger(__name__)


def get_export(task_id: str) -> Export:
    """The export with this id, or 404 (ids are UUIDs; anything else is unknown)."""
    try:
        canonical = str(uuid.UUID(task_id))
    except ValueError:
        raise ApiError(404, "unknown export task id") from None
    export = db.session.get(Export, canonical)
    if export is None:
        raise ApiError(404, "unknown export task id")
    return export


@bp.post("/export")
@idempotency.idempotent
def start_export() -> BaseResponse:
    """Record an export and queue it; 202 with its task id (a form post: back to the page).
    An Idempotency-Key makes a retry safe: the first export's answer, no second export."""
    export = Export(id=str(uuid.uuid4()), status="queued", request_id=current_request_id())
    db.session.add(export)
    answer: BaseResponse
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # A browser without JavaScript: the page shows the export's progress, refreshing itself.
        answer = redirect(url_for("todos.index", export=export.id, watch=1, _anchor="export"), code=303)
    else:
        status_url = f"/tasks/{export.id}"
        answer = jsonify({"task_id": export.id, "status_url": status_url})
        answer.status_code = 202
        answer.headers["Location"] = status_url
    # Committed before it is queued: the worker must find the row.
    idempotency.commit(answer)
    try:
        enqueue(export_todos, export.id, task_id=export.id, environment=current_app.config["APP_ENV"])
    except (BrokerError, RedisError, OSError) as exc:
        export.status = "failed"
        export.error = "broker unavailable"
        export.finished_at = utcnow()
        idempotency.forget()  # nothing was queued: a retry with the key must try again
        db.session.commit()
        log.error("export not queued: broker unavailable (%s)", type(exc).__name__)
        raise ApiError(503, "background jobs unavailable: broker unreachable") from None
    return answer


@bp.get("/tasks/<task_id>")
def task_state(task_id: str) -> tuple[Response, int]:
    """The state of an export: queued, running, succeeded or failed."""
    return jsonify(get_export(task_id).to_dict()), 200


@bp.get("/download/<task_id>")
def download(task_id: str) -> Response:
    """The finished CSV; 409 while the export is not done."""
    export = get_export(task_id)
    path = export_path(Path(current_app.config["EXPORT_DIR"]), export.id)
    if export.status != "succeeded":
        raise ApiError(409, f"export is {export.status}, not ready for download", state=export.status)
    if not path.is_file():
        raise ApiError(410, "export file is gone; start a new export")
    return send_file(
        path, mimetype="text/csv", as_attachment=True, download_name=f"todos-{export.id}.csv",
        max_age=0,
    )
