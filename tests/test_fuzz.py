"""Property-based fuzzing of every route over real gunicorn, on PostgreSQL (with a Redis
broker) and on the embedded SQLite defaults.

Hypothesis generates paths (ids of every shape), query strings, headers and bodies (JSON of
any shape, forms, raw bytes, wrong content types) for each route, including the HTML form
routes and /export, /tasks, /download, /reorder and /edit. What a client must always see: no
5xx, and every error answer carries its request id (in the JSON body, or on the error page).
Text is drawn from the whole Unicode range: lone surrogates, NUL and other controls,
non-characters, bidi and zero-width format characters, astral planes (PostgreSQL refuses
some of these at INSERT; SQLite stores them). The run is bounded (max_examples per route, no
deadline: the server is remote).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.migrate import upgrade
from app.settings import Settings
from stack.private_services import private_redis
from tests.support.processes import start_gunicorn

pytestmark = pytest.mark.stack

EXAMPLES = 100
HOSTILE = [
    "", "0", "-1", "2147483648", "99999999999999999999", "1.5", "1e3", "NaN", "true", "null",
    "'; DROP TABLE todos; --", "1 OR 1=1", "../../etc/passwd", "%00", "\x00", "\u202e", "😀",
    "<script>alert(1)</script>", "{{7*7}}", "a" * 600, "00000000-0000-0000-0000-000000000000",
]


@dataclass(frozen=True)
class Route:
    """A route of the app and how to call it."""

    method: str
    template: str  # "{id}" is replaced by a generated path segment


ROUTES = [
    Route("GET", "/"), Route("POST", "/add"), Route("POST", "/delete/{id}"),
    Route("POST", "/toggle/{id}"), Route("POST", "/edit/{id}"), Route("POST", "/reorder"),
    Route("POST", "/export"), Route("GET", "/tasks/{id}"), Route("GET", "/download/{id}"),
    Route("GET", "/api/todos"), Route("POST", "/api/todos"), Route("GET", "/api/todos/{id}"),
    Route("PATCH", "/api/todos/{id}"), Route("PUT", "/api/todos/{id}"),
    Route("DELETE", "/api/todos/{id}"), Route("GET", "/api/openapi.json"),
    Route("GET", "/healthz"), Route("GET", "/readyz"), Route("GET", "/metrics"),
    Route("PUT", "/admin/faults"), Route("GET", "/admin/faults"), Route("DELETE", "/admin/faults"),
    Route("GET", "/{id}"), Route("POST", "/{id}"),
]

# Every code point, surrogates included (hypothesis leaves out category Cs by default), and
# a few of each class PostgreSQL or a reader cares about, so that short runs meet them too.
any_character = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
special_character = st.sampled_from(
    ["\x00", "\x1b", "\x85", "\ud800", "\udfff", "\ufdd0", "\uffff", "\U0010ffff", "\u202e",
     "\u2066", "\u200b", "\u200d", "\ufeff", "\U000e0041", "\U0001F600", "\n", "\t"])
unicode_text = st.text(st.one_of(any_character, special_character), max_size=40)
texts = st.one_of(st.sampled_from(HOSTILE), unicode_text)
segments = st.one_of(st.integers(-(2**40), 2**40).map(str), texts.filter(bool))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
# Objects with the fields the routes read, holding values of every type.
json_objects = st.fixed_dictionaries({}, optional={
    "text": json_values, "task": json_values, "done": json_values, "order": json_values,
    "error_rate": json_values, "latency.api.list_todos": json_values,
})
ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(str.strip)
bodies = st.one_of(
    st.none(),
    json_objects.map(lambda v: ("application/json", json.dumps(v).encode())),
    json_values.map(lambda v: ("application/json", json.dumps(v).encode())),
    st.dictionaries(st.sampled_from(["task", "text", "page", "done"]), texts, max_size=3).map(
        lambda d: ("application/x-www-form-urlencoded",
                   # surrogatepass: a lone surrogate is sent as its (invalid UTF-8) bytes
                   "&".join(f"{quote(k)}={quote(v, errors='surrogatepass')}"
                            for k, v in d.items()).encode())),
    st.tuples(st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                               "multipart/form-data", "text/plain", "application/json; charset=utf-16",
                               "application/xml"]), st.binary(max_size=200)),
)
queries = st.dictionaries(
    st.sampled_from(["page", "per_page", "export", "watch", "cursor", "edit"]), segments, max_size=3)
headers = st.fixed_dictionaries({}, optional={
    "Accept": st.sampled_from(["text/html", "application/json", "*/*", "text/html;q=0.1, */*",
                               "garbage/;;"]),
    "X-Request-ID": ascii_text,
    "Authorization": st.sampled_from(["Bearer wrong-token-1234567890", "Bearer ", "Basic Zm9vOmJhcg=="]),
    "User-Agent": ascii_text,
    # Keys of every shape, few enough that some repeat with another body (a 422, never a 5xx).
    "Idempotency-Key": st.one_of(ascii_text, st.sampled_from(["k1", "k2", "x" * 256])),
    "X-Forwarded-For": st.sampled_from(["1.2.3.4", "not-an-ip", "::1, 10.0.0.1"]),
})


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def fuzz_base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gunicorn on the test run's PostgreSQL database and a private Redis broker, or on the
    embedded SQLite defaults (no worker: exports are only queued)."""
    tmp: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    with private_redis(tmp / "redis", persistent=False) as broker:
        env = {"VAR_DIR": str(tmp), "APP_ENV": "test", "FAULTS_TOKEN": "fuzz-token-that-is-never-sent",
               "LOG_LEVEL": "WARNING"}
        if request.param == "postgres":
            env.update(DATABASE_URL=request.getfixturevalue("pg_database_url"),
                       CELERY_BROKER_URL=broker.url, CELERY_RESULT_BACKEND="")
        else:
            upgrade(database_url=Settings.from_env(env).database_url)
        web, base = start_gunicorn(env, workers=2, threads=4)
        try:
            requests.post(base + "/api/todos", json={"text": "seed"}, timeout=10)
            yield base
        finally:
            web.stop()
        assert "Traceback" not in web.output(), web.output()[-3000:]


def check_answer(response: requests.Response) -> None:
    """No 5xx; an error answer names its request id (JSON field or error page)."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    rid = response.headers.get("X-Request-ID", "")
    assert rid, "no X-Request-ID header"
    if response.status_code < 400:
        return
    if response.headers.get("Content-Type", "").startswith("application/json"):
        body: Any = response.json()
        assert body.get("request_id") == rid, body
        assert isinstance(body.get("error"), str) and body["error"], body
    else:
        assert rid in response.text, response.text[:500]


def test_openapi_operations_are_all_fuzzed(fuzz_base: str) -> None:
    document = requests.get(fuzz_base + "/api/openapi.json", timeout=10).json()
    documented = {(method.upper(), path.split("{")[0])
                  for path, ops in document["paths"].items() for method in ops
                  if method in ("get", "post", "put", "patch", "delete")}
    fuzzed = {(r.method, r.template.split("{")[0]) for r in ROUTES}
    assert documented <= fuzzed, documented - fuzzed


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.template}")
def test_no_input_makes_a_5xx(fuzz_base: str, route: Route) -> None:
    session = requests.Session()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(segment=segments, query=queries, body=bodies, extra=headers)
    def one(segment: str, query: dict[str, str], body: tuple[str, bytes] | None,
            extra: dict[str, str]) -> None:
        path = route.template.replace("{id}", quote(segment, safe="", errors="surrogatepass"))
        if query:
            path += "?" + urlencode(query, errors="surrogatepass")
        sent = dict(extra)
        data = None
        if body is not None and route.method != "GET":
            sent["Content-Type"], data = body
        response = session.request(route.method, fuzz_base + path, data=data,
                                   headers=sent, timeout=30, allow_redirects=False)
        check_answer(response)

    one()


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=unicode_text)
def test_any_unicode_text_is_stored_exactly_or_refused_with_a_400(client: FlaskClient, text: str) -> None:
    """On both backends: what the API accepts, the database gives back character for
    character (a round trip through PostgreSQL's UTF-8); what it refuses is a 400 with the
    request id and writes nothing. The same text through the form behaves the same."""
    before = client.get("/api/todos?per_page=1").get_json()["total"]
    response = client.post("/api/todos", json={"text": text})
    assert response.status_code in (201, 400), (response.status_code, response.get_data()[:300])
    form = client.post("/add", data=f"task={quote(text, errors='surrogatepass')}".encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == (303 if response.status_code == 201 else 400), form.status_code
    after = client.get("/api/todos?per_page=1").get_json()["total"]
    if response.status_code == 400:
        body = response.get_json()
        assert body["request_id"] == response.headers["X-Request-ID"] and body["error"]
        assert after == before
        return
    stored = response.get_json()
    assert client.get(f"/api/todos/{stored['id']}").get_json()["text"] == stored["text"]
    # The README's rule: trimmed, runs of tabs and line breaks made one space, else as typed.
    assert stored["text"] == re.sub("[\t\n\v\f\r\x85\u2028\u2029]+", " ", text.strip())
    assert not any(unicodedata.category(c) in ("Cc", "Cs") or (unicodedata.category(c) == "Cf"
                   and c not in "\u200c\u200d") for c in stored["text"])
    assert after == before + 2
