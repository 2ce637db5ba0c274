"""The room service: learners' labs push verdicts, the facilitator's page reads the room.

    POST /api/join        X-Room-Code: CODE   {"learner": ID, "name": NAME}
    POST /api/verdicts    X-Room-Code: CODE   {"learner": ID, "name": NAME, "verdicts": [...]}
    GET  /api/room        Authorization: Bearer TOKEN   the page's data (?since=V: 204 when unchanged)
    GET  /api/export.csv  Authorization: Bearer TOKEN (or ?token=)   one row per learner and exercise
    GET  /                the facilitator's page (no data in it: it asks /api/room with the token)
    GET  /healthz

A wrong or missing code or token is 401; a body over MAX_BODY bytes 413; a body that is not
the JSON described is 400 saying which field; every error is the JSON shape the todo app
uses (`{"error": ..., "request_id": ...}`). The page's assets are served from here (no CDN:
a venue network may have no internet) under a Content-Security-Policy that allows only them.
"""

from __future__ import annotations

import csv
import hmac
import io
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from room.store import INCIDENT, INCIDENT_STAGES, RoomStore, Verdict

MAX_BODY = 256 * 1024
MAX_BATCH = 200
_ID = re.compile(r"[A-Za-z0-9_.:-]{8,64}")
_EXERCISE = re.compile(r"\d{1,2}\.\d{1,2}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
STATUSES = ("right", "wrong", "unanswered")
SOURCES = ("check", "progress", "incident")
# Characters a spreadsheet reads as the start of a formula (CSV injection).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class BadRequest(Exception):
    """A body that is not what the route takes; the message names the field."""


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool = True) -> str:
    value = body.get(name, "" if not required else None)
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    value = value.strip()
    if required and not value:
        raise BadRequest(f"{name} is empty")
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    if any(ord(ch) < 32 for ch in value):
        raise BadRequest(f"{name} holds control characters")
    return value


def _learner(body: dict[str, Any]) -> tuple[str, str]:
    learner = body.get("learner")
    if not isinstance(learner, str) or not _ID.fullmatch(learner):
        raise BadRequest("learner must be the id `lab room join` gave (8 to 64 letters, digits, _.:-)")
    return learner, _text(body, "name", 60)


def _verdict(item: object, index: int) -> Verdict:
    where = f"verdicts[{index}]"
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object")
    vid = item.get("id")
    if not isinstance(vid, str) or not _ID.fullmatch(vid):
        raise BadRequest(f"{where}.id must be 8 to 64 letters, digits or _.:-")
    exercise = item.get("exercise")
    if not isinstance(exercise, str) or not (exercise == INCIDENT or _EXERCISE.fullmatch(exercise)):
        raise BadRequest(f"{where}.exercise must be an exercise id such as 2.3, or {INCIDENT!r}")
    status = item.get("status")
    if status not in STATUSES:
        raise BadRequest(f"{where}.status must be one of {', '.join(STATUSES)}")
    source = item.get("source", "check")
    if source not in SOURCES:
        raise BadRequest(f"{where}.source must be one of {', '.join(SOURCES)}")
    attempt = item.get("attempt", 0)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= 10_000:
        raise BadRequest(f"{where}.attempt must be an integer from 0 to 10000")
    detail = item.get("detail", {})
    if not isinstance(detail, dict) or len(str(detail)) > 2000:
        raise BadRequest(f"{where}.detail must be an object of at most 2000 characters")
    if exercise == INCIDENT and detail.get("stage") not in INCIDENT_STAGES:
        raise BadRequest(f"{where}.detail.stage must be one of {', '.join(INCIDENT_STAGES)}")
    try:
        return Verdict(vid, exercise, str(status), module=_text(item, "module", 40, required=False),
                       mistake=_text(item, "mistake", 80, required=False),
                       advice=_text(item, "advice", 500, required=False), attempt=attempt,
                       source=str(source), at=_text(item, "at", 40, required=False), detail=detail)
    except BadRequest as exc:
        raise BadRequest(f"{where}.{exc}") from None


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA) else value


def create_app(store: RoomStore, catalogue: Sequence[tuple[str, str]] = ()) -> Flask:
    """The service over one room's store; catalogue: (exercise, module) in workshop order."""
    service = Flask(__name__, static_folder=str(Path(__file__).parent / "static"),
                    template_folder=str(Path(__file__).parent / "templates"))
    service.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    code, token = store.secret("code"), store.secret("token")

    def error(status: int, message: str) -> tuple[Response, int]:
        return jsonify({"error": message, "request_id": g.get("request_id", "")}), status

    def json_body() -> dict[str, Any]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
        return body

    def given(header: str, prefix: str = "", query: str | None = None) -> str:
        value = request.headers.get(header, "")
        if prefix and value.startswith(prefix):
            value = value[len(prefix):]
        return value or (request.args.get(query, "") if query else "")

    def needs(secret: str, supplied: Callable[[], str], what: str) -> Callable[..., Any]:
        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            def guarded(*args: Any, **kwargs: Any) -> Any:
                if not hmac.compare_digest(supplied().encode(), secret.encode()):
                    return error(401, f"wrong or missing {what}")
                return view(*args, **kwargs)
            guarded.__name__ = view.__name__
            return guarded
        return decorate

    learner_code = needs(code, lambda: given("X-Room-Code"), "room code (header X-Room-Code)")
    facilitator = needs(token, lambda: given("Authorization", "Bearer ", "token"),
                        "facilitator token (Authorization: Bearer TOKEN)")

    @service.before_request
    def _request_id() -> None:
        asked = request.headers.get("X-Request-ID", "")
        g.request_id = asked if _REQUEST_ID.fullmatch(asked) else uuid.uuid4().hex

    @service.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @service.errorhandler(BadRequest)
    def _bad(exc: BadRequest) -> tuple[Response, int]:
        return error(400, str(exc))

    @service.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        messages = {404: "not found", 405: f"method {request.method} not allowed",
                    413: f"request body too large (limit {MAX_BODY} bytes)"}
        return error(status, messages.get(status, exc.description or exc.name))

    @service.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        service.logger.exception("unexpected error in %s %s", request.method, request.path)
        return error(500, "the room service failed; the facilitator sees why in its output")

    @service.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @service.get("/")
    def page() -> str:
        return render_template("room.html")

    @service.post("/api/join")
    @learner_code
    def join() -> tuple[Response, int]:
        learner, name = _learner(json_body())
        store.join(learner, name)
        return jsonify({"learner": learner, "name": name}), 200

    @service.post("/api/verdicts")
    @learner_code
    def verdicts() -> tuple[Response, int]:
        body = json_body()
        learner, name = _learner(body)
        items = body.get("verdicts")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise BadRequest(f"verdicts must be a list of 1 to {MAX_BATCH} verdicts")
        parsed = [_verdict(item, i) for i, item in enumerate(items)]
        stored, known = store.add(learner, name, parsed)
        return jsonify({"stored": stored, "already": known, "ids": [v.id for v in parsed]}), 200

    @service.get("/api/room")
    @facilitator
    def room() -> Response | tuple[str, int]:
        # The minute is part of the version: "stuck for ten minutes" changes with time alone.
        version = ".".join(map(str, (*store.version(), int(time.time() // 60))))
        if request.args.get("since") == version:
            return "", 204
        return jsonify({**store.view(catalogue), "version": version})

    @service.get("/api/export.csv")
    @facilitator
    def export() -> Response:
        out = io.StringIO()
        columns = ("learner", "learner_id", "exercise", "module", "status", "attempts", "mistake")
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        for row in store.export_rows(catalogue):
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return Response(out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=room.csv"})

    return service
