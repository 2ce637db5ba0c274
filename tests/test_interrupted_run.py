"""No process outlives the run that started it: a test run stopped from outside (SIGTERM from
`timeout` or a CI limit, SIGHUP from a closed terminal) stops its stacks, and the next run
passes on the same Redis databases.

The run under test is a real pytest run of tests/data/interrupted/stack_run.py: it starts a
stack of its own (gunicorn with its workers, a prefork Celery worker with its pool) from the
plugin, says which processes it started, and waits. The signal goes to the pytest process
alone, as `timeout` sends it, also when that process is xdist's controller and the stack runs
in its worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis

from stack.databases import (
    PG_ADMIN_URL,
    REDIS_BASE_URL,
    reclaim_pg_databases,
    reserved_redis_db,
    temporary_pg_database,
)
from stack.private_services import private_redis
from tests.support.processes import ROOT, wait_until

RUN = ROOT / "tests" / "data" / "interrupted" / "stack_run.py"


def _pytest(report: Path, *options: str, quick: bool = False) -> subprocess.Popen[bytes]:
    env = {**os.environ, "INTERRUPTED_RUN_REPORT": str(report),
           "INTERRUPTED_RUN_QUICK": "1" if quick else "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, str(RUN)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _running(pids: list[int]) -> list[str]:
    """The processes among pids that still run (a zombie has ended)."""
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return alive


def _lock_holder(url: str) -> str | None:
    """The pid that holds the test lock of url's Redis database, if any."""
    number = int(url.rsplit("/", 1)[1])
    client = redis.Redis.from_url(REDIS_BASE_URL + "/0")
    try:
        holder = client.get(f"todolab:test-db-lock:{number}")
        return holder.decode() if holder else None
    finally:
        client.close()


def test_a_database_whose_holder_died_is_not_taken_while_a_client_still_uses_it(tmp_path: Path) -> None:
    """An orphan still connected to a Redis database keeps it from the next run, though the
    lock's holder is gone; once it disconnects, the database is taken again. (On a Redis of
    its own: the run's shared one hands numbers to parallel workers meanwhile.)"""
    dead = _dead_pid()
    with private_redis(tmp_path, persistent=False) as server:
        base = server.url.rsplit("/", 1)[0]
        admin = redis.Redis.from_url(f"{base}/0")
        orphan = redis.Redis.from_url(f"{base}/1")
        try:
            admin.set("todolab:test-db-lock:1", dead)  # a killed run's lock on database 1...
            orphan.ping()  # ...and its orphaned worker, still connected to it
            with reserved_redis_db(base) as taken:
                assert taken == f"{base}/2"
            orphan.close()
            with reserved_redis_db(base) as taken:
                assert taken == f"{base}/1"
        finally:
            orphan.close()
            admin.close()


def _dead_pid() -> str:
    """A pid that no longer runs (a child that has exited)."""
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()


def _pg_databases(prefix: str) -> set[str]:
    with psycopg2.connect(PG_ADMIN_URL) as admin, admin.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",))
        return {name for (name,) in cur.fetchall()}


@pytest.mark.postgres
def test_a_killed_runs_pg_database_is_dropped_only_when_nothing_uses_it() -> None:
    """A private PostgreSQL database left by a killed run (its maker gone) is dropped by the
    next run that makes one, unless a client is still connected to it (a killed run's orphan),
    and never while its maker runs."""
    prefix = f"todolab_reclaim{uuid.uuid4().hex[:6]}"
    dead = _dead_pid()
    left, used = (f"{prefix}_p{dead}_{uuid.uuid4().hex[:10]}" for _ in range(2))
    alive = f"{prefix}_p{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    orphan = None
    try:
        with admin.cursor() as cur:
            for name in (left, used, alive):
                cur.execute(f'CREATE DATABASE "{name}"')
        orphan = psycopg2.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{used}")
        with temporary_pg_database(prefix, migrate=False) as mine:
            assert _pg_databases(prefix) == {used, alive, mine.rsplit("/", 1)[1]}
        orphan.close()
        assert reclaim_pg_databases(prefix) == [used]
        assert _pg_databases(prefix) == {alive}
    finally:
        if orphan is not None:
            orphan.close()
        with admin.cursor() as cur:
            for name in (left, used, alive):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "options"), [
    (signal.SIGTERM, ()),
    (signal.SIGHUP, ("-n", "1")),
], ids=["SIGTERM", "SIGHUP-to-xdist-controller"])
def test_a_run_stopped_from_outside_leaves_nothing_running_and_the_next_run_passes(
        tmp_path: Path, sig: signal.Signals, options: tuple[str, ...]) -> None:
    report = tmp_path / "started.json"
    run = _pytest(report, *options)
    try:
        wait_until(report.exists, 120, "the run to start its stack")
        started = json.loads(report.read_text(encoding="utf-8"))
        everything = [run.pid, *(p.pid for p in psutil.Process(run.pid).children(recursive=True))]
        assert len(started["pids"]) >= 4, started  # gunicorn and its workers, Celery and its pool
        os.kill(run.pid, sig)
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
    text = output.decode("utf-8", errors="replace")
    print(text[-2000:])
    assert run.returncode != 0
    # gunicorn's and Celery's own children end a moment after their parents.
    leftover = set(started["pids"]) | set(everything)
    wait_until(lambda: not _running(sorted(leftover)), 30, "the stack's processes to end")
    assert _running(sorted(leftover)) == []
    # Its Redis databases were given back (a parallel run may already hold them again).
    for url in (started["broker"], started["run_db"]):
        holder = _lock_holder(url)
        assert holder is None or psutil.pid_exists(int(holder)), f"{url} still held by the stopped run"

    report.unlink()
    again = _pytest(report, *options, quick=True)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output.decode("utf-8", errors="replace")[-3000:]
