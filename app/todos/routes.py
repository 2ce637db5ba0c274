"""Routes of the original contract. Forms post and redirect (works without JavaScript);
JSON requests get JSON answers."""

from __future__ import annotations

import uuid
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers.response import Response as BaseResponse

from app import idempotency
from app.errors import ApiError
from app.exports.routes import get_export
from app.models import TEXT_MAX, Export
from app.observability.tracing import current_trace_id
from app.observability.web import current_request_id
from app.todos import service
from app.todos.rows import render_rows
from app.validation import shown

bp = Blueprint("todos", __name__)


def is_form_post() -> bool:
    """True for a browser form submission (as opposed to a JSON or empty-bodied API call)."""
    return request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")


def form_page() -> str | None:
    """The list page a form post came from (its `page` field), if it names one."""
    try:
        page = request.form.get("page", "")
    except ApiError:
        return None  # a body that is not UTF-8: the message says so
    return page if page.isdigit() else None


def back_to_list() -> BaseResponse:
    """Redirect a form post back to the page of the list it came from (400 if the form's
    body is not UTF-8)."""
    page = request.form.get("page", "")
    return redirect(url_for("todos.index", page=page if page.isdigit() else None), code=303)


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    if not request.is_json:
        raise ApiError(415, "expected a JSON body (Content-Type: application/json)")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "malformed JSON body")
    if not isinstance(data, dict):
        raise ApiError(400, "JSON body must be an object")
    return data


def find_export(raw: str | None) -> Export | None:
    """The export named in the page's ?export= parameter, if it exists (else nothing to show)."""
    if not raw:
        return None
    try:
        return get_export(raw)
    except ApiError:
        return None


def row_url_prefixes(page: int) -> dict[str, str]:
    """URL prefixes of the row actions, built once per page: a row adds its id to one."""
    def prefix(endpoint: str) -> str:
        return url_for(endpoint, todo_id="0").removesuffix("0")

    return {
        "toggle": prefix("todos.toggle"), "delete": prefix("todos.delete"), "edit": prefix("todos.edit"),
        # A row's edit link without JavaScript: this page with that row's edit form open. The
        # path is absolute: the page may be the answer to a form post (/add, /edit/<id>).
        "edit_link": url_for("todos.index", page=page if page > 1 else None, edit="0").removesuffix("0"),
    }


def requested_edit_id() -> int | None:
    """The todo whose edit form the page opens (?edit=<id>: the edit link without JavaScript)."""
    raw = request.args.get("edit", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 11 else None


def render_list(
    error: str | None = None,
    text: str = "",
    status: int = 200,
    page_arg: str | None = None,
    edit_id: int | None = None,
    edit_error: str | None = None,
    edit_text: str = "",
) -> tuple[str, int]:
    """The list page, optionally with a form error (add or edit) and the text the user typed."""
    page = service.list_page(
        page_arg if page_arg is not None else request.args.get("page"),
        current_app.config["PAGE_SIZE"], brief=True,
    )
    if edit_id is None:
        edit_id = requested_edit_id()
        if edit_id is not None:
            edit_text = next((t.text for t in page.items if t.id == edit_id), "")
    urls = row_url_prefixes(page.page or 1)
    rows = render_rows(page.items, urls, page.page, edit_id, edit_text, edit_error or "")
    html = render_template(
        "index.html", page=page, urls=urls, rows=rows, error=error, text=text,
        request_id=current_request_id(), trace_id=current_trace_id(),
        export=find_export(request.args.get("export")), watch=request.args.get("watch") == "1",
        text_max=TEXT_MAX, idempotency_field=idempotency.FORM_FIELD,
        # A fresh key per page: a form resubmitted after a lost answer is not added twice.
        idempotency_key=str(uuid.uuid4()),
    )
    return html, status


@bp.get("/")
def index() -> tuple[str, int]:
    """The todo list (server-rendered, paginated)."""
    return render_list()


@bp.post("/add")
@idempotency.idempotent
def add() -> BaseResponse | tuple[str | Response, int]:
    """Add a todo from the form field `task` (or JSON {"task": ...}); an Idempotency-Key
    (header, or the page's hidden field) makes a retry safe."""
    if request.is_json:
        todo = service.add_todo(json_body().get("task"))
        return idempotency.commit(make_response(jsonify(todo.to_dict()), 201))
    raw = ""
    try:
        raw = request.form.get("task", "")
        service.add_todo(raw)
    except ApiError as exc:
        if exc.status == 400:
            return render_list(error=exc.message, text=shown(raw[:600]), status=400)
        raise
    return idempotency.commit(redirect(url_for("todos.index"), code=303))


@bp.post("/delete/<todo_id>")
def delete(todo_id: str) -> BaseResponse | tuple[Response, int]:
    """Delete a todo."""
    # The answer is made before the write: a form that cannot be read changes nothing.
    answer = back_to_list() if is_form_post() else None
    service.delete_todo(todo_id)
    if answer is not None:
        return answer
    return jsonify({"deleted": service.parse_id(todo_id)}), 200


@bp.post("/toggle/<todo_id>")
def toggle(todo_id: str) -> BaseResponse | tuple[Response, int]:
    """Flip done/not done."""
    answer = back_to_list() if is_form_post() else None
    todo = service.toggle_todo(todo_id)
    if answer is not None:
        return answer
    return jsonify(todo.to_dict()), 200


@bp.post("/edit/<todo_id>")
def edit(todo_id: str) -> BaseResponse | tuple[Response | str, int]:
    """Change a todo's text (JSON {"text": ...} or form field `text`)."""
    if is_form_post():
        raw = ""
        try:
            raw = request.form.get("text", "")
            service.update_todo(todo_id, {"text": raw})
        except ApiError as exc:
            if exc.status == 400:
                # The message goes next to the edit field of this todo, which stays open.
                return render_list(
                    status=400, page_arg=form_page(),
                    edit_id=service.parse_id(todo_id), edit_error=exc.message,
                    edit_text=shown(raw[:600]),
                )
            raise
        return back_to_list()
    body = json_body()
    if "text" not in body:
        raise ApiError(400, "missing field: text")
    todo = service.update_todo(todo_id, {"text": body["text"]})
    return jsonify(todo.to_dict()), 200


@bp.post("/reorder")
def reorder() -> tuple[Response, int]:
    """Reorder todos: JSON {"order": [ids]}."""
    order = service.reorder(json_body().get("order"))
    return jsonify({"order": order}), 200
