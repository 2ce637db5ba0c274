"""Retry-safe writes with Idempotency-Key, on PostgreSQL and on SQLite.

A retry with the key gets the first answer (same status, body and Location, plus
`Idempotent-Replayed: true`) and writes nothing; the same key with another request is a 422.
The hard cases are real: a PostgreSQL connection cut exactly after the server committed
(a proxy drops it before the COMMIT acknowledgement reaches the app), an HTTP answer lost on
its way to the client, and concurrent requests with one key against real gunicorn.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, make_url, text, update

from app.db import db
from app.idempotency import HEADER, REPLAY_HEADER, delete_expired
from app.models import IdempotencyKey, utcnow
from tests.support.backends import Backend
from tests.support.processes import wait_until
from tests.test_routes import error_of


def count(database_url: str, table: str = "todos") -> int:
    """Rows in table, read on a connection of its own."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        n = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
    engine.dispose()
    return n


def test_a_retry_with_the_key_gets_the_first_answer_and_writes_nothing(
        client: FlaskClient, backend: Backend) -> None:
    first = client.post("/api/todos", json={"text": "pay rent"}, headers={HEADER: "k-1"})
    assert first.status_code == 201
    assert REPLAY_HEADER not in first.headers
    again = client.post("/api/todos", json={"text": "pay rent"}, headers={HEADER: "k-1"})
    assert again.status_code == 201
    assert again.headers[REPLAY_HEADER] == "true"
    assert again.get_data() == first.get_data()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.mimetype == "application/json"
    assert count(backend.database_url) == 1


def test_the_same_key_with_a_different_body_is_a_422(client: FlaskClient, backend: Backend) -> None:
    assert client.post("/api/todos", json={"text": "a"}, headers={HEADER: "k-2"}).status_code == 201
    other = client.post("/api/todos", json={"text": "b"}, headers={HEADER: "k-2"})
    assert other.status_code == 422
    assert "already used with a different request" in error_of(other)
    assert count(backend.database_url) == 1


def test_keys_are_scoped_to_the_route_and_a_new_key_is_a_new_write(
        client: FlaskClient, backend: Backend) -> None:
    assert client.post("/api/todos", json={"text": "a"}, headers={HEADER: "k-3"}).status_code == 201
    # The same key on another creating route is another key.
    on_add = client.post("/add", json={"task": "a"}, headers={HEADER: "k-3"})
    assert on_add.status_code == 201 and REPLAY_HEADER not in on_add.headers
    assert client.post("/api/todos", json={"text": "a"}, headers={HEADER: "k-4"}).status_code == 201
    assert client.post("/api/todos", json={"text": "a"}).status_code == 201  # no key: a write
    assert count(backend.database_url) == 4


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9", "tab\there"],
                         ids=["empty", "256 chars", "space", "non-ascii", "control"])
def test_a_malformed_key_is_a_400_and_writes_nothing(client: FlaskClient, backend: Backend,
                                                     key: str) -> None:
    response = client.post("/api/todos", json={"text": "a"},
                           headers=[(HEADER, key.encode("utf-8").decode("latin-1"))])
    assert response.status_code == 400
    assert "visible ASCII" in error_of(response)
    assert count(backend.database_url) == 0


def test_a_key_of_255_characters_is_accepted(client: FlaskClient) -> None:
    key = "K" * 255
    assert client.post("/api/todos", json={"text": "a"}, headers={HEADER: key}).status_code == 201
    assert client.post("/api/todos", json={"text": "a"},
                       headers={HEADER: key}).headers[REPLAY_HEADER] == "true"


def test_the_page_form_carries_a_key_and_a_resubmitted_form_adds_once(
        client: FlaskClient, backend: Backend) -> None:
    page = client.get("/").get_data(as_text=True)
    keys = re.findall(r'name="idempotency_key" value="([^"]+)"', page)
    assert len(keys) == 2 and keys[0] != keys[1]  # the add form and the export form
    form = {"task": "water plants", "idempotency_key": keys[0]}
    first = client.post("/add", data=form)
    again = client.post("/add", data=form)
    assert first.status_code == again.status_code == 303
    assert again.headers[REPLAY_HEADER] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert count(backend.database_url) == 1
    # The next page has a fresh key.
    assert keys[0] not in client.get("/").get_data(as_text=True)


def test_an_export_retried_with_its_key_is_one_export(client: FlaskClient, backend: Backend) -> None:
    first = client.post("/export", headers={HEADER: "export-1"})
    again = client.post("/export", headers={HEADER: "export-1"})
    assert first.status_code == again.status_code == 202, first.get_json()
    assert again.get_json() == first.get_json()
    assert again.headers[REPLAY_HEADER] == "true"
    assert count(backend.database_url, "exports") == 1


def test_an_export_refused_for_a_dead_broker_is_not_remembered(
        backend: Backend, make_app: Callable[..., Flask]) -> None:
    dead = make_app(backend.settings(CELERY_BROKER_URL="redis://127.0.0.1:9/0", BROKER_TIMEOUT="1"),
                    TESTING=True)
    backend.clean()
    client = dead.test_client()
    first = client.post("/export", headers={HEADER: "export-2"})
    again = client.post("/export", headers={HEADER: "export-2"})
    assert first.status_code == again.status_code == 503
    assert REPLAY_HEADER not in again.headers  # tried again, not replayed
    assert count(backend.database_url, "idempotency_keys") == 0


def test_an_expired_key_is_a_new_key_and_expired_keys_are_deleted(
        app: Flask, client: FlaskClient, backend: Backend) -> None:
    assert client.post("/api/todos", json={"text": "a"}, headers={HEADER: "old"}).status_code == 201
    assert client.post("/api/todos", json={"text": "b"}, headers={HEADER: "kept"}).status_code == 201
    with app.app_context():
        db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "old").values(
            expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    # Past its retention the key is free again: another body is a new write, not a 422.
    reused = client.post("/api/todos", json={"text": "c"}, headers={HEADER: "old"})
    assert reused.status_code == 201 and REPLAY_HEADER not in reused.headers
    with app.app_context():
        db.session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        assert delete_expired() == 2
    assert count(backend.database_url, "idempotency_keys") == 0
    assert count(backend.database_url) == 3


def test_concurrent_requests_with_one_key_write_one_row(live_web: str, backend: Backend) -> None:
    backend.clean()
    barrier = threading.Barrier(8)

    def one(_: int) -> requests.Response:
        barrier.wait(30)
        return requests.post(live_web + "/api/todos", json={"text": "only once"},
                             headers={HEADER: "same-key-8-threads"}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    assert [a.status_code for a in answers] == [201] * 8, [a.text[:200] for a in answers]
    assert len({a.content for a in answers}) == 1
    assert sum(REPLAY_HEADER not in a.headers for a in answers) == 1
    assert count(backend.database_url) == 1


def test_an_answer_lost_on_the_way_then_a_retry_with_the_key_is_one_row(
        live_web: str, backend: Backend) -> None:
    backend.clean()
    body = b'{"text": "sent once, answer lost"}'
    host, port = live_web.removeprefix("http://").split(":")
    request = (f"POST /api/todos HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"{HEADER}: lost-answer\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
               ).encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)  # and hang up without reading the answer
    wait_until(lambda: count(backend.database_url) == 1, 30, "the first attempt to be stored")
    retry = requests.post(live_web + "/api/todos", data=body, timeout=30, headers={
        HEADER: "lost-answer", "Content-Type": "application/json"})
    assert retry.status_code == 201 and retry.headers[REPLAY_HEADER] == "true"
    assert retry.json()["text"] == "sent once, answer lost"
    assert count(backend.database_url) == 1


# --- PostgreSQL: the connection cut right after the server committed ----------------------


def hang_up(*socks: socket.socket) -> None:
    """Shut down, then close: shutdown also wakes the thread blocked reading the other way
    (a bare close would leave the peer waiting for an answer forever)."""
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


class CommitCutter:
    """A TCP proxy to PostgreSQL that, when armed, drops the connection on which the server
    acknowledges a COMMIT, before the acknowledgement reaches the app: the transaction is
    durable, the app sees a lost connection (the case the reliability notes describe)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        """Listen on a free loopback port."""
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._from_server, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            hang_up(src, dst)

    def _from_server(self, server: socket.socket, client: socket.socket) -> None:
        """Forward whole protocol messages (type byte, length), watching for COMMIT's."""
        buffer = b""
        try:
            while data := server.recv(65536):
                buffer += data
                out = b""
                while len(buffer) >= 5:
                    size = int.from_bytes(buffer[1:5], "big")
                    if len(buffer) < 1 + size:
                        break
                    message, buffer = buffer[:1 + size], buffer[1 + size:]
                    if message[:1] == b"C" and message[5:].startswith(b"COMMIT\0") and self.armed.is_set():
                        self.armed.clear()
                        self.cuts += 1
                        raise ConnectionAbortedError  # the acknowledgement never leaves
                    out += message
                client.sendall(out)
        except OSError:
            pass
        finally:
            hang_up(server, client)

    def close(self) -> None:
        """Stop accepting connections."""
        self.listener.close()


@pytest.fixture
def cutter(postgres_backend: Backend) -> Iterator[tuple[CommitCutter, str]]:
    """A commit-cutting proxy in front of the test run's PostgreSQL, and the URL through it."""
    url = make_url(postgres_backend.database_url)
    proxy = CommitCutter((url.host or "127.0.0.1", url.port or 5432))
    # No SSL or GSS negotiation: the proxy reads plain protocol messages.
    through = url.set(host="127.0.0.1", port=proxy.port).update_query_dict(
        {"sslmode": "disable", "gssencmode": "disable"})
    yield proxy, through.render_as_string(hide_password=False)
    proxy.close()


def test_a_commit_cut_by_a_dropped_connection_then_a_retry_with_the_key_is_one_row(
        postgres_backend: Backend, cutter: tuple[CommitCutter, str],
        make_app: Callable[..., Flask]) -> None:
    proxy, through = cutter
    postgres_backend.clean()
    app = make_app(postgres_backend.settings(DATABASE_URL=through), TESTING=True)
    client = app.test_client()
    assert client.get("/api/todos").status_code == 200  # the pool's connection, through the proxy
    proxy.armed.set()
    first = client.post("/api/todos", json={"text": "cut at commit"}, headers={HEADER: "cut-1"})
    assert proxy.cuts == 1
    # The client was told it failed, yet the row is in the database.
    assert first.status_code == 503, first.get_data(as_text=True)
    assert count(postgres_backend.database_url) == 1
    retry = client.post("/api/todos", json={"text": "cut at commit"}, headers={HEADER: "cut-1"})
    assert retry.status_code == 201
    assert retry.headers[REPLAY_HEADER] == "true"
    assert retry.get_json()["text"] == "cut at commit"
    assert count(postgres_backend.database_url) == 1
    # Without a key the same cut makes the duplicate the reliability notes warn about.
    proxy.armed.set()
    assert client.post("/api/todos", json={"text": "no key"}).status_code == 503
    assert client.post("/api/todos", json={"text": "no key"}).status_code == 201
    assert count(postgres_backend.database_url) == 3
