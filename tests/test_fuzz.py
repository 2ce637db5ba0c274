"""Property-based fuzzing of every route over real gunicorn, PostgreSQL and a Redis broker.

Hypothesis generates paths (ids of every shape), query strings, headers and bodies (JSON of
any shape, forms, raw bytes, wrong content types) for each route, including the HTML form
routes and /export, /tasks, /download, /reorder and /edit. What a client must always see: no
5xx, and every error answer carries its request id (in the JSON body, or on the error page).
The run is bounded (max_examples per route, no deadline: the server is remote).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.processes import start_gunicorn
from tests.support.services import private_redis

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

texts = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))
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
                   "&".join(f"{quote(k)}={quote(v)}" for k, v in d.items()).encode())),
    st.tuples(st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                               "multipart/form-data", "text/plain", "application/json; charset=utf-16",
                               "application/xml"]), st.binary(max_size=200)),
)
queries = st.dictionaries(st.sampled_from(["page", "per_page", "export", "watch"]), segments,
                          max_size=3)
headers = st.fixed_dictionaries({}, optional={
    "Accept": st.sampled_from(["text/html", "application/json", "*/*", "text/html;q=0.1, */*",
                               "garbage/;;"]),
    "X-Request-ID": ascii_text,
    "Authorization": st.sampled_from(["Bearer wrong-token-1234567890", "Bearer ", "Basic Zm9vOmJhcg=="]),
    "User-Agent": ascii_text,
    "X-Forwarded-For": st.sampled_from(["1.2.3.4", "not-an-ip", "::1, 10.0.0.1"]),
})


@pytest.fixture(scope="module")
def fuzz_base(pg_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gunicorn on the test run's PostgreSQL database and a private Redis broker (no worker:
    exports are only queued)."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    with private_redis(tmp / "redis", persistent=False) as broker:
        env = {"VAR_DIR": str(tmp), "APP_ENV": "test", "DATABASE_URL": pg_database_url,
               "CELERY_BROKER_URL": broker.url, "CELERY_RESULT_BACKEND": "",
               "FAULTS_TOKEN": "fuzz-token-that-is-never-sent", "LOG_LEVEL": "WARNING"}
        web, base = start_gunicorn(env, tmp / "log", workers=2, threads=4)
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
        path = route.template.replace("{id}", quote(segment, safe=""))
        sent = dict(extra)
        data = None
        if body is not None and route.method != "GET":
            sent["Content-Type"], data = body
        response = session.request(route.method, fuzz_base + path, params=query, data=data,
                                   headers=sent, timeout=30, allow_redirects=False)
        check_answer(response)

    one()
