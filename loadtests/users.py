"""Locust users that behave like the lab's people and clients.

Importing this module imports Locust (which monkeypatches with gevent): only the
locustfile imports it. Requests are grouped with `name=` ("/toggle/[id]") so ids do not
explode the statistics; every answer is checked with `catch_response`, so a 5xx, an
unexpected status or a broken CSV is a Locust failure while an expected 4xx is not.
"""

from __future__ import annotations

import random
import uuid
from typing import Any, ClassVar, Protocol

import gevent
from locust import FastHttpUser, HttpUser, between, tag, task

from loadtests.checks import export_csv_problem
from loadtests.config import LoadConfig, synthetic_headers

CONFIG = LoadConfig.from_env()
# A writer or API client keeps at most this many todos of its own: the table stays bounded
# however long a soak runs.
MAX_OWN_TODOS = 8
API_PAGE_SIZE = 20


class CheckedResponse(Protocol):
    """What both Locust clients hand back inside `catch_response=True`."""

    status_code: int
    text: str | None

    def json(self) -> Any:
        """The parsed JSON body."""

    def success(self) -> None:
        """Count the request as a success."""

    def failure(self, exc: Any) -> None:
        """Count the request as a failure with this reason."""


def expect(response: CheckedResponse, *statuses: int) -> bool:
    """Mark response failed unless its status is one of statuses; True when it is."""
    if response.status_code in statuses:
        response.success()
        return True
    body = (response.text or "")[:200].replace("\n", " ")
    wanted = " or ".join(map(str, statuses))
    response.failure(f"expected HTTP {wanted}, got {response.status_code}: {body}")
    return False


def json_of(response: CheckedResponse, *keys: str) -> dict[str, Any] | None:
    """The JSON object of response if it holds keys; otherwise mark the response failed."""
    try:
        data = response.json()
    except Exception:
        response.failure("answer is not JSON")
        return None
    if not isinstance(data, dict) or any(k not in data for k in keys):
        response.failure(f"JSON answer lacks {', '.join(keys)}")
        return None
    return data


def expect_json(
    response: CheckedResponse, status: int, *keys: str, **equal: Any
) -> dict[str, Any] | None:
    """The JSON answer if status matches, it holds keys and its fields equal `equal`; else
    the response is marked failed and None returned."""
    if not expect(response, status):
        return None
    data = json_of(response, *keys, *equal)
    if data is None:
        return None
    for key, wanted in equal.items():
        if data[key] != wanted:
            response.failure(f"{key} is {data[key]!r}, expected {wanted!r}")
            return None
    return data


def unique_text(role: str) -> str:
    """A todo text nobody else writes, so a user can tell its own todos apart."""
    return f"load {role} {uuid.uuid4().hex[:12]}"


def keyed() -> dict[str, str]:
    """Headers with a fresh Idempotency-Key: every create of ours may be retried safely."""
    return {"Idempotency-Key": uuid.uuid4().hex}


def think_time() -> Any:
    """Locust wait_time from LOAD_WAIT (seconds between two tasks of one user)."""
    return between(*CONFIG.wait)


class ReaderUser(HttpUser):
    """Someone browsing the list: the first page, other pages, and the JSON pages."""

    role: ClassVar[str] = "reader"
    weight = CONFIG.weights["reader"]
    wait_time = think_time()

    def on_start(self) -> None:
        """Mark every request as synthetic."""
        self.client.headers.update(synthetic_headers(self.role))
        self.pages = 1

    @tag("reader")
    @task(4)
    def first_page(self) -> None:
        """Open the list."""
        with self.client.get("/", name="/", catch_response=True) as response:
            expect(response, 200)

    @tag("reader")
    @task(3)
    def other_page(self) -> None:
        """Open a page of the list (the page count is learned from the JSON API)."""
        page = random.randint(1, self.pages)
        with self.client.get(f"/?page={page}", name="/?page=[n]", catch_response=True) as response:
            expect(response, 200)

    @tag("reader")
    @task(2)
    def api_page(self) -> None:
        """Read a page of the JSON list, as a script or the page's JavaScript would."""
        page = random.randint(1, self.pages)
        with self.client.get(
            f"/api/todos?page={page}&per_page=50", name="/api/todos?page=[n]", catch_response=True
        ) as response:
            if expect(response, 200) and (data := json_of(response, "items", "pages")):
                self.pages = max(1, int(data["pages"]))


class OwnTodos:
    """What a user that writes keeps: the ids of the todos it made, the only ones it changes.

    A mixin of WriterUser and ApiUser; each says how it makes a todo (`make_one`, one of its
    tasks) and deletes one (`delete`)."""

    own: list[int]

    def make_one(self) -> None:
        """Create a todo of our own (the user's create task)."""
        raise NotImplementedError

    def delete(self, todo_id: int | None = None) -> None:
        """Delete one of our todos (the given one, else a random one)."""
        raise NotImplementedError

    def on_stop(self) -> None:
        """Leave the list as we found it."""
        while self.own:
            self.delete()

    def remember(self, todo_id: int) -> None:
        """Track a todo we created; drop the oldest when we hold too many."""
        self.own.append(todo_id)
        if len(self.own) > MAX_OWN_TODOS:
            self.delete(self.own[0])

    def pick_own(self) -> int | None:
        """One of our todos at random; with none yet, make one instead and pick None."""
        if not self.own:
            self.make_one()
            return None
        return random.choice(self.own)


class WriterUser(OwnTodos, HttpUser):
    """Someone keeping a list: adds, edits, toggles, reorders and deletes their own todos only."""

    role: ClassVar[str] = "writer"
    weight = CONFIG.weights["writer"]
    wait_time = think_time()

    def on_start(self) -> None:
        """Mark every request as synthetic; remember the ids of our own todos."""
        self.client.headers.update(synthetic_headers(self.role))
        self.own = []

    def make_one(self) -> None:
        """The JSON add."""
        self.add_json()

    @tag("writer")
    @task(2)
    def add_json(self) -> None:
        """Add a todo as the page's JavaScript does (JSON, 201 with the todo)."""
        with self.client.post(
            "/add", json={"task": unique_text(self.role)}, name="/add [json]", headers=keyed(),
            catch_response=True,
        ) as response:
            if expect(response, 201) and (data := json_of(response, "id")):
                self.remember(int(data["id"]))

    @tag("writer")
    @task(1)
    def add_retried(self) -> None:
        """Add a todo, then send the very same request again, as a client whose answer was
        lost would: the second answer is the first one replayed, and no second todo."""
        body, headers = {"task": unique_text(self.role)}, keyed()
        with self.client.post("/add", json=body, name="/add [json, keyed]", headers=headers,
                              catch_response=True) as response:
            if not expect(response, 201) or not (first := json_of(response, "id")):
                return
        self.remember(int(first["id"]))
        with self.client.post("/add", json=body, name="/add [json, retry]", headers=headers,
                              catch_response=True) as response:
            if not expect(response, 201) or not (again := json_of(response, "id")):
                return
            if again != first or response.headers.get("Idempotent-Replayed") != "true":
                response.failure(f"retry was not a replay of todo {first['id']}: {again}")

    @tag("writer")
    @task(1)
    def add_form(self) -> None:
        """Add a todo with the plain HTML form (303 to the list), then find it in the list."""
        text = unique_text(self.role)
        with self.client.post(
            "/add", data={"task": text, "idempotency_key": uuid.uuid4().hex}, name="/add [form]",
            allow_redirects=False,
            catch_response=True,
        ) as response:
            if not expect(response, 303):
                return
        with self.client.get("/", name="/ [after add]", catch_response=True) as response:
            expect(response, 200)
        # A new todo goes to the end of the list: look on the last page of the JSON list.
        todo_id = self.find_on_last_page(text)
        if todo_id is not None:
            self.remember(todo_id)

    def find_on_last_page(self, text: str) -> int | None:
        """The id of the todo with this text on the last page, if it is there."""
        page, pages = 1, None
        while True:
            with self.client.get(
                f"/api/todos?page={page}&per_page=200", name="/api/todos?page=[n]",
                catch_response=True,
            ) as response:
                if not expect(response, 200) or not (data := json_of(response, "items", "pages")):
                    return None
            if pages is None and int(data["pages"]) > page:
                page = pages = int(data["pages"])
                continue
            return next((int(t["id"]) for t in data["items"] if t.get("text") == text), None)

    @tag("writer")
    @task(3)
    def toggle(self) -> None:
        """Tick one of our todos (or untick it)."""
        if (todo_id := self.pick_own()) is None:
            return None
        with self.client.post(
            f"/toggle/{todo_id}", name="/toggle/[id]", catch_response=True
        ) as response:
            expect_json(response, 200, "done", id=todo_id)
        return None

    @tag("writer")
    @task(2)
    def edit(self) -> None:
        """Rename one of our todos."""
        if (todo_id := self.pick_own()) is None:
            return None
        new_text = unique_text(self.role) + " (edited)"
        with self.client.post(
            f"/edit/{todo_id}", json={"text": new_text}, name="/edit/[id]", catch_response=True
        ) as response:
            expect_json(response, 200, id=todo_id, text=new_text)
        return None

    @tag("writer")
    @task(1)
    def reorder(self) -> None:
        """Shuffle our own todos among the places they hold."""
        if len(self.own) < 2:
            return self.add_json()
        order = random.sample(self.own, len(self.own))
        with self.client.post(
            "/reorder", json={"order": order}, name="/reorder", catch_response=True
        ) as response:
            expect_json(response, 200, order=order)
        return None

    @tag("writer")
    @task(1)
    def delete(self, todo_id: int | None = None) -> None:
        """Delete one of our todos (the given one, else a random one)."""
        if not self.own:
            return None
        todo_id = todo_id if todo_id is not None else random.choice(self.own)
        self.own.remove(todo_id)
        with self.client.post(
            f"/delete/{todo_id}", name="/delete/[id]", catch_response=True
        ) as response:
            expect(response, 200)
        return None


class ExporterUser(HttpUser):
    """Someone exporting the list: start an export, poll until done, download, check the CSV."""

    role: ClassVar[str] = "exporter"
    weight = CONFIG.weights["exporter"]
    wait_time = think_time()

    def on_start(self) -> None:
        """Mark every request as synthetic."""
        self.client.headers.update(synthetic_headers(self.role))

    @tag("exporter")
    @task
    def export(self) -> None:
        """One export, start to finish, with a bounded number of polls."""
        with self.client.post("/export", name="/export", headers=keyed(),
                              catch_response=True) as response:
            if not expect(response, 202) or not (data := json_of(response, "task_id")):
                return
        task_id = str(data["task_id"])
        state = self.wait_for(task_id)
        if state is None:
            return
        with self.client.get(
            f"/download/{task_id}", name="/download/[id]", catch_response=True
        ) as response:
            if expect(response, 200):
                problem = export_csv_problem(response.text or "", state.get("rows"))
                if problem:
                    response.failure(problem)

    def wait_for(self, task_id: str) -> dict[str, Any] | None:
        """Poll /tasks/<id> until succeeded (its JSON) or failed/too slow (a failure, None)."""
        for poll in range(1, CONFIG.export_max_polls + 1):
            with self.client.get(
                f"/tasks/{task_id}", name="/tasks/[id]", catch_response=True
            ) as response:
                if not expect(response, 200) or not (data := json_of(response, "state")):
                    return None
                if data["state"] == "succeeded":
                    return data
                if data["state"] == "failed":
                    response.failure(f"export failed: {data.get('error')}")
                    return None
                if poll == CONFIG.export_max_polls:
                    response.failure(
                        f"export still {data['state']} after {poll} polls"
                        f" ({CONFIG.export_poll_interval}s apart)"
                    )
                    return None
            gevent.sleep(CONFIG.export_poll_interval)
        return None


class ApiUser(OwnTodos, FastHttpUser):
    """A script using the JSON API: list, create, read, patch, delete its own todos."""

    role: ClassVar[str] = "api"
    weight = CONFIG.weights["api"]
    wait_time = think_time()
    default_headers = synthetic_headers("api")

    def on_start(self) -> None:
        """Remember the ids of our own todos."""
        self.own = []

    def make_one(self) -> None:
        """The API's create."""
        self.create()

    @tag("api")
    @task(3)
    def list_page(self) -> None:
        """Read the first page."""
        with self.client.get(
            f"/api/todos?page=1&per_page={API_PAGE_SIZE}", name="/api/todos?page=[n]",
            catch_response=True,
        ) as response:
            if expect(response, 200):
                json_of(response, "items", "total", "pages")

    @tag("api")
    @task(2)
    def create(self) -> None:
        """Create a todo; 201 with its id."""
        with self.client.post(
            "/api/todos", json={"text": unique_text(self.role)}, name="/api/todos",
            headers=keyed(), catch_response=True,
        ) as response:
            if expect(response, 201) and (data := json_of(response, "id")):
                self.remember(int(data["id"]))

    @tag("api")
    @task(2)
    def read(self) -> None:
        """Read one of our todos."""
        if (todo_id := self.pick_own()) is None:
            return None
        with self.client.get(
            f"/api/todos/{todo_id}", name="/api/todos/[id]", catch_response=True
        ) as response:
            expect_json(response, 200, "text", id=todo_id)
        return None

    @tag("api")
    @task(2)
    def patch(self) -> None:
        """Mark one of our todos done or not done."""
        if (todo_id := self.pick_own()) is None:
            return None
        done = random.random() < 0.5
        with self.client.request(
            "PATCH", f"/api/todos/{todo_id}", json={"done": done}, name="/api/todos/[id]",
            catch_response=True,
        ) as response:
            expect_json(response, 200, id=todo_id, done=done)
        return None

    @tag("api")
    @task(1)
    def delete(self, todo_id: int | None = None) -> None:
        """Delete one of our todos; reading it afterwards is an expected 404."""
        if not self.own:
            return None
        todo_id = todo_id if todo_id is not None else random.choice(self.own)
        self.own.remove(todo_id)
        with self.client.request(
            "DELETE", f"/api/todos/{todo_id}", name="/api/todos/[id]", catch_response=True
        ) as response:
            expect(response, 204)
        with self.client.get(
            f"/api/todos/{todo_id}", name="/api/todos/[id] [deleted]", catch_response=True
        ) as response:
            expect(response, 404)
        return None

    @tag("api")
    @task(1)
    def invalid(self) -> None:
        """A client mistake (blank text): an expected 400, not a failure."""
        with self.client.post(
            "/api/todos", json={"text": "   "}, name="/api/todos [invalid]", catch_response=True
        ) as response:
            if expect(response, 400):
                json_of(response, "error")


USER_CLASSES: dict[str, type[HttpUser] | type[FastHttpUser]] = {
    "reader": ReaderUser,
    "writer": WriterUser,
    "exporter": ExporterUser,
    "api": ApiUser,
}
