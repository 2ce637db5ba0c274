"""The facilitator's page in real Chromium, against the real `lab room serve`.

What a facilitator sees: the room live (a verdict appears without a reload, within 5 s), who
is stuck, the names learners typed shown as text (never run), a wrong token refused and the
right one typed from the keyboard, the CSV downloaded, nothing fetched from outside the
service, and no serious accessibility violation (axe-core).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from room import store
from tests.support.browser import axe_violations, describe, launch_chromium, screenshot
from tests.support.processes import BIN, free_port, http_ok, start, wait_until

HOSTILE = '<img src=x onerror="window.pwned=1">Eve'


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, store.RoomStore]]:
    base = tmp_path_factory.mktemp("room")
    port = free_port()
    proc = start("room", [str(BIN / "lab"), "room", "serve", "--port", str(port)],
                 {"VAR_DIR": str(base / "var")}, base)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{url}/healthz"), 30, "lab room serve")
    try:
        yield url, store.RoomStore(base / "var" / "room" / "room.sqlite")
    finally:
        proc.stop()


def _push(url: str, room: store.RoomStore, learner: str, name: str, *verdicts: tuple[str, str, str]) -> None:
    body = {"learner": learner, "name": name, "verdicts": [
        {"id": uuid.uuid4().hex, "exercise": exercise, "status": status, "mistake": mistake,
         "advice": f"advice for {mistake}" if mistake else "", "attempt": 1}
        for exercise, status, mistake in verdicts]}
    answer = requests.post(f"{url}/api/verdicts", json=body, timeout=10,
                           headers={"X-Room-Code": room.secret("code")})
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # bypass_csp: axe-core is injected as an inline script, which the page's policy refuses.
    context = browser.new_context(accept_downloads=True, bypass_csp=True)
    yield context.new_page()
    context.close()


def test_the_room_updates_live_and_shows_names_as_text(room: tuple[str, store.RoomStore], page: Page) -> None:
    url, rooms = room
    _push(url, rooms, "learner-ann", "Ann", ("1.1", "right", ""), ("1.2", "wrong", "no_rate"))
    _push(url, rooms, "learner-eve", HOSTILE, *[("1.1", "wrong", "avg_of_rate")] * 3)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(f"{url}/#token={rooms.secret('token')}")
    grid = page.locator("#grid")
    expect(grid.locator("tbody tr")).to_have_count(2)
    eve = grid.locator("tbody tr", has_text="Eve")
    expect(eve.locator("th")).to_have_text(HOSTILE)  # the markup is shown, not run
    assert page.evaluate("window.pwned") is None and page.locator("#grid img").count() == 0
    expect(page.locator("#stuck")).to_contain_text(f"{HOSTILE}: 3 wrong answers in a row on 1.1")
    one = page.locator("#exercises tbody tr", has_text="01-metrics").first
    expect(one).to_contain_text("avg_of_rate (1): advice for avg_of_rate")
    ann_12 = grid.locator("tbody tr", has_text="Ann").locator("td").nth(_column(page, "1.2"))
    expect(ann_12).to_contain_text("wrong, 1 attempt, no_rate")
    # A new verdict shows without a reload, within 5 s (the page asks every 2 s).
    page.evaluate("window.sameDocument = true")
    _push(url, rooms, "learner-ann", "Ann", ("1.2", "right", ""))
    expect(ann_12).to_contain_text("right", timeout=5000)
    _push(url, rooms, "learner-bob", "Bob", ("2.1", "right", ""))
    expect(grid.locator("tbody tr")).to_have_count(3, timeout=5000)
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "room-live")
    outside = [u for u in fetched if not u.startswith(url)]
    assert not outside, f"the page fetched from outside the room service: {outside}"


def _column(page: Page, exercise: str) -> int:
    """The index of an exercise's cell among a row's <td> cells."""
    headers: list[Any] = page.locator("#grid thead th").all_inner_texts()
    return headers.index(exercise) - 1


def test_a_wrong_token_is_refused_and_the_right_one_typed_opens_the_room(
        room: tuple[str, store.RoomStore], page: Page) -> None:
    url, rooms = room
    page.goto(f"{url}/#token=not-the-token")
    expect(page.get_by_role("alert")).to_contain_text("Wrong facilitator token")
    expect(page.locator("#room")).to_be_hidden()
    field = page.get_by_label("Facilitator token")
    field.focus()
    page.keyboard.type(rooms.secret("token"))
    page.keyboard.press("Enter")
    expect(page.locator("#room")).to_be_visible()
    expect(page.get_by_role("alert")).to_be_hidden()


def test_the_page_is_usable_from_the_keyboard_and_exports_csv(room: tuple[str, store.RoomStore], page: Page,
                                                               tmp_path: Path) -> None:
    url, rooms = room
    _push(url, rooms, "learner-ann", "Ann", ("1.1", "right", ""))
    page.goto(f"{url}/#token={rooms.secret('token')}")
    expect(page.locator("#grid tbody tr").first).to_be_visible()
    reached = []
    for _ in range(8):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim()"))
        if reached[-1] == "Download CSV":
            break
    assert reached[-1] == "Download CSV", reached
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    saved = tmp_path / "room.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert {"learner", "exercise", "status", "attempts", "mistake"} <= set(rows[0])
    assert any(r["learner"] == "Ann" and r["exercise"] == "1.1" and r["status"] == "right" for r in rows)
    violations = axe_violations(page)
    assert not violations, describe(violations)
