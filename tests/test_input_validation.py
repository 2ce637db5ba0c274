"""Hostile text and bodies on every route that writes, on PostgreSQL and on SQLite.

The rule (app/validation.py, README, docs/reliability.md): text PostgreSQL cannot store
(NUL, lone surrogates) and text that misleads readers of a shared list (controls, bidi
overrides, zero-width and other invisible format characters, non-characters) is refused
with 400 and the request id; forms are shown again with the message; nothing is written.
JSON bodies beyond the size or depth limits are refused before they are parsed.
"""

from __future__ import annotations

import json
import re

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import ApiError
from app.models import TEXT_MAX
from app.validation import JSON_MAX_BYTES, JSON_MAX_DEPTH, clean_text, text_pattern
from tests.test_routes import error_of, texts

# One representative of every refused class, as JSON escapes (what a client can send).
REFUSED = {
    "nul": "\\u0000",
    "bell": "\\u0007",
    "escape": "\\u001b",
    "c1 control": "\\u009b",
    "unit separator": "\\u001f",
    "lone high surrogate": "\\ud800",
    "lone low surrogate": "\\udfff",
    "bidi override": "\\u202e",
    "bidi isolate": "\\u2067",
    "zero-width space": "\\u200b",
    "bom": "\\ufeff",
    "tag character": "\\udb40\\udc41",
    "non-character bmp": "\\ufdd0",
    "non-character astral": "\\ud83f\\udfff",
}
# Kept exactly as typed: astral emoji, ZWJ sequences, right-to-left scripts, combining marks.
ACCEPTED = [
    "\U0001F469\u200d\U0001F4BB deploy",  # woman technologist: a ZWJ sequence
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew, right to left
    "\u0928\u092e\u0938\u094d\u0924\u0947",  # Devanagari with a virama
    "e\u0301cole",  # a combining accent, not normalised
    "\U0001D518\U0001D52B\U0001D526",  # mathematical letters (astral plane)
    "\U0001F600" * 500,  # 500 astral characters: the limit counts characters
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian with a ZWNJ
]


def post_json(client: FlaskClient, method: str, url: str, raw: str):  # type: ignore[no-untyped-def]
    """Send raw (JSON text, escapes and all) with the JSON content type."""
    return client.open(url, method=method, data=raw.encode(),
                       headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("escape", REFUSED.values(), ids=REFUSED.keys())
def test_every_json_route_refuses_each_class_and_writes_nothing(client: FlaskClient,
                                                                escape: str) -> None:
    todo = client.post("/api/todos", json={"text": "original"}).get_json()
    calls = [("POST", "/api/todos", "text"), ("POST", "/add", "task"),
             ("PATCH", f"/api/todos/{todo['id']}", "text"), ("PUT", f"/api/todos/{todo['id']}", "text"),
             ("POST", f"/edit/{todo['id']}", "text")]
    for method, url, field in calls:
        response = post_json(client, method, url, f'{{"{field}": "a{escape}b"}}')
        assert response.status_code == 400, (url, response.get_data(as_text=True))
        assert "must not contain" in error_of(response)
        assert "position 2" in error_of(response)
    assert texts(client) == ["original"]


@pytest.mark.parametrize("escape", REFUSED.values(), ids=REFUSED.keys())
def test_forms_show_the_message_again_and_write_nothing(client: FlaskClient, escape: str) -> None:
    char = json.loads(f'"{escape}"')
    encoded = "".join(f"%{b:02X}" for b in f"a{char}b".encode("utf-8", "surrogatepass"))
    todo = client.post("/api/todos", json={"text": "original"}).get_json()
    for url, field in (("/add", "task"), (f"/edit/{todo['id']}", "text")):
        response = client.post(url, data=f"{field}={encoded}".encode(), headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
        page = response.get_data(as_text=True)
        assert response.status_code == 400
        assert response.mimetype == "text/html"
        # A lone surrogate's bytes are not UTF-8: the form is refused as a whole.
        if any(0xD800 <= ord(c) <= 0xDFFF for c in char):
            assert "form body is not valid UTF-8" in page
        else:
            assert "must not contain" in page
            assert 'aria-invalid="true"' in page  # the field that holds the error
            assert "a\ufffdb" in page  # the typed text, shown with the character marked
        assert response.headers["X-Request-ID"] in page
    assert texts(client) == ["original"]


@pytest.mark.parametrize("body", [b"task=a\xed\xa0\x80b", b"task=caf\xe9", b"page=\xff"],
                         ids=["surrogate bytes", "latin-1", "bad page field"])
def test_a_form_body_that_is_not_utf8_is_refused_before_any_write(client: FlaskClient,
                                                                   body: bytes) -> None:
    todo = client.post("/api/todos", json={"text": "original"}).get_json()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    for url in ("/add", f"/edit/{todo['id']}"):  # the page again, with the message
        response = client.post(url, data=body, headers=headers)
        assert response.status_code == 400, url
        assert "form body is not valid UTF-8" in response.get_data(as_text=True)
    for url in (f"/toggle/{todo['id']}", f"/delete/{todo['id']}"):
        response = client.post(url, data=body, headers=headers)
        assert response.status_code == 400, url
        assert error_of(response) == "form body is not valid UTF-8"
    assert client.get(f"/api/todos/{todo['id']}").get_json()["done"] is False
    assert texts(client) == ["original"]


@pytest.mark.parametrize(("sent", "stored"), [
    ("two\nlines", "two lines"), ("tab\there", "tab here"), ("crlf\r\n\r\nend", "crlf end"),
    ("nel\x85ls\u2028ps\u2029end", "nel ls ps end"), ("\n  padded\t\n", "padded"),
])
def test_tabs_and_line_breaks_become_one_space(client: FlaskClient, sent: str, stored: str) -> None:
    response = client.post("/api/todos", json={"text": sent})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["text"] == stored
    assert texts(client) == [stored]


@pytest.mark.parametrize("text", ACCEPTED)
def test_other_unicode_is_stored_exactly_as_typed(client: FlaskClient, text: str) -> None:
    created = client.post("/api/todos", json={"text": text})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["text"] == text
    assert client.post("/add", data={"task": text}).status_code == 303
    assert texts(client) == [text, text]
    assert text in client.get("/").get_data(as_text=True)


def test_a_thousand_levels_of_nesting_is_a_400_on_every_json_route(client: FlaskClient) -> None:
    todo = client.post("/api/todos", json={"text": "original"}).get_json()
    deep = "[" * 1000 + "]" * 1000
    calls = [("POST", "/api/todos"), ("POST", "/add"), ("POST", "/reorder"),
             ("PATCH", f"/api/todos/{todo['id']}"), ("PUT", f"/api/todos/{todo['id']}"),
             ("POST", f"/edit/{todo['id']}")]
    for method, url in calls:
        for body in (deep, f'{{"text": {deep}}}', f'{{"order": {deep}}}'):
            response = post_json(client, method, url, body)
            assert response.status_code == 400, (url, response.get_data(as_text=True))
            assert error_of(response) == f"JSON body nested too deeply (limit {JSON_MAX_DEPTH} levels)"
    assert texts(client) == ["original"]


def test_nesting_up_to_the_limit_reaches_the_route_and_brackets_in_strings_do_not_count(
        client: FlaskClient) -> None:
    at_limit = "[" * (JSON_MAX_DEPTH - 1) + "]" * (JSON_MAX_DEPTH - 1)
    response = post_json(client, "POST", "/reorder", f'{{"order": {at_limit}}}')
    assert error_of(response) == "order must be a list of integers"  # parsed, then judged
    text = '[{"\\\\\\"' * 20
    response = post_json(client, "POST", "/api/todos", json.dumps({"text": text}))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["text"] == text


def test_a_json_body_over_the_size_limit_is_a_413(client: FlaskClient) -> None:
    body = json.dumps({"text": "a" * JSON_MAX_BYTES})
    response = post_json(client, "POST", "/api/todos", body)
    assert response.status_code == 413
    assert error_of(response) == f"JSON body too large (limit {JSON_MAX_BYTES} bytes)"
    assert texts(client) == []


@settings(max_examples=1500, deadline=None, database=None)
@given(text=st.text(st.characters(codec="utf-8"), max_size=12)
       | st.text(st.sampled_from(" \t\n\x85\u00a0\u2028\u3000\x1f\x00\u200b\u200d\u202e\ufeffa\U0001F600"),
                 max_size=6))
def test_the_openapi_pattern_states_the_text_rule_exactly(text: str) -> None:
    """What /api/openapi.json says about a todo's text is what the app does (for every
    string UTF-8 can carry): schemathesis's positive and negative checks rely on it."""
    try:
        clean_text(text)
        accepted = True
    except ApiError:
        accepted = False
    assert accepted == (re.search(text_pattern(), text) is not None and len(text) <= TEXT_MAX)
