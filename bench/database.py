"""A private PostgreSQL database per benchmark run, migrated, seeded, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from sqlalchemy import create_engine, text

from app.migrate import upgrade
from app.settings import Settings

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def private_database() -> Iterator[str]:
    """Create todolab_bench_<random>, migrate it to head, yield its URL, drop it."""
    name = f"todolab_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        url = Settings.from_env({"DATABASE_URL": f"{base}/{name}"}).database_url
        upgrade(database_url=url)
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                        (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


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
