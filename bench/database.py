"""A private PostgreSQL database per benchmark run, migrated, seeded, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import psycopg2
from sqlalchemy import create_engine, make_url, text

from bench.procs import CpuMeter
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


def serial_queries(database_url: str) -> None:
    """No parallel query in this database: a scan then runs in the connection's own backend,
    where PgCpuMeter sees its CPU (parallel workers live for one query and are not seen)."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        name = make_url(database_url).database
        conn.execute(text(f'ALTER DATABASE "{name}" SET max_parallel_workers_per_gather = 0'))
    engine.dispose()


class PgCpuMeter(CpuMeter):
    """CPU seconds of the PostgreSQL backends serving one database (its connections' server
    processes): the database's side of a request, which the app's CPU does not show."""

    def __init__(self, database_url: str) -> None:
        """Meter the backends connected to database_url's database."""
        self.name = make_url(database_url).database
        super().__init__(0)

    def processes(self) -> list[psutil.Process]:
        """The backends connected to the database now."""
        admin = psycopg2.connect(PG_ADMIN_URL)
        try:
            with admin.cursor() as cur:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,))
                pids = [row[0] for row in cur.fetchall()]
        finally:
            admin.close()
        found = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))
        return found
