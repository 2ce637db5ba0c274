"""Private databases on the shared services: a PostgreSQL database and a Redis database number
that belong to one test run, module or benchmark, and are dropped/flushed afterwards. What a
killed run left behind is reclaimed only when nothing uses it any more: its maker is gone
and no client is connected to it (an orphaned worker still connected keeps it).

Several test runs (and modules with workers of their own) share one PostgreSQL and one
Redis; a worker that consumed another module's queue would spoil its counts, so each takes
its own, under a lock every test run respects.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errors
import redis

from app.migrate import upgrade
from app.settings import Settings

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


def _holder_is_gone(holder: bytes | str | None) -> bool:
    """True when a lock's holder (a pid on this machine) no longer runs."""
    pid = holder.decode() if isinstance(holder, bytes) else holder
    if not pid or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _clients_on(client: redis.Redis, number: int) -> int:
    """How many connections of any process use Redis database number right now."""
    return sum(1 for entry in client.client_list() if str(entry.get("db")) == str(number))


@contextmanager
def reserved_redis_db(base_url: str = REDIS_BASE_URL) -> Iterator[str]:
    """A Redis database number nobody else holds or uses, flushed before and after.

    A number is taken when its lock is free (its holder released it after stopping what used
    it), or when the lock's holder no longer runs *and* no client is connected to it: a killed
    run's orphaned worker still consuming there keeps it from being handed out again (it would
    take the next run's tasks).
    """
    base_url = base_url.rstrip("/")
    client = redis.Redis.from_url(base_url + "/0")
    for number in range(1, 16):
        lock = f"todolab:test-db-lock:{number}"
        if client.set(lock, os.getpid(), nx=True, ex=4 * 3600):
            break
        if _holder_is_gone(client.get(lock)) and _clients_on(client, number) == 0:
            # A run killed before its cleanup left its lock behind; nothing uses the number.
            client.set(lock, os.getpid(), ex=4 * 3600)
            break
    else:
        raise RuntimeError("no free Redis database number (1-15) for this test run: each is "
                           "held by a running test run or still used by a client "
                           "(redis-cli CLIENT LIST shows which)")
    url = f"{base_url}/{number}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()
        client.delete(lock)


# A private database's name after its prefix: _p, the pid of the process that made it, a random part.
PRIVATE_SUFFIX = re.compile(r"_p(?P<pid>\d+)_[0-9a-f]{10}")


def _connections(cur: Any, name: str) -> int:
    """How many sessions of any client are connected to database name now."""
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,))
    return int(cur.fetchone()[0])


def reclaim_pg_databases(prefix: str, admin_url: str = PG_ADMIN_URL) -> list[str]:
    """Drop the private databases (of this prefix) that a run killed before its cleanup left
    behind: those whose maker no longer runs *and* to which no client is connected. A killed
    run's orphan (a worker still writing there) keeps its database; the names dropped are
    returned."""
    dropped = []
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "\\_p%",))
            for (name,) in cur.fetchall():
                match = PRIVATE_SUFFIX.fullmatch(name.removeprefix(prefix))
                if not name.startswith(prefix) or not match or not _holder_is_gone(match["pid"]):
                    continue
                if _connections(cur, name):
                    continue
                try:
                    cur.execute(f'DROP DATABASE "{name}"')  # refused if a client came meanwhile
                except psycopg2.errors.ObjectInUse:
                    continue
                dropped.append(name)
    finally:
        admin.close()
    return dropped


@contextmanager
def temporary_pg_database(prefix: str = "todolab_test", migrate: bool = True,
                          admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A fresh PostgreSQL database (migrated to head unless told not to), dropped afterwards;
    first the ones of killed runs that nothing uses any more are reclaimed."""
    reclaim_pg_databases(prefix, admin_url)
    name = f"{prefix}_p{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        base = admin_url.rsplit("/", 1)[0]
        url = Settings.from_env({"DATABASE_URL": f"{base}/{name}"}).database_url
        if migrate:
            upgrade(database_url=url)
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
