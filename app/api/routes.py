"""CRUD for todos as JSON, with pagination."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, make_response, request, url_for

from app import idempotency
from app.api.openapi import openapi_document
from app.errors import ApiError
from app.todos import service
from app.todos.routes import json_body

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_PER_PAGE = 200


@bp.get("/todos")
def list_todos() -> tuple[Response, int]:
    """A page of todos: ?page=1&per_page=50, or the page after a cursor: ?cursor=<next>."""
    raw = request.args.get("per_page")
    try:
        per_page = int(raw) if raw else current_app.config["PAGE_SIZE"]
    except ValueError:
        raise ApiError(400, "per_page must be an integer") from None
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ApiError(400, f"per_page must be between 1 and {MAX_PER_PAGE}")
    cursor = request.args.get("cursor")
    if cursor is not None:
        if request.args.get("page") is not None:
            raise ApiError(400, "give page or cursor, not both")
        return jsonify(service.list_after(cursor, per_page).to_dict()), 200
    return jsonify(service.list_page(request.args.get("page"), per_page).to_dict()), 200


@bp.post("/todos")
@idempotency.idempotent
def create_todo() -> Response:
    """Create a todo from {"text": ...}; an Idempotency-Key makes a retry safe."""
    body = json_body()
    unknown = set(body) - {"text"}
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    todo = service.add_todo(body.get("text"))
    response = make_response(jsonify(todo.to_dict()), 201,
                             {"Location": url_for("api.get_todo", todo_id=todo.id)})
    return idempotency.commit(response)


@bp.get("/todos/<todo_id>")
def get_todo(todo_id: str) -> tuple[Response, int]:
    """One todo."""
    return jsonify(service.get_todo(todo_id).to_dict()), 200


@bp.route("/todos/<todo_id>", methods=["PATCH", "PUT"])
def update_todo(todo_id: str) -> tuple[Response, int]:
    """Change text and/or done."""
    body = json_body()
    if not body:
        raise ApiError(400, "nothing to change: give text and/or done")
    return jsonify(service.update_todo(todo_id, body).to_dict()), 200


@bp.delete("/todos/<todo_id>")
def delete_todo(todo_id: str) -> tuple[str, int]:
    """Delete a todo."""
    service.delete_todo(todo_id)
    return "", 204


@bp.get("/openapi.json")
def openapi() -> tuple[Response, int]:
    """The OpenAPI 3.1 description of this API."""
    return jsonify(openapi_document()), 200
