"""SQLite connections are closed where they are opened: an app closed with close_app holds
none, the embedded broker holds none between messages, and one left to the garbage
collector is reported on every Python (as 3.13 does)."""

from __future__ import annotations

import gc
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from app import close_app
from tests.support import sqlite_guard
from tests.support.backends import Backend


def test_a_connection_collected_while_open_is_reported(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "dropped.db")
    conn.execute("CREATE TABLE t (x)")
    with pytest.warns(ResourceWarning, match="unclosed database"):
        del conn
        gc.collect()


def test_a_closed_connection_is_collected_quietly(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "closed.db")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del conn
        gc.collect()


def test_a_closed_app_holds_no_connection_and_the_broker_none_between_messages(
    embedded_backend: Backend, make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    embedded_backend.clean()
    # A broker file of its own: the run's live worker must not take the export.
    settings = embedded_backend.settings(CELERY_BROKER_URL=f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    app = make_app(settings)
    start = sqlite_guard.mark()
    client = app.test_client()
    assert client.post("/api/todos", json={"text": "closed after use"}).status_code == 201
    exported = client.post("/export")  # published to the SQLite broker (no worker needed)
    assert exported.status_code == 202
    assert client.get(exported.get_json()["status_url"]).get_json()["state"] == "queued"

    # Between requests only the app's own pool keeps a connection, to the data file.
    held = {Path(conn.database).name for conn in sqlite_guard.open_since(start)}
    assert held == {Path(settings.database_url.removeprefix("sqlite:///")).name}
    close_app(app)
    assert sqlite_guard.open_since(start) == []


def test_closing_one_app_leaves_another_of_the_process_publishing(
    embedded_backend: Backend, make_app: Callable[..., Flask]
) -> None:
    # Celery's broker connections are pooled per process, not per app: closing an app (a
    # test's teardown) must not close the pool the next app publishes through.
    first = make_app(embedded_backend.settings())
    assert first.test_client().post("/export").status_code == 202
    close_app(first)
    second = make_app(embedded_backend.settings())
    assert second.test_client().post("/export").status_code == 202
