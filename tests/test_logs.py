"""JSON logs of the real web and worker processes, read the way a log pipeline reads them:
every line one JSON object, every request and task line carrying its correlation ids."""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests

from app.observability import names
from app.observability.context import is_well_formed_request_id
from app.observability.web import client_ip
from stack.databases import reserved_redis_db
from stack.launch import Running
from tests.support.observed import access_lines, json_lines
from tests.support.plugin import StackFactory
from tests.support.processes import wait_until

PASSWORD = "s3cret-pw"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def lines_of(stack: Running, request_id: str) -> list[dict[str, Any]]:
    """Every web and worker line that carries request_id."""
    records = json_lines(stack.web.output()) + json_lines(stack.worker.output())
    return [r for r in records if r.get(names.F_REQUEST_ID) == request_id]


def access_line(stack: Running, request_id: str) -> dict[str, Any]:
    """The one access-log line of a request (waits for it: the log is written after the
    response)."""
    found: list[dict[str, Any]] = []

    def written() -> bool:
        found[:] = [r for r in access_lines(stack.web.output()) if r[names.F_REQUEST_ID] == request_id]
        return bool(found)

    wait_until(written, 5, f"the access line of {request_id}")
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def stack(pg_database_url: str, stack_factory: StackFactory) -> Iterator[Running]:
    """gunicorn and a prefork worker; the database password is ignored (trust auth) but
    present in the URL, so that any leak would show."""
    url = pg_database_url.replace("://postgres@", f"://postgres:{PASSWORD}@", 1)
    assert PASSWORD in url
    # A Redis database of our own: our worker is the only consumer of our tasks.
    with reserved_redis_db() as broker, \
            stack_factory({"DATABASE_URL": url, "CELERY_BROKER_URL": broker}) as running:
        yield running


@pytest.mark.stack
def test_an_access_line_describes_the_request_as_the_client_saw_it(stack: Running) -> None:
    rid = f"story-{uuid.uuid4().hex}"
    started = time.perf_counter()
    response = requests.get(
        stack.web.url + "/api/todos?per_page=5",
        headers={"X-Request-ID": rid, "User-Agent": "story-agent/1.0 (a user)"}, timeout=10,
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200

    line = access_line(stack, rid)
    stamp = datetime.fromisoformat(line[names.F_TIMESTAMP])
    assert stamp.utcoffset() == timedelta(0)
    assert line[names.F_LEVEL] == "INFO"
    assert line[names.F_LOGGER] == names.ACCESS_LOGGER
    assert line[names.F_MESSAGE] == "GET /api/todos 200"
    assert line[names.F_METHOD] == "GET"
    assert line[names.F_PATH] == "/api/todos"
    assert line[names.F_STATUS] == 200
    assert 0 < line[names.F_DURATION_MS] <= elapsed_ms
    assert line[names.F_CLIENT_IP] == "127.0.0.1"
    assert line[names.F_USER_AGENT] == "story-agent/1.0 (a user)"
    assert names.F_TRACE_ID not in line  # tracing is off here
    print(f"\nserver {line[names.F_DURATION_MS]:.2f} ms, client {elapsed_ms:.2f} ms")


@pytest.mark.stack
def test_a_well_formed_request_id_is_adopted_and_echoed(stack: Running) -> None:
    rid = "0c3f4a2e-caddy-7d1b9e"
    response = requests.get(stack.web.url + "/healthz", headers={"X-Request-ID": rid}, timeout=10)
    assert response.headers["X-Request-ID"] == rid
    assert access_line(stack, rid)[names.F_PATH] == "/healthz"


@pytest.mark.stack
@pytest.mark.parametrize(
    "bad",
    ['abc"def"ghi', "x" * 200, "short", "has spaces in it", "semi;colon;value", "a\tb\tc\td\te"],
)
def test_a_malformed_request_id_is_replaced_by_a_uuid4(stack: Running, bad: str) -> None:
    response = requests.get(stack.web.url + "/healthz", headers={"X-Request-ID": bad}, timeout=10)
    rid = response.headers["X-Request-ID"]
    assert UUID4.match(rid), rid
    assert access_line(stack, rid)[names.F_PATH] == "/healthz"
    assert bad not in stack.web.output()


@pytest.mark.stack
def test_a_request_id_with_a_newline_never_reaches_the_log(stack: Running) -> None:
    # requests refuses to send it; a hostile client writes the bytes itself (obs-fold).
    host, port = urlsplit(stack.web.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: forged-id-1234\r\n"
            b" injected-line-5678\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.decode("latin-1").split("\r\n\r\n", 1)[0]
    status = int(head.split()[1])
    echoed = re.search(r"(?im)^X-Request-ID: (.*)$", head)
    # gunicorn may refuse the folded header outright; if it lets it through, we replace it.
    assert status == 400 or (echoed and UUID4.match(echoed.group(1).strip())), head
    assert "injected-line" not in stack.web.output()


@pytest.mark.stack
def test_error_bodies_carry_the_request_id(stack: Running) -> None:
    for method, path in (("GET", "/api/todos/987654"), ("GET", "/no/such/page"),
                         ("DELETE", "/export")):
        response = requests.request(method, stack.web.url + path,
                                    headers={"Accept": "application/json"}, timeout=10)
        assert response.status_code in (404, 405)
        assert response.json()["request_id"] == response.headers["X-Request-ID"]
        assert access_line(stack, response.headers["X-Request-ID"])[names.F_STATUS] == (
            response.status_code
        )


@pytest.mark.stack
def test_request_ids_never_leak_into_the_next_request_on_a_reused_thread(stack: Running) -> None:
    sent: list[str | None] = []
    got: list[str] = []
    # One keep-alive connection: gthread serves it on the same worker, reusing threads.
    with requests.Session() as session:
        for i in range(60):
            rid = f"seq-{uuid.uuid4().hex}" if i % 2 == 0 else None
            headers = {"X-Request-ID": rid} if rid else {}
            response = session.get(stack.web.url + "/api/todos?per_page=1", headers=headers,
                                   timeout=10)
            sent.append(rid)
            got.append(response.headers["X-Request-ID"])
    for rid, echoed in zip(sent, got, strict=True):
        if rid:
            assert echoed == rid
        else:
            assert UUID4.match(echoed), echoed
    assert len(set(got)) == len(got)
    for echoed in got:
        line = access_line(stack, echoed)
        assert line[names.F_PATH] == "/api/todos"
    # Lines written outside any request (gunicorn's own) carry no request id at all.
    outside = [r for r in json_lines(stack.web.output()) if r[names.F_LOGGER] == "gunicorn.error"]
    assert outside and not [r for r in outside if names.F_REQUEST_ID in r]


@pytest.mark.stack
def test_worker_lines_carry_the_request_that_enqueued_the_task(stack: Running) -> None:
    rid = f"export-{uuid.uuid4().hex}"
    response = requests.post(stack.web.url + "/export", headers={"X-Request-ID": rid}, timeout=10)
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    wait_until(
        lambda: requests.get(f"{stack.web.url}/tasks/{task_id}", timeout=10).json()["state"]
        == "succeeded",
        60, "the export to succeed",
    )
    wait_until(lambda: any(r.get(names.F_MESSAGE) == "export finished"
                           for r in lines_of(stack, rid)), 10, "the worker's last line")

    worker_lines = [r for r in json_lines(stack.worker.output()) if r.get("task_id") == task_id]
    messages = [r[names.F_MESSAGE] for r in worker_lines]
    assert "export started" in messages and "export finished" in messages
    for line in worker_lines:
        assert line[names.F_REQUEST_ID] == rid, line
        assert line[names.F_JOB_TYPE] == "export"
        assert line["service"] == "todo-worker"
    assert access_line(stack, rid)[names.F_PATH] == "/export"


@pytest.mark.stack
def test_hostile_text_stays_one_json_line(stack: Running) -> None:
    nasty = 'line one\nline two "quoted" {"status_code": 200, "level": "INFO"}\r\n\\ end'
    response = requests.post(stack.web.url + "/api/todos", json={"text": nasty[:400]}, timeout=10)
    assert response.status_code == 201
    path = "/" + quote(nasty, safe="")
    ua = 'agent "x" {"level": "DEBUG"}'
    response = requests.get(stack.web.url + path, headers={"User-Agent": ua}, timeout=10)
    assert response.status_code == 404

    line = access_line(stack, response.headers["X-Request-ID"])
    assert line[names.F_PATH] == "/" + nasty
    assert line[names.F_USER_AGENT] == ua
    assert line[names.F_STATUS] == 404 and line[names.F_LEVEL] == "WARNING"
    json_lines(stack.web.output())  # still every line one JSON object


@pytest.mark.stack
def test_a_forwarded_client_is_believed_from_the_trusted_proxy(stack: Running) -> None:
    response = requests.get(stack.web.url + "/healthz",
                            headers={"X-Forwarded-For": "203.0.113.7, 127.0.0.1"}, timeout=10)
    line = access_line(stack, response.headers["X-Request-ID"])
    assert line[names.F_CLIENT_IP] == "203.0.113.7"


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("127.0.0.1", "198.51.100.9", "198.51.100.9"),  # Caddy on loopback forwards
        ("203.0.113.5", "198.51.100.9", "203.0.113.5"),  # a stranger cannot claim an address
        ("127.0.0.1", "6.6.6.6, 198.51.100.9", "198.51.100.9"),  # spoofed left part ignored
        ("127.0.0.1", "198.51.100.9, 10.0.0.2", "198.51.100.9"),  # trusted hops skipped
        ("127.0.0.1", "not-an-ip", "127.0.0.1"),  # malformed chain not believed
        ("127.0.0.1", None, "127.0.0.1"),
        ("::1", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_believes_forwarded_for_only_from_trusted_proxies(
    remote: str, forwarded: str | None, expected: str
) -> None:
    assert client_ip(remote, forwarded, ("127.0.0.1", "::1", "10.0.0.0/8")) == expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [("0c3f4a2e-9d1b-4f5e-8a7b-1234567890ab", True), ("01HZX3K9Q7ABCDEF", True),
     ("abc\ndefghijk", False), ("abcdefgh\r\n", False), ('"quoted-id"', False), ("", False),
     (None, False), ("y" * 129, False)],
)
def test_request_id_validation(value: str | None, ok: bool) -> None:
    assert is_well_formed_request_id(value) is ok


@pytest.mark.stack
def test_no_password_and_no_plain_text_in_any_line_up_to_shutdown(stack: Running) -> None:
    # The story ends: both processes stop, and their whole output is examined.
    stack.worker.stop()
    stack.web.stop()
    for proc in (stack.web, stack.worker):
        output = proc.output()
        assert PASSWORD not in output, proc.name
        records = json_lines(output)  # every line, boot to shutdown, is JSON
        starting = [r for r in records if str(r[names.F_MESSAGE]).startswith("starting todo-")]
        assert len(starting) == 1, proc.name
        assert starting[0]["database"].startswith("postgresql+psycopg2://postgres:***@")
        for record in records:
            assert {names.F_TIMESTAMP, names.F_LEVEL, names.F_LOGGER, names.F_MESSAGE} <= set(
                record
            ), record
    print(f"\nweb {len(json_lines(stack.web.output()))} lines, "
          f"worker {len(json_lines(stack.worker.output()))} lines, all JSON")

