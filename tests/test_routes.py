"""The route contract, as a user of the page, the original curl examples and the API sees it.

Runs on PostgreSQL + Redis and on the embedded SQLite defaults.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient


def error_of(response) -> str:  # type: ignore[no-untyped-def]
    """The error message of a JSON error answer, checking its shape."""
    body = response.get_json()
    assert set(body) >= {"error", "request_id"}, body
    assert body["request_id"] == response.headers["X-Request-ID"]
    return str(body["error"])


def texts(client: FlaskClient) -> list[str]:
    """The todo texts in list order, as the API shows them."""
    return [t["text"] for t in client.get("/api/todos?per_page=200").get_json()["items"]]


def test_empty_list_shows_empty_state(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "Nothing to do yet" in page.get_data(as_text=True)


def test_add_from_form_redirects_and_lists_it(client: FlaskClient) -> None:
    response = client.post("/add", data={"task": "  water the plants  "})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/")
    page = client.get("/").get_data(as_text=True)
    assert "water the plants" in page
    assert texts(client) == ["water the plants"]


def test_task_html_is_escaped_in_the_page(client: FlaskClient) -> None:
    client.post("/add", data={"task": "<script>alert(1)</script>"})
    page = client.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("task", "message"),
    [("", "must not be empty"), ("   \t\n ", "must not be empty"), ("x" * 501, "at most 500")],
)
def test_bad_form_input_rerenders_with_a_message(client: FlaskClient, task: str, message: str) -> None:
    response = client.post("/add", data={"task": task})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert texts(client) == []


def test_text_of_exactly_500_characters_is_accepted(client: FlaskClient) -> None:
    assert client.post("/add", data={"task": "y" * 500}).status_code == 303
    assert texts(client) == ["y" * 500]


def test_toggle_flips_done(client: FlaskClient, add_todo) -> None:  # type: ignore[no-untyped-def]
    todo = add_todo("read a book")
    first = client.post(f"/toggle/{todo['id']}")
    assert first.status_code == 200 and first.get_json()["done"] is True
    second = client.post(f"/toggle/{todo['id']}")
    assert second.get_json()["done"] is False


def test_edit_changes_text(client: FlaskClient, add_todo) -> None:  # type: ignore[no-untyped-def]
    todo = add_todo("draft")
    response = client.post(f"/edit/{todo['id']}", json={"text": " final "})
    assert response.status_code == 200
    assert response.get_json()["text"] == "final"
    assert texts(client) == ["final"]


def test_delete_removes_the_todo(client: FlaskClient, add_todo) -> None:  # type: ignore[no-untyped-def]
    keep, gone = add_todo("keep"), add_todo("gone")
    response = client.post(f"/delete/{gone['id']}")
    assert response.status_code == 200
    assert texts(client) == ["keep"]
    assert client.post(f"/delete/{gone['id']}").status_code == 404
    assert keep["id"] != gone["id"]


def test_form_posts_work_without_javascript(client: FlaskClient, add_todo) -> None:  # type: ignore[no-untyped-def]
    todo = add_todo("form user")
    toggled = client.post(f"/toggle/{todo['id']}", data={"page": "1"})
    assert toggled.status_code == 303
    assert client.get(f"/api/todos/{todo['id']}").get_json()["done"] is True
    deleted = client.post(f"/delete/{todo['id']}", data={"page": "1"})
    assert deleted.status_code == 303
    assert texts(client) == []


def test_rows_post_to_their_own_urls_and_the_edit_link_opens_that_rows_form(
    client: FlaskClient, add_todo  # type: ignore[no-untyped-def]
) -> None:
    """Without JavaScript: each row's buttons post to its URLs; ?edit=<id> opens its edit form."""
    first, second = add_todo("first"), add_todo("second")
    page = client.get("/").get_data(as_text=True)
    for todo in (first, second):
        assert f'formaction="/toggle/{todo["id"]}"' in page
        assert f'formaction="/delete/{todo["id"]}"' in page
        assert f'href="/?edit={todo["id"]}#edit-text"' in page
    assert '<form method="post" action="/edit/' not in page  # no row's edit form is open
    opened = client.get(f"/?edit={second['id']}").get_data(as_text=True)
    assert opened.count('<form method="post" action="/edit/') == 1
    assert f'action="/edit/{second["id"]}"' in opened
    assert 'value="second"' in opened
    # An id that is not on the page opens nothing, and a bad one is ignored.
    for other in ("999999", "x", "-1", "9" * 40, "²"):
        page = client.get(f"/?edit={other}").get_data(as_text=True)
        assert '<form method="post" action="/edit/' not in page


def test_a_page_of_fifty_todos_stays_light(client: FlaskClient, app) -> None:  # type: ignore[no-untyped-def]
    """50 todos of 40-odd characters: at most 60 KiB of HTML (it was 120 KiB)."""
    from app.db import db
    from app.models import Todo

    with app.app_context():
        db.session.add_all([Todo(text=f"row {n} " + "x" * 40, position=n) for n in range(1, 51)])
        db.session.commit()
    page = client.get("/").get_data()
    assert page.count(b'<li class="todo') == 50
    assert len(page) <= 60 * 1024, len(page)


def test_reorder_puts_todos_in_the_given_order(client: FlaskClient, add_todo) -> None:  # type: ignore[no-untyped-def]
    ids = [add_todo(name)["id"] for name in ("a", "b", "c")]
    response = client.post("/reorder", json={"order": [ids[2], ids[0], ids[1]]})
    assert response.status_code == 200
    assert texts(client) == ["c", "a", "b"]


def test_reorder_of_a_subset_keeps_the_others_in_place(client: FlaskClient, add_todo) -> None:  # type: ignore[no-untyped-def]
    ids = [add_todo(name)["id"] for name in ("a", "b", "c", "d")]
    client.post("/reorder", json={"order": [ids[2], ids[1]]})
    assert texts(client) == ["a", "c", "b", "d"]


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "message"),
    [
        ("/edit/1", {"data": "{not json", "content_type": "application/json"}, 400, "malformed JSON"),
        ("/edit/1", {"json": ["a", "list"]}, 400, "must be an object"),
        ("/edit/1", {"json": {"text": ""}}, 400, "must not be empty"),
        ("/edit/1", {"json": {"text": 5}}, 400, "must be a string"),
        ("/edit/1", {"json": {}}, 400, "missing field"),
        ("/edit/abc", {"json": {"text": "x"}}, 404, "not found"),
        ("/edit/999999", {"json": {"text": "x"}}, 404, "not found"),
        ("/toggle/-3", {}, 404, "not found"),
        ("/toggle/99999999999999999999", {}, 404, "not found"),
        ("/reorder", {"json": {"order": "1,2"}}, 400, "list"),
        ("/reorder", {"json": {"order": [1, "2"]}}, 400, "integers"),
        ("/reorder", {"json": {"order": [1, True]}}, 400, "integers"),
        ("/reorder", {"json": {"order": []}}, 400, "non-empty"),
        ("/reorder", {"json": {"order": [1, 1]}}, 400, "repeat"),
        ("/reorder", {"json": {"order": [424242]}}, 404, "not found"),
        ("/reorder", {"data": "null", "content_type": "application/json"}, 400, "malformed"),
        ("/api/todos", {"json": {"text": "ok", "extra": 1}}, 400, "unknown field"),
        ("/api/todos", {"data": "text=x", "content_type": "text/plain"}, 415, "JSON body"),
    ],
)
def test_bad_json_input_gets_a_clear_error(
    client: FlaskClient, add_todo, path: str, kwargs: dict, status: int, message: str  # type: ignore[no-untyped-def, type-arg]
) -> None:
    add_todo("existing")
    response = client.post(path, **kwargs)
    assert response.status_code == status
    assert message in error_of(response)
    assert texts(client) == ["existing"]


def test_body_over_one_mebibyte_is_refused_with_413(client: FlaskClient) -> None:
    response = client.post("/api/todos", data=b"x" * (1024 * 1024 + 1), content_type="application/json")
    assert response.status_code == 413
    assert "too large" in error_of(response)


def test_unknown_route_is_a_json_404_with_request_id(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert error_of(response) == "not found"


def test_cross_site_form_post_is_refused(client: FlaskClient) -> None:
    response = client.post("/add", data={"task": "csrf"}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert texts(client) == []
    same_site = client.post("/add", data={"task": "ok"}, headers={"Origin": "http://localhost"})
    assert same_site.status_code == 303


def test_api_crud_round_trip(client: FlaskClient) -> None:
    created = client.post("/api/todos", json={"text": "api todo"})
    assert created.status_code == 201
    todo = created.get_json()
    assert created.headers["Location"].endswith(f"/api/todos/{todo['id']}")
    assert client.get(f"/api/todos/{todo['id']}").get_json()["text"] == "api todo"
    patched = client.patch(f"/api/todos/{todo['id']}", json={"done": True, "text": "changed"})
    assert patched.get_json()["done"] is True and patched.get_json()["text"] == "changed"
    assert client.patch(f"/api/todos/{todo['id']}", json={"done": "yes"}).status_code == 400
    assert client.delete(f"/api/todos/{todo['id']}").status_code == 204
    assert client.get(f"/api/todos/{todo['id']}").status_code == 404


def test_api_pagination(client: FlaskClient, add_todo) -> None:  # type: ignore[no-untyped-def]
    for n in range(7):
        add_todo(f"t{n}")
    page2 = client.get("/api/todos?page=2&per_page=3").get_json()
    assert [t["text"] for t in page2["items"]] == ["t3", "t4", "t5"]
    assert (page2["total"], page2["pages"], page2["page"]) == (7, 3, 2)
    assert client.get("/api/todos?per_page=0").status_code == 400
    assert client.get("/api/todos?page=x").status_code == 400


def test_api_cursors_walk_the_whole_list_once_in_order(client: FlaskClient, add_todo) -> None:  # type: ignore[no-untyped-def]
    ids = [add_todo(f"c{n}")["id"] for n in range(7)]
    client.post("/reorder", json={"order": [ids[6], ids[0]]})  # positions are not ids
    expected = [t["id"] for t in client.get("/api/todos?per_page=200").get_json()["items"]]
    first = client.get("/api/todos?per_page=3").get_json()
    assert first["page"] == 1 and first["next"] is not None
    seen, cursor, pages = [t["id"] for t in first["items"]], first["next"], 1
    while cursor is not None:
        answer = client.get("/api/todos", query_string={"per_page": 3, "cursor": cursor})
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        assert body["page"] is None and body["total"] == 7
        seen += [t["id"] for t in body["items"]]
        cursor, pages = body["next"], pages + 1
    assert seen == expected and pages == 3
    # Numbered pages name the next one the same way, except on the last page.
    assert client.get("/api/todos?page=3&per_page=3").get_json()["next"] is None
    assert client.get("/api/todos?page=2&per_page=3").get_json()["next"] is not None
    for bad in ("", "x", "1", "1.2.3", "a.b", "1.-2", f"{2**40}.1", "1." + "9" * 30):
        refused = client.get("/api/todos", query_string={"cursor": bad})
        assert refused.status_code == 400, bad
        assert "cursor" in refused.get_json()["error"]
    both = client.get("/api/todos", query_string={"cursor": first["next"], "page": 2})
    assert both.status_code == 400


def test_the_total_is_exact_after_writes_from_anywhere(client: FlaskClient, app, backend) -> None:  # type: ignore[no-untyped-def]
    """The count no longer scans the table: it must still follow every insert and delete."""
    from sqlalchemy import create_engine, text

    def total() -> int:
        return int(client.get("/api/todos").get_json()["total"])

    assert total() == 0
    ids = [client.post("/api/todos", json={"text": f"n{n}"}).get_json()["id"] for n in range(5)]
    client.post("/add", data={"task": "from the form"})
    assert total() == 6
    client.delete(f"/api/todos/{ids[0]}")
    client.post(f"/delete/{ids[1]}", data={"page": "1"})
    client.delete(f"/api/todos/{ids[1]}")  # already gone: a 404 changes nothing
    assert total() == 4
    # Another process writing straight to the database, several rows per statement.
    engine = create_engine(backend.database_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO todos (text, done, position, created_at, updated_at) VALUES "
                          "('sql 1', false, 100, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP), "
                          "('sql 2', false, 101, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    assert total() == 6
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM todos WHERE text LIKE 'n%'"))
        real = conn.execute(text("SELECT count(*) FROM todos")).scalar_one()
    engine.dispose()
    assert total() == real == 3
    page = client.get("/").get_data(as_text=True)
    assert "3 tasks" in page
    beyond = client.get("/?page=4").get_data(as_text=True)  # an empty page still knows the total
    assert "This page is empty" in beyond and "3 tasks" in beyond


def test_openapi_document_describes_the_api(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/api/todos", "/api/todos/{todo_id}"}
    assert set(doc["paths"]["/api/todos/{todo_id}"]) >= {"get", "patch", "delete"}
    listing = doc["paths"]["/api/todos"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"page", "per_page", "cursor"}
    assert "next" in doc["components"]["schemas"]["TodoPage"]["required"]


def test_html_page_is_paginated(client: FlaskClient, app) -> None:  # type: ignore[no-untyped-def]
    from app.db import db
    from app.models import Todo

    with app.app_context():
        db.session.add_all([Todo(text=f"item {n}", position=n) for n in range(1, 121)])
        db.session.commit()
    first = client.get("/").get_data(as_text=True)
    assert "item 50" in first and "item 51" not in first
    assert "Page 1 of 3" in first
    third = client.get("/?page=3").get_data(as_text=True)
    assert "item 120" in third and "item 100" not in third


def test_healthz_is_liveness_only(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_the_database(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["database"] == "ok"


def test_a_write_answers_with_what_it_wrote_without_reading_it_back(
    app, client: FlaskClient, add_todo  # type: ignore[no-untyped-def]
) -> None:
    from sqlalchemy import event

    from app.db import db

    first = add_todo("first")
    statements: list[str] = []
    checkouts: list[int] = []
    with app.app_context():
        engine = db.engine

    def on_execute(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine.pool, "checkout", lambda *_args: checkouts.append(1))
    try:
        created = client.post("/api/todos", json={"text": "second"})
        assert statements == ["SELECT", "INSERT"]  # the next position, then the row
        assert len(checkouts) == 1
        statements.clear()
        checkouts.clear()
        changed = client.patch(f"/api/todos/{first['id']}", json={"text": "first, edited"})
        assert statements == ["SELECT", "UPDATE"]  # the row, then the change
        assert len(checkouts) == 1
        statements.clear()
        toggled = client.post(f"/toggle/{first['id']}", json={})
        assert statements == ["SELECT", "UPDATE"]
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    # What each write answered is what the database holds.
    assert created.status_code == 201
    assert created.get_json() == client.get(created.headers["Location"]).get_json()
    assert changed.get_json()["text"] == "first, edited"
    assert toggled.get_json() == client.get(f"/api/todos/{first['id']}").get_json()
    assert toggled.get_json()["updated_at"] >= changed.get_json()["updated_at"]
    assert toggled.get_json()["done"] is True
