"""The database: one Flask-SQLAlchemy extension, bound in create_app."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    """Declarative base of every model."""


db = SQLAlchemy(model_class=Base)


def commit_and_keep() -> None:
    """Commit, keeping the attributes of the objects just written loaded.

    A write answers with the row it wrote. With the session's default (expire on commit)
    reading it back would check a connection out again and reload the row: a second
    `connect` and `SELECT` in every write's trace, and a second round trip. The models set
    every value in Python (no server-side defaults or triggers), so the kept state is
    exactly what was committed.
    """
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def engine_options(database_url: str) -> dict[str, Any]:
    """Engine options: pre-ping so a restarted database is recovered without a restart."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if database_url.startswith("sqlite"):
        # Several gunicorn workers and the Celery worker share the file: wait for locks
        # instead of failing at once.
        options["connect_args"] = {"timeout": 30}
    else:
        options.update(pool_size=5, max_overflow=10, pool_recycle=1800,
                       connect_args={"connect_timeout": 5})
    return options


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers proceed while a writer commits; busy_timeout waits for locks."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # The slow_db fault issues `SELECT pg_sleep(s)`; give SQLite the same function.
    dbapi_connection.create_function("pg_sleep", 1, time.sleep)


def _remove_session(_exc: BaseException | None) -> None:
    """End the request's session even when its connection died under it.

    Closing rolls back; if the database went away after the answer was made (a restart),
    that rollback raises, and raised from a teardown it would replace the answer the client
    was about to get (a 201 for a committed write, a 503) with a bare 500. The pool has
    already dropped the dead connection, so there is nothing left to clean up.
    """
    try:
        db.session.remove()
    except DBAPIError as exc:
        log.warning("database connection lost while closing the session: %s",
                    str(exc.orig or exc).strip().splitlines()[0])
        db.session.registry.clear()


def close(app: Flask) -> None:
    """Close what the app holds in the database: the session and every pooled connection.

    The pool keeps connections open for reuse until its engine is disposed; an engine that
    is only garbage-collected leaves them to the collector (Python 3.13 warns about each
    SQLite one, and a long-running process that builds apps leaks file handles).
    """
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def init_app(app: Flask) -> None:
    """Bind the extension to app and tune SQLite connections."""
    db.init_app(app)
    # Registered after Flask-SQLAlchemy's own teardown, so it runs first (teardowns run in
    # reverse order); theirs then finds no session left to close.
    app.teardown_appcontext(_remove_session)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
