"""Errors: every failure becomes a clear answer with its request id, never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, make_response, render_template, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.observability.web import current_request_id

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A client or service error with an HTTP status and a message for the user."""

    def __init__(self, status: int, message: str, **details: object) -> None:
        """Describe the error."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def wants_html() -> bool:
    """True when the client is a browser asking for a page rather than an API client."""
    if request.path.startswith("/api/") or request.is_json:
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes[best] > request.accept_mimetypes[
        "application/json"
    ]


def error_response(status: int, message: str, **details: object) -> tuple[Response | str, int]:
    """A JSON body {error, request_id, ...} or, for browsers, the error page."""
    rid = current_request_id()
    if wants_html():
        return render_template("error.html", status=status, message=message, request_id=rid), status
    return jsonify({"error": message, "request_id": rid, **details}), status


def register(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response | str, int]:
        return error_response(exc.status, exc.message, **exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response | str, int]:
        status = exc.code or 500
        messages = {
            404: "not found",
            405: f"method {request.method} not allowed",
            413: f"request body too large (limit {app.config['MAX_CONTENT_LENGTH']} bytes)",
        }
        body, code = error_response(status, messages.get(status, exc.description or exc.name))
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            # RFC 9110: a 405 names the methods the resource does allow.
            return make_response(body, code, {"Allow": ", ".join(exc.valid_methods)}), code
        return body, code

    def _db_unavailable(exc: DBAPIError) -> tuple[Response | str, int]:
        cause = str(exc.orig or exc).strip().splitlines()
        log.error("database unavailable: %s", cause[0] if cause else type(exc).__name__)
        return error_response(503, "database unavailable, try again shortly")

    app.register_error_handler(OperationalError, _db_unavailable)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response | str, int]:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return _db_unavailable(exc)
        log.exception("unhandled error")
        return error_response(500, "internal error")
