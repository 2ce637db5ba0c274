"""The todo page as people use it, in real Chromium (Debian's package) driven by Playwright.

Served by real gunicorn with a real Celery worker on the embedded backend (SQLite data,
SQLite-backed broker) in a temporary VAR_DIR. Each test starts from an empty list and
asserts what a user sees; screenshots of the main states go to reports/screenshots/.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import create_engine, text

from app.settings import Settings
from stack.launch import Running
from tests.support.browser import (
    CHROMIUM,
    axe_violations,
    describe,
    launch_chromium,
    require_chromium,
    screenshot,
)
from tests.support.plugin import StackFactory

pytestmark = [pytest.mark.embedded, pytest.mark.browser, pytest.mark.stack]

SCRIPT_TEXT = "<script>window.__pwned = 1; alert('xss')</script><img src=x onerror=\"window.__pwned = 2\">"


@pytest.fixture(scope="module")
def stack_settings() -> dict[str, str]:
    """This module's stacks run on the embedded defaults (SQLite data and broker)."""
    return {}


@pytest.fixture(scope="module")
def lab(stack_factory: StackFactory) -> Iterator[Running]:
    """gunicorn and a Celery worker on a fresh embedded backend, shared by this module."""
    with stack_factory({}, concurrency=1) as running:
        yield running


def clean(lab: Running) -> None:
    """Empty the list and the export history."""
    engine = create_engine(Settings.from_env(lab.env).database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM todos"))
        conn.execute(text("DELETE FROM exports"))
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless system Chromium for the module; fails (never skips) when it is missing."""
    try:
        require_chromium()
    except AssertionError as exc:
        pytest.fail(str(exc))
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def open_context(browser: Browser, lab: Running, **options: object) -> BrowserContext:
    """A fresh browser profile pointed at the lab."""
    options.setdefault("viewport", {"width": 1100, "height": 900})
    context = browser.new_context(base_url=lab.web.url, accept_downloads=True, **options)  # type: ignore[arg-type]
    # Generous for a loaded 2-core machine, short enough that a broken page fails quickly.
    context.set_default_timeout(15_000)
    return context


@dataclass
class Watch:
    """What the page did that a user would notice: dialogs and script errors."""

    dialogs: list[str]
    errors: list[str]


@pytest.fixture
def watch() -> Watch:
    """Collects dialogs and uncaught page errors."""
    return Watch([], [])


def watched(page: Page, watch: Watch) -> Page:
    """Record dialogs (dismissing them) and uncaught script errors of page."""
    def on_dialog(dialog):  # type: ignore[no-untyped-def]
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    return page


@pytest.fixture
def page(browser: Browser, lab: Running, watch: Watch) -> Iterator[Page]:
    """A page with JavaScript on, over an empty list."""
    clean(lab)
    context = open_context(browser, lab)
    yield watched(context.new_page(), watch)
    context.close()
    assert watch.errors == [], f"script errors in the page: {watch.errors}"


@pytest.fixture
def nojs_page(browser: Browser, lab: Running, watch: Watch) -> Iterator[Page]:
    """A page with JavaScript disabled, over an empty list."""
    clean(lab)
    context = open_context(browser, lab, java_script_enabled=False)
    yield watched(context.new_page(), watch)
    context.close()


def seed(page: Page, *texts: str) -> list[int]:
    """Add todos through the JSON API (not the page under test); their ids."""
    ids = []
    for item in texts:
        response = page.request.post("/api/todos", data={"text": item})
        assert response.status == 201, response.text()
        ids.append(response.json()["id"])
    return ids


def todo_texts(page: Page):  # type: ignore[no-untyped-def]
    """The task texts in the order the page shows them."""
    return page.locator("[data-todos] [data-text]")


def item(page: Page, name: str):  # type: ignore[no-untyped-def]
    """The list item of the task whose text is exactly name."""
    return page.get_by_role("listitem").filter(has=page.locator("[data-text]", has_text=name))


def export_status(page: Page):  # type: ignore[no-untyped-def]
    """The live status line of the export panel."""
    return page.locator("#export").get_by_role("status")


def mark_no_reload(page: Page) -> None:
    """Set a flag in the window; a full page load would lose it."""
    page.evaluate("window.__sameDocument = true")


def open_list_of(page: Page, *texts: str) -> None:
    """The page showing exactly these todos (added through the API), marked to catch a reload."""
    seed(page, *texts)
    page.goto("/")
    mark_no_reload(page)


def assert_no_reload(page: Page) -> None:
    """The page was not reloaded since mark_no_reload."""
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"


def test_system_chromium_is_installed() -> None:
    """The browser tests drive Debian's chromium; without it they must fail, not skip."""
    assert CHROMIUM.is_file(), "install the Debian package `chromium` (sudo apt-get install -y chromium)"


def test_empty_state_then_add_tasks_with_the_keyboard(page: Page) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200
    expect(page.get_by_text("Nothing to do yet")).to_be_visible()
    # The footer names this page load's request id, as the logs do.
    expect(page.get_by_test_id("request-id")).to_have_text(response.headers["x-request-id"])
    screenshot(page, "01-empty")

    field = page.get_by_label("New task")
    field.fill("Read the request log")
    field.press("Enter")
    expect(todo_texts(page)).to_have_text(["Read the request log"])
    page.get_by_label("New task").fill("Find the trace of a slow request")
    page.get_by_role("button", name="Add").click()
    expect(todo_texts(page)).to_have_text(["Read the request log", "Find the trace of a slow request"])
    expect(page.get_by_text("2 tasks")).to_be_visible()
    expect(page.get_by_text("Nothing to do yet")).to_be_hidden()
    page.reload()
    expect(todo_texts(page)).to_have_text(["Read the request log", "Find the trace of a slow request"])


def test_toggle_edit_and_delete_happen_in_place_and_survive_a_reload(page: Page) -> None:
    open_list_of(page, "Buy milk", "Call Alice", "Water the plants")

    done = page.get_by_role("button", name="Done: Buy milk")
    done.click()
    expect(done).to_have_attribute("aria-pressed", "true")

    page.get_by_text("Edit Call Alice").click()
    field = item(page, "Call Alice").get_by_label("New text")
    expect(field).to_be_focused()
    field.fill("Call Alice about the dashboards")
    field.press("Enter")
    expect(todo_texts(page)).to_have_text(["Buy milk", "Call Alice about the dashboards", "Water the plants"])
    expect(field).to_be_hidden()

    page.get_by_role("button", name="Delete Water the plants").click()
    expect(todo_texts(page)).to_have_text(["Buy milk", "Call Alice about the dashboards"])
    expect(page.get_by_text("2 tasks")).to_be_visible()
    assert_no_reload(page)
    screenshot(page, "02-list-with-done-and-edited")

    page.reload()
    expect(todo_texts(page)).to_have_text(["Buy milk", "Call Alice about the dashboards"])
    expect(page.get_by_role("button", name="Done: Buy milk")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("button", name="Done: Call Alice about the dashboards")).to_have_attribute(
        "aria-pressed", "false"
    )

    # Toggling back, and deleting the rest, ends in the empty state without a reload.
    mark_no_reload(page)
    page.get_by_role("button", name="Done: Buy milk").click()
    expect(page.get_by_role("button", name="Done: Buy milk")).to_have_attribute("aria-pressed", "false")
    page.get_by_role("button", name="Delete Buy milk").click()
    page.get_by_role("button", name="Delete Call Alice about the dashboards").click()
    expect(page.get_by_text("Nothing to do yet")).to_be_visible()
    expect(page.get_by_label("New task")).to_be_focused()
    assert_no_reload(page)
    page.reload()
    expect(page.get_by_text("Nothing to do yet")).to_be_visible()


def test_reorder_with_the_keyboard(page: Page) -> None:
    open_list_of(page, "First", "Second", "Third")

    move_down = page.get_by_role("button", name="Move down: First")
    move_down.focus()
    with page.expect_response("**/reorder") as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    expect(todo_texts(page)).to_have_text(["Second", "First", "Third"])
    expect(move_down).to_be_focused()

    # Alt+Arrow moves the task whose control has focus.
    page.get_by_role("button", name="Done: Third").focus()
    for _ in range(2):
        with page.expect_response("**/reorder"):
            page.keyboard.press("Alt+ArrowUp")
    expect(todo_texts(page)).to_have_text(["Third", "Second", "First"])
    expect(page.get_by_role("button", name="Done: Third")).to_be_focused()
    expect(page.get_by_role("button", name="Move up: Third")).to_be_disabled()
    expect(page.get_by_role("status").filter(has_text="Moved")).to_have_text(
        "Moved “Third” to position 1 of 3."
    )
    assert_no_reload(page)

    page.reload()
    expect(todo_texts(page)).to_have_text(["Third", "Second", "First"])


def test_reorder_by_drag_and_drop(page: Page) -> None:
    open_list_of(page, "Alpha", "Bravo", "Charlie")
    target = item(page, "Charlie")
    box = target.bounding_box()
    assert box is not None
    with page.expect_response("**/reorder") as answer:
        item(page, "Alpha").locator(".handle").drag_to(
            target, target_position={"x": box["width"] / 2, "y": box["height"] - 4}
        )
    assert answer.value.status == 200
    expect(todo_texts(page)).to_have_text(["Bravo", "Charlie", "Alpha"])
    assert_no_reload(page)
    page.reload()
    expect(todo_texts(page)).to_have_text(["Bravo", "Charlie", "Alpha"])


def test_export_shows_progress_and_downloads_exactly_the_todos(page: Page, tmp_path: Path) -> None:
    texts = ["Plain", 'Has "quotes", and a comma', "=SUM(A1:A2)"]
    seed(page, *texts)
    page.request.post("/toggle/" + str(seed(page, "Done one")[0]))
    texts.append("Done one")
    page.goto("/")
    # Record every state the status area shows, however fast the worker is.
    page.evaluate(
        """() => {
            window.__exportStates = [];
            const status = document.querySelector('[data-export-status]');
            new MutationObserver(() => {
                const badge = status.querySelector('.badge');
                const last = window.__exportStates[window.__exportStates.length - 1];
                if (badge && badge.textContent !== last) window.__exportStates.push(badge.textContent);
            }).observe(status, {childList: true, subtree: true});
        }"""
    )
    page.get_by_role("button", name="Export CSV").click()
    status = export_status(page)
    expect(status).to_contain_text("Done", timeout=30_000)
    expect(status).to_contain_text("4 rows exported.")
    states = page.evaluate("window.__exportStates")
    assert states[0] == "Queued" and states[-1] == "Done", states
    screenshot(page, "04-export-done")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    saved = tmp_path / "export.csv"
    download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    # Spreadsheet formulas are neutralised with a leading apostrophe.
    assert [r["text"] for r in rows] == ["Plain", 'Has "quotes", and a comma', "'=SUM(A1:A2)", "Done one"]
    assert [r["done"] for r in rows] == ["false", "false", "false", "true"]

    # The export's status survives a reload (its id is in the address).
    page.reload()
    expect(export_status(page)).to_contain_text("Done")
    expect(page.get_by_role("link", name="Download CSV")).to_be_visible()


def test_bad_input_is_explained_next_to_the_field(page: Page) -> None:
    seed(page, "Keep me")
    page.goto("/")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    field = page.get_by_label("New task")
    page.get_by_role("button", name="Add").click()
    expect(field).to_have_accessible_description(re.compile("task text must not be empty"))
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    field.fill("x" * 501)
    expect(field).not_to_have_attribute("aria-invalid", "true")
    field.press("Enter")
    expect(page.locator("#task-error")).to_have_text("task text must be at most 500 characters (got 501)")
    screenshot(page, "05-bad-input")

    page.get_by_text("Edit Keep me").click()
    edit = item(page, "Keep me").get_by_label("New text")
    edit.fill("   ")
    edit.press("Enter")
    expect(item(page, "Keep me").locator("[data-error]")).to_have_text("task text must not be empty")
    expect(edit).to_have_attribute("aria-invalid", "true")
    # The browser checked these itself: nothing was sent.
    assert posts == []
    expect(todo_texts(page)).to_have_text(["Keep me"])


def test_server_side_messages_without_javascript(nojs_page: Page) -> None:
    page = nojs_page
    page.goto("/")
    seed(page, "Keep me")
    with page.expect_response("**/add") as answer:
        page.get_by_role("button", name="Add").click()
    assert answer.value.status == 400
    expect(page.get_by_label("New task")).to_have_accessible_description(
        re.compile("task text must not be empty")
    )
    page.get_by_label("New task").fill("y" * 501)
    with page.expect_response("**/add") as answer:
        page.get_by_label("New task").press("Enter")
    assert answer.value.status == 400
    expect(page.locator("#task-error")).to_have_text("task text must be at most 500 characters (got 501)")
    # What the user typed is kept so it can be fixed.
    expect(page.get_by_label("New task")).to_have_value("y" * 501)

    page.get_by_text("Edit Keep me").click()
    page.get_by_label("New text").fill("")
    with page.expect_response("**/edit/*") as answer:
        page.get_by_role("button", name="Save").click()
    assert answer.value.status == 400
    expect(page.get_by_label("New text")).to_have_accessible_description(
        re.compile("task text must not be empty")
    )
    screenshot(page, "06-bad-edit-no-js")
    expect(todo_texts(page)).to_have_text(["Keep me"])


def test_a_task_with_script_in_it_stays_inert_text(page: Page, watch: Watch) -> None:
    page.goto("/")
    scripts_before = page.locator("script").count()
    page.get_by_label("New task").fill(SCRIPT_TEXT)
    page.get_by_label("New task").press("Enter")
    expect(todo_texts(page)).to_have_text([SCRIPT_TEXT])
    # Edited in place (through the JSON route and app.js) it stays text too.
    page.get_by_text("Edit <script>").click()
    field = page.get_by_label("New text")
    field.fill(SCRIPT_TEXT + " (edited)")
    field.press("Enter")
    expect(todo_texts(page)).to_have_text([SCRIPT_TEXT + " (edited)"])
    page.get_by_role("button", name="Done: " + SCRIPT_TEXT + " (edited)").click()
    expect(page.get_by_role("button", name="Done: " + SCRIPT_TEXT + " (edited)")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.reload()
    expect(todo_texts(page)).to_have_text([SCRIPT_TEXT + " (edited)"])
    assert page.locator("script").count() == scripts_before
    assert page.locator("[data-todos] img").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert watch.dialogs == []
    screenshot(page, "07-script-text-inert")


def test_errors_from_json_calls_are_shown_with_their_request_id(page: Page) -> None:
    (gone,) = seed(page, "Deleted elsewhere")
    page.goto("/")
    # Someone else deletes the task while this page is open.
    assert page.request.post(f"/delete/{gone}").status == 200
    with page.expect_response(f"**/toggle/{gone}") as answer:
        page.get_by_role("button", name="Done: Deleted elsewhere").click()
    request_id = answer.value.headers["x-request-id"]
    alert = page.get_by_role("alert").filter(has_text="Could not update")
    expect(alert).to_contain_text(
        f"Could not update “Deleted elsewhere”: todo {gone} not found (request id {request_id})"
    )
    expect(alert.get_by_role("button", name="Dismiss")).to_be_visible()
    screenshot(page, "08-json-error")
    alert.get_by_role("button", name="Dismiss").click()
    expect(alert).to_be_hidden()


def test_the_page_works_without_javascript(nojs_page: Page, lab: Running, tmp_path: Path) -> None:
    page = nojs_page
    page.goto("/")
    expect(page.get_by_text("Nothing to do yet")).to_be_visible()
    # Controls that need JavaScript are not offered.
    expect(page.get_by_role("button", name="Move up")).to_have_count(0)

    page.get_by_label("New task").fill("Works without JavaScript")
    page.get_by_role("button", name="Add").click()
    expect(todo_texts(page)).to_have_text(["Works without JavaScript"])

    page.get_by_role("button", name="Done: Works without JavaScript").click()
    expect(page.get_by_role("button", name="Done: Works without JavaScript")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.get_by_text("Edit Works without JavaScript").click()
    page.get_by_label("New text").fill("Still works")
    page.get_by_role("button", name="Save").click()
    expect(todo_texts(page)).to_have_text(["Still works"])
    page.get_by_role("button", name="Delete Still works").click()
    expect(page.get_by_text("Nothing to do yet")).to_be_visible()

    # A long list is paginated (50 a page by default).
    seed(page, *[f"Task {n:02d}" for n in range(1, 56)])
    page.goto("/")
    expect(page.get_by_text("Page 1 of 2")).to_be_visible()
    expect(todo_texts(page)).to_have_count(50)
    screenshot(page, "09-no-js-page-1", full_page=False)
    page.get_by_role("link", name="Next").click()
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    expect(todo_texts(page)).to_have_text([f"Task {n:02d}" for n in range(51, 56)])
    screenshot(page, "09-no-js-page-2")
    # Acting on page 2 comes back to page 2.
    page.get_by_role("button", name="Done: Task 53").click()
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    expect(page.get_by_role("button", name="Done: Task 53")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Delete Task 55").click()
    expect(todo_texts(page)).to_have_text([f"Task {n:02d}" for n in range(51, 55)])
    page.get_by_role("link", name="Previous").click()
    expect(page.get_by_text("Page 1 of 2")).to_be_visible()

    # Export without JavaScript: the page refreshes itself until the file is ready.
    page.get_by_role("button", name="Export CSV").click()
    expect(export_status(page)).to_contain_text("54 rows exported.", timeout=30_000)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    saved = tmp_path / "nojs.csv"
    download_info.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert [r["text"] for r in rows] == [f"Task {n:02d}" for n in range(1, 55)]


def test_export_answers_json_clients_with_202(page: Page) -> None:
    """The README's curl example: POST /export with no body still gets 202 JSON."""
    answer = page.request.post("/export")
    assert answer.status == 202
    assert set(answer.json()) == {"task_id", "status_url"}


def test_accessibility_has_no_serious_violations(page: Page, browser: Browser, lab: Running) -> None:
    page.goto("/")
    assert axe_violations(page) == [], describe(axe_violations(page))
    seed(page, "Write the runbook", "Check the SLO dashboard", "Review alerts")
    page.request.post("/toggle/" + str(seed(page, "Ship it")[0]))
    page.goto("/")
    page.get_by_text("Edit Review alerts").click()
    page.get_by_role("button", name="Add").click()  # an error message on show
    expect(page.locator("#task-error")).not_to_be_empty()
    violations = axe_violations(page)
    assert violations == [], describe(violations)

    # Focus is visible: the first control reached with Tab draws an outline.
    page.goto("/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_label("New task")).to_be_focused()
    focused_outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused_outline == "solid"
    screenshot(page, "03-keyboard-focus", full_page=False)

    # The same page on a phone.
    context = open_context(browser, lab, viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    phone.goto("/")
    expect(todo_texts(phone)).to_have_count(4)
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "scrolls sideways"
    screenshot(phone, "10-phone")
    assert axe_violations(phone) == []
    context.close()


def test_a_browser_gets_a_readable_error_page_with_the_request_id(page: Page) -> None:
    response = page.goto("/download/not-an-export")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_have_text("unknown export task id")
    expect(page.get_by_test_id("request-id")).to_have_text(response.headers["x-request-id"])
    page.get_by_role("link", name="Back to the list").click()
    expect(page.get_by_role("heading", name="Todos")).to_be_visible()


def test_footer_shows_the_trace_id_when_tracing_is_on(browser: Browser, stack_factory: StackFactory) -> None:
    """With tracing on, the footer names the page load's trace, as its traceparent header does."""
    with stack_factory({"TRACING_ENABLED": "true"}, ("web",), workers=1, threads=2) as traced:
        context = browser.new_context(base_url=traced.web.url)
        try:
            page = context.new_page()
            response = page.goto("/")
            assert response is not None
            trace_id = response.headers["traceparent"].split("-")[1]
            expect(page.get_by_test_id("trace-id")).to_have_text(trace_id)
            assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
            screenshot(page, "11-footer-with-trace-id", full_page=False)
        finally:
            context.close()


def test_the_page_sends_idempotency_keys_and_a_resent_add_is_one_todo(page: Page) -> None:
    """The add form carries a fresh key per page and app.js sends one with its export: a
    form sent again after a lost answer (the browser's "resend") adds nothing."""
    page.goto("/")
    sent: list[tuple[str, dict[str, str], str]] = []
    page.on("request", lambda r: sent.append((r.url, r.headers, r.post_data or ""))
            if r.method == "POST" else None)
    page.get_by_label("New task").fill("Water the plants")
    page.get_by_role("button", name="Add").click()
    expect(todo_texts(page)).to_have_text(["Water the plants"])
    add = next(body for url, _, body in sent if url.endswith("/add"))
    key = re.search(r"idempotency_key=([^&]+)", add)
    assert key and len(key.group(1)) >= 32, add
    # The page after the add has a new key; the old form, sent again, is a replay.
    assert key.group(1) not in page.content()
    again = page.request.post("/add", data=add, max_redirects=0,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert again.status == 303 and again.headers["idempotent-replayed"] == "true"
    page.reload()
    expect(todo_texts(page)).to_have_text(["Water the plants"])

    page.get_by_role("button", name="Export CSV").click()
    expect(export_status(page)).to_contain_text("Done", timeout=30_000)
    export = next(headers for url, headers, _ in sent if url.endswith("/export"))
    assert len(export.get("idempotency-key", "")) >= 32, export
