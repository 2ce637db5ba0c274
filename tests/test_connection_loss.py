"""A database connection that dies after the answer was made does not turn it into a 500."""

from __future__ import annotations

from collections.abc import Callable

import psycopg2
from flask import Flask, jsonify
from sqlalchemy import text

from app.db import db
from stack.databases import PG_ADMIN_URL
from tests.support.backends import Backend


def test_a_connection_killed_before_teardown_keeps_the_answer(
    postgres_backend: Backend, make_app: Callable[..., Flask]
) -> None:
    app = make_app(postgres_backend.settings())

    @app.post("/test-only/write-then-lose-connection")
    def write_then_lose_connection():  # type: ignore[no-untyped-def]
        # The request's transaction is open when the database restarts under it: closing
        # the session at teardown must roll back on a dead connection.
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin = psycopg2.connect(PG_ADMIN_URL)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        admin.close()
        return jsonify({"written": True}), 201

    client = app.test_client()
    response = client.post("/test-only/write-then-lose-connection")
    assert response.status_code == 201
    assert response.get_json() == {"written": True}
    # The pool dropped the dead connection: the next request is served normally.
    assert client.get("/api/todos").status_code == 200
