"""Apply injected faults to requests, and let an instructor switch them over HTTP.

GET/PUT/DELETE /admin/faults exist only when FAULTS_TOKEN is set, and answer only to
`Authorization: Bearer <FAULTS_TOKEN>`; without the token they look like any unknown path.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, g, jsonify, request

from app.errors import ApiError
from app.faults import EXEMPT_ENDPOINTS, QUIET_KEY, FaultError, Switchboard, validate, write_faults
from app.observability import names
from app.observability.web import UNOBSERVED
from app.todos.routes import json_body

bp = Blueprint("admin", __name__, url_prefix="/admin")


def current_board() -> Switchboard:
    """This app's switchboard (the one its fault injection reads)."""
    board: Switchboard = current_app.extensions["faults"]
    return board


@bp.before_app_request
def inject_faults() -> None:
    """Add latency and/or answer 500 by design, as the switchboard says."""
    endpoint = request.url_rule.endpoint if request.url_rule else names.UNMATCHED_ENDPOINT
    if endpoint in EXEMPT_ENDPOINTS or endpoint.startswith("admin.") or endpoint == "static":
        return
    faults = current_board()
    if not faults.current():
        return
    faults.delay("latency", endpoint)
    failure = faults.should_fail("error_rate", endpoint)
    if failure is not None:
        if faults.quiet:  # seen only by its effect: the plain answer of any failure
            raise ApiError(500, "internal error")
        raise ApiError(500, "injected fault: this request failed by design", fault=failure.name)


def _authorize() -> None:
    token = current_app.config["SETTINGS"].faults_token
    if not token:
        raise ApiError(404, "not found")
    supplied = request.headers.get("Authorization", "")
    if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
        raise ApiError(401, "fault switchboard needs Authorization: Bearer <FAULTS_TOKEN>")


@bp.get("/faults")
def list_faults() -> tuple[Response, int]:
    """The faults in force."""
    _authorize()
    return _in_force()


def _in_force() -> tuple[Response, int]:
    """The faults in force, and whether they act quietly (then this request leaves no access
    line and no request metric: the blind incident's switches stay unseen)."""
    board = current_board()
    if board.quiet:
        setattr(g, UNOBSERVED, True)
    return jsonify({"faults": board.current(), "quiet": board.quiet}), 200


@bp.put("/faults")
def replace_faults() -> tuple[Response, int]:
    """Replace every fault with the JSON object sent ({} clears; "_quiet": true keeps them
    silent, as a blind incident does)."""
    _authorize()
    body = json_body()
    quiet = body.pop(QUIET_KEY, False)
    if not isinstance(quiet, bool):
        raise ApiError(400, f"{QUIET_KEY} is true or false, got {quiet!r}")
    try:
        faults = validate(body)
    except FaultError as exc:
        raise ApiError(400, str(exc)) from None
    if quiet:  # also the switch that turns quiet faults off
        setattr(g, UNOBSERVED, True)
    write_faults(current_board().path, faults, quiet=quiet)
    return _in_force()


@bp.delete("/faults")
def clear_faults() -> tuple[Response, int]:
    """Switch every fault off."""
    _authorize()
    write_faults(current_board().path, {})
    return _in_force()
