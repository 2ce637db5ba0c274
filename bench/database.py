"""A private PostgreSQL database per benchmark run, migrated, seeded, dropped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from stack.databases import temporary_pg_database

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def private_database() -> Iterator[str]:
    """Create todolab_bench_<random>, migrate it to head, yield its URL, drop it."""
    with temporary_pg_database("todolab_bench", admin_url=PG_ADMIN_URL) as url:
        yield url


def bulk_insert(database_url: str, count: int, width: int = 300) -> None:
    """Append count todos of about width characters in one server-side statement."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        start = conn.execute(text("SELECT coalesce(max(position), 0) FROM todos")).scalar_one()
        conn.execute(text(
            "INSERT INTO todos (text, done, position, created_at, updated_at) "
            "SELECT 'row ' || g || ' ' || repeat('x', :w), g % 2 = 0, g, now(), now() "
            "FROM generate_series(:a, :b) AS g"), {"a": start + 1, "b": start + count, "w": width})
        conn.execute(text("ANALYZE todos"))
    engine.dispose()


def trim_to(database_url: str, count: int) -> None:
    """Delete every todo beyond the first count (what a POST benchmark added)."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(
            "DELETE FROM todos WHERE id NOT IN (SELECT id FROM todos ORDER BY id LIMIT :n)"),
            {"n": count})
    engine.dispose()


def scalar(database_url: str, sql: str) -> object:
    """One value of one query."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar()
    engine.dispose()
    return value
