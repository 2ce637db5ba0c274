"""Exports through a real prefork Celery worker: the CSV holds exactly the rows, in constant
memory, atomically, and a worker killed mid-export still delivers one complete file."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from app.settings import Settings
from stack.databases import reserved_redis_db
from stack.launch import Handle
from stack.processes import Proc
from tests.support.backends import Backend
from tests.support.plugin import StackFactory
from tests.support.processes import wait_until

HEADER = ["id", "text", "done", "position", "created_at", "updated_at"]


def wait_for_export(client: FlaskClient, task_id: str, timeout: float = 120) -> dict:  # type: ignore[type-arg]
    """Poll /tasks/<id> until the export is finished; its final state."""
    state: dict = {}  # type: ignore[type-arg]

    def finished() -> bool:
        nonlocal state
        state = client.get(f"/tasks/{task_id}").get_json()
        return state["state"] in ("succeeded", "failed")

    wait_until(finished, timeout, f"export {task_id} to finish", interval=0.1)
    return state


def start_export(client: FlaskClient) -> str:
    """POST /export and return the task id from the 202 answer."""
    response = client.post("/export")
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status_url"] == f"/tasks/{body['task_id']}"
    return str(body["task_id"])


def download_rows(client: FlaskClient, task_id: str) -> list[dict[str, str]]:
    """Download the CSV and parse it."""
    with client.get(f"/download/{task_id}") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        body = response.get_data(as_text=True)
    reader = csv.DictReader(io.StringIO(body))
    assert reader.fieldnames == HEADER
    return list(reader)


def bulk_insert(database_url: str, count: int, width: int = 300) -> None:
    """Insert count todos of width characters in one statement (fast, server-side)."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(
                "INSERT INTO todos (text, done, position, created_at, updated_at) "
                "SELECT 'row ' || g || ' ' || repeat('x', :w), g % 2 = 0, g, now(), now() "
                "FROM generate_series(1, :n) AS g"), {"n": count, "w": width})
        else:
            conn.execute(text(
                "WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < :n) "
                "INSERT INTO todos (text, done, position, created_at, updated_at) "
                "SELECT 'row ' || g || ' ' || substr(hex(zeroblob(:w)), 1, :w), g % 2 = 0, g, "
                "datetime('now'), datetime('now') FROM seq"), {"n": count, "w": width})
    engine.dispose()


@pytest.mark.stack
def test_export_holds_exactly_the_todos(client: FlaskClient, live_worker: Proc) -> None:
    texts = ["buy milk", "=HYPERLINK(\"http://x\")", "two\nlines, \"quoted\"", "ünïcödé ✓", "+1 idea"]
    created = [client.post("/api/todos", json={"text": t}).get_json() for t in texts]
    ids = [todo["id"] for todo in created]
    # The text rule turns a line break into one space (README, "Bad input"): the export holds
    # what was stored, as the API answered it.
    assert created[2]["text"] == "two lines, \"quoted\""
    client.post(f"/toggle/{ids[0]}")
    task_id = start_export(client)
    state = wait_for_export(client, task_id)
    assert state["state"] == "succeeded", state
    assert state["rows"] == len(texts)
    assert state["download_url"] == f"/download/{task_id}"
    rows = download_rows(client, task_id)
    assert [int(r["id"]) for r in rows] == ids
    # Formula-looking cells are neutralised for spreadsheets; everything else is verbatim.
    assert [r["text"] for r in rows] == [
        "buy milk", "'=HYPERLINK(\"http://x\")", "two lines, \"quoted\"", "ünïcödé ✓", "'+1 idea"
    ]
    assert [r["done"] for r in rows] == ["true", "false", "false", "false", "false"]


@pytest.mark.stack
def test_export_of_an_empty_list_has_only_the_header(client: FlaskClient, live_worker: Proc) -> None:
    task_id = start_export(client)
    assert wait_for_export(client, task_id)["rows"] == 0
    assert download_rows(client, task_id) == []


@pytest.mark.stack
def test_worker_log_lines_carry_the_request_id_of_the_export(client: FlaskClient, live_worker: Proc) -> None:
    response = client.post("/export", headers={"X-Request-ID": "export-req-0001"})
    task_id = response.get_json()["task_id"]
    wait_for_export(client, task_id)
    wait_until(lambda: "export finished" in live_worker.output(), 10, "the worker's log line")
    lines = [
        json.loads(line) for line in live_worker.output().splitlines()
        if task_id in line and line.startswith("{")
    ]
    finished = [line for line in lines if line["message"] == "export finished"]
    assert finished and finished[0]["request_id"] == "export-req-0001"
    assert finished[0]["job_type"] == "export" and finished[0]["task_id"] == task_id


def test_download_before_the_export_finished_is_409(app: Flask, client: FlaskClient) -> None:
    from app.db import db
    from app.models import Export

    pending = str(uuid.uuid4())
    with app.app_context():
        db.session.add(Export(id=pending, status="queued"))
        db.session.commit()
    response = client.get(f"/download/{pending}")
    assert response.status_code == 409
    assert response.get_json()["state"] == "queued"
    assert client.get(f"/tasks/{pending}").get_json()["state"] == "queued"


# A fixed unknown UUID: a random one would name the test differently in each xdist worker.
@pytest.mark.parametrize("task_id", ["not-a-uuid", "0b6f2a8e-3c1d-4e5f-9a7b-1c2d3e4f5a6b",
                                     "../../etc/passwd", "1"])
def test_unknown_export_ids_are_404(client: FlaskClient, task_id: str) -> None:
    for path in (f"/tasks/{task_id}", f"/download/{task_id}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"] in ("unknown export task id", "not found")


def test_broker_down_answers_503_and_records_the_failure(
    backend: Backend, make_app: Callable[..., Flask]
) -> None:
    closed = "redis://127.0.0.1:9/0"  # discard port: nothing listens
    app = make_app(backend.settings(CELERY_BROKER_URL=closed, BROKER_TIMEOUT="1"))
    client = app.test_client()
    started = time.monotonic()
    response = client.post("/export")
    elapsed = time.monotonic() - started
    print(f"POST /export with the broker down answered {response.status_code} in {elapsed:.2f}s")
    assert response.status_code == 503
    assert "broker" in response.get_json()["error"]
    assert response.get_json()["request_id"] == response.headers["X-Request-ID"]
    background = client.get("/healthz/background")
    assert background.status_code == 503
    assert background.get_json()["broker"].startswith("unreachable")


def test_the_configured_broker_wins_over_the_one_exported_in_the_shell(
    backend: Backend, make_app: Callable[..., Flask], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learner who exported the README's settings (a live Redis) and builds an app for a dead
    broker gets the dead one: Celery's own settings would take the exported URL first."""
    for name in ("CELERY_BROKER_URL", "CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL",
                 "CELERY_RESULT_BACKEND"):
        monkeypatch.setenv(name, redis_url)
    closed = "redis://127.0.0.1:9/0"
    app = make_app(backend.settings(CELERY_BROKER_URL=closed, CELERY_RESULT_BACKEND=closed,
                                    BROKER_TIMEOUT="1"))
    celery_app = app.extensions["celery"]
    for connection in (celery_app.connection_for_write(), celery_app.connection_for_read()):
        with connection:
            assert (connection.transport_cls, connection.hostname, connection.port) == \
                ("redis", "127.0.0.1", 9)
    assert celery_app.backend.url == closed
    assert app.test_client().post("/export").status_code == 503


def private_broker_env(backend: Backend, stack: ExitStack, tmp_path: Path) -> dict[str, str]:
    """The backend's environment with a broker of its own (a reserved Redis database, or an
    SQLite broker file), so that no other test's worker consumes these exports."""
    if backend.name == "postgres":
        broker = stack.enter_context(reserved_redis_db())
    else:
        broker = f"sqla+sqlite:///{tmp_path / 'private-broker.db'}"
    return {**backend.env, "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": ""}


@pytest.fixture
def solo_env(backend: Backend, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The backend's environment, over empty tables, with a broker of its own."""
    backend.clean()
    with ExitStack() as stack:
        yield private_broker_env(backend, stack, tmp_path)


@pytest.fixture
def solo_worker(solo_env: dict[str, str], stack_factory: StackFactory) -> Iterator[Handle]:
    """A worker with one pool child, replaced after every task (so its peak RSS is per
    task), on a queue of its own that no other test's worker consumes."""
    with stack_factory(solo_env, ("worker",), concurrency=1, migrate=False,
                       extra_worker_args=("--max-tasks-per-child=1",)) as running:
        yield running.worker


@pytest.fixture
def solo_client(solo_env: dict[str, str], make_app: Callable[..., Flask]) -> FlaskClient:
    """A client of an app that publishes to the solo worker's private broker."""
    return make_app(Settings.from_env(solo_env)).test_client()


def peak_rss_kib(worker: Proc, task_id: str) -> int:
    """The peak resident memory the worker logged for an export."""
    for line in worker.output().splitlines():
        if line.startswith("{") and task_id in line:
            record = json.loads(line)
            if record.get("message") == "export finished":
                return int(record["peak_rss_kib"])
    raise AssertionError(f"no 'export finished' line for {task_id}")


@pytest.mark.stack
@pytest.mark.slow
def test_export_of_100000_rows_runs_in_constant_memory(
        backend: Backend, solo_client: FlaskClient, solo_worker: Handle) -> None:
    client = solo_client
    bulk_insert(backend.database_url, 1_000)
    small = start_export(client)
    assert wait_for_export(client, small)["rows"] == 1_000
    bulk_insert(backend.database_url, 99_000)
    large = start_export(client)
    state = wait_for_export(client, large, timeout=300)
    assert state["state"] == "succeeded" and state["rows"] == 100_000
    wait_until(lambda: peak_rss_kib(solo_worker, large) > 0, 10, "the worker's log line")
    growth_mib = (peak_rss_kib(solo_worker, large) - peak_rss_kib(solo_worker, small)) / 1024
    # 100,000 rows of ~300 characters are ~30 MiB of text alone: a list of them would grow
    # the peak by far more than this bound; streaming keeps it flat.
    print(f"peak RSS growth from 1,000 to 100,000 rows: {growth_mib:.1f} MiB")
    assert growth_mib < 16
    rows = download_rows(client, large)
    assert len(rows) == 100_000
    assert rows[-1]["id"] == "100000"


@pytest.mark.stack
@pytest.mark.slow
def test_worker_killed_mid_export_is_redelivered_and_completes_once(
    backend: Backend, solo_client: FlaskClient, solo_worker: Handle
) -> None:
    client, export_dir = solo_client, Path(solo_client.application.config["EXPORT_DIR"])
    bulk_insert(backend.database_url, 150_000)
    task_id = start_export(client)

    def writing() -> bool:
        return any(p.stat().st_size > 0 for p in export_dir.glob(f".{task_id}.csv.*.tmp"))

    wait_until(writing, 60, "the export to be half-written", interval=0.01)
    assert not (export_dir / f"{task_id}.csv").exists()
    assert client.get(f"/download/{task_id}").status_code == 409
    children = psutil.Process(solo_worker.popen.pid).children()
    assert len(children) == 1
    os.kill(children[0].pid, signal.SIGKILL)

    state = wait_for_export(client, task_id, timeout=180)
    assert state["state"] == "succeeded", state
    assert state["attempts"] == 2
    assert state["rows"] == 150_000
    assert len(download_rows(client, task_id)) == 150_000
    assert list(export_dir.glob(f".{task_id}.csv.*.tmp")) == []


@pytest.mark.stack
def test_an_export_whose_message_the_broker_lost_is_queued_again_when_a_worker_starts(
    backend: Backend, tmp_path: Path, make_app: Callable[..., Flask], stack_factory: StackFactory
) -> None:
    # An export accepted long ago whose message is gone (a broker restarted without its
    # data): a starting worker finds it still queued and runs it, keeping its request id.
    backend.clean()
    with ExitStack() as stack:
        env = {**private_broker_env(backend, stack, tmp_path), "STALE_EXPORT_AFTER": "60"}
        app = make_app(Settings.from_env(env))
        client = app.test_client()
        client.post("/api/todos", json={"text": "survives a lost message"})
        from app.db import db
        from app.models import Export, utcnow

        lost, fresh = str(uuid.uuid4()), str(uuid.uuid4())
        with app.app_context():
            old = utcnow() - timedelta(minutes=10)
            db.session.add(Export(id=lost, status="queued", request_id="lost-req-000001", created_at=old))
            db.session.add(Export(id=fresh, status="queued", created_at=utcnow()))
            db.session.commit()
        worker = stack.enter_context(stack_factory(env, ("worker",), concurrency=1, migrate=False)).worker
        state = wait_for_export(client, lost, timeout=60)
        assert state["state"] == "succeeded" and state["rows"] == 1
        assert [r["text"] for r in download_rows(client, lost)] == ["survives a lost message"]
        # A young queued export is left to its own message.
        assert client.get(f"/tasks/{fresh}").get_json()["state"] == "queued"
        wait_until(lambda: "export finished" in worker.output(), 10, "the worker's log line")
        finished = [json.loads(line) for line in worker.output().splitlines()
                    if line.startswith("{") and lost in line and '"export finished"' in line]
        assert finished[0]["request_id"] == "lost-req-000001"
