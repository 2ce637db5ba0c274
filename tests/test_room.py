"""The room: the service's contract, what the facilitator's page computes, and a learner's side.

The contract and the room's arithmetic run on the Flask app over a real SQLite file; the
learner's side runs against the real `lab room serve` (gunicorn) started as a facilitator
starts it, killed and restarted, and against a room that does not answer.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from flask.testing import FlaskClient

from curriculum.exercise_bank import EXERCISES
from room import client, store
from room.service import MAX_BATCH, MAX_BODY, create_app
from tests.support.processes import BIN, ROOT, Proc, free_port, start, wait_until

CATALOGUE = [(e.id, e.module) for e in EXERCISES.values()]


@pytest.fixture
def room_store(tmp_path: Path) -> store.RoomStore:
    return store.RoomStore(tmp_path / "room.sqlite")


@pytest.fixture
def api(room_store: store.RoomStore) -> FlaskClient:
    return create_app(room_store, CATALOGUE).test_client()


def _code(room: store.RoomStore) -> dict[str, str]:
    return {"X-Room-Code": room.secret("code")}


def _token(room: store.RoomStore) -> dict[str, str]:
    return {"Authorization": f"Bearer {room.secret('token')}"}


def _verdict(exercise: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "exercise": exercise, "status": status,
            "module": dict(CATALOGUE).get(exercise, ""), "attempt": 1, **extra}


def _push(api: FlaskClient, room: store.RoomStore, learner: str, name: str,
          *verdicts: dict[str, Any]) -> Any:
    return api.post("/api/verdicts", headers=_code(room),
                    json={"learner": learner, "name": name, "verdicts": list(verdicts)})


def _view(api: FlaskClient, room: store.RoomStore) -> dict[str, Any]:
    answer = api.get("/api/room", headers=_token(room))
    assert answer.status_code == 200, answer.get_json()
    return dict(answer.get_json())


# --- the contract -----------------------------------------------------------------------------

def _is_error(answer: Any, status: int, phrase: str) -> None:
    body = answer.get_json()
    assert answer.status_code == status, (answer.status_code, body)
    assert set(body) == {"error", "request_id"} and body["request_id"], body
    assert phrase in body["error"], body
    assert answer.headers["X-Request-ID"] == body["request_id"]


def test_a_wrong_or_missing_code_or_token_is_401(api: FlaskClient, room_store: store.RoomStore) -> None:
    body = {"learner": "learner-one", "name": "Ann"}
    _is_error(api.post("/api/join", json=body), 401, "room code")
    _is_error(api.post("/api/join", json=body, headers={"X-Room-Code": "WRONG1"}), 401, "room code")
    # The facilitator's token is not a room code, and the room code is not the token.
    _is_error(api.post("/api/join", json=body, headers={"X-Room-Code": room_store.secret("token")}),
              401, "room code")
    _is_error(api.get("/api/room"), 401, "facilitator token")
    _is_error(api.get("/api/room", headers={"Authorization": f"Bearer {room_store.secret('code')}"}),
              401, "facilitator token")
    _is_error(api.get("/api/export.csv?token=nope"), 401, "facilitator token")
    assert api.post("/api/join", json=body, headers=_code(room_store)).status_code == 200
    assert room_store.secret("code") != room_store.secret("token")
    assert len(room_store.secret("token")) >= 24


@pytest.mark.parametrize(("body", "phrase"), [
    ("not json", "JSON object"),
    ([1, 2], "JSON object"),
    ({"name": "Ann"}, "learner"),
    ({"learner": "short", "name": "Ann"}, "learner"),
    ({"learner": "learner-one", "name": ""}, "name is empty"),
    ({"learner": "learner-one", "name": "x" * 61}, "longer than 60"),
    ({"learner": "learner-one", "name": "Ann\x1b[31m"}, "control characters"),
    ({"learner": "learner-one", "name": "Ann", "verdicts": []}, "1 to 200"),
    ({"learner": "learner-one", "name": "Ann", "verdicts": "1.1"}, "1 to 200"),
    ({"learner": "learner-one", "name": "Ann", "verdicts": [{"id": "x"}]}, "verdicts[0].id"),
    ({"learner": "learner-one", "name": "Ann",
      "verdicts": [{"id": "verdict-1", "exercise": "DROP TABLE", "status": "right"}]}, "exercise"),
    ({"learner": "learner-one", "name": "Ann",
      "verdicts": [{"id": "verdict-1", "exercise": "1.1", "status": "maybe"}]}, "status"),
    ({"learner": "learner-one", "name": "Ann",
      "verdicts": [{"id": "verdict-1", "exercise": "1.1", "status": "right", "attempt": -1}]}, "attempt"),
    ({"learner": "learner-one", "name": "Ann",
      "verdicts": [{"id": "verdict-1", "exercise": "1.1", "status": "right", "attempt": True}]}, "attempt"),
    ({"learner": "learner-one", "name": "Ann",
      "verdicts": [{"id": "verdict-1", "exercise": "incident", "status": "right"}]}, "stage"),
    ({"learner": "learner-one", "name": "Ann",
      "verdicts": [{"id": "verdict-1", "exercise": "1.1", "status": "wrong", "mistake": 3}]}, "mistake"),
])
def test_a_malformed_push_is_400_naming_the_field(api: FlaskClient, room_store: store.RoomStore,
                                                   body: Any, phrase: str) -> None:
    if isinstance(body, str):
        answer = api.post("/api/verdicts", data=body, headers={**_code(room_store),
                                                               "Content-Type": "application/json"})
    else:
        answer = api.post("/api/verdicts", json=body, headers=_code(room_store))
    _is_error(answer, 400, phrase)
    assert room_store.count() == 0


def test_a_body_over_the_limit_is_413_and_a_batch_over_the_limit_400(
        api: FlaskClient, room_store: store.RoomStore) -> None:
    huge = {"learner": "learner-one", "name": "Ann", "pad": "x" * MAX_BODY}
    _is_error(api.post("/api/verdicts", json=huge, headers=_code(room_store)), 413, "too large")
    many = [_verdict("1.1", "wrong") for _ in range(MAX_BATCH + 1)]
    _is_error(_push(api, room_store, "learner-one", "Ann", *many), 400, "1 to 200")
    _is_error(api.get("/nowhere"), 404, "not found")
    _is_error(api.put("/api/verdicts"), 405, "PUT")
    assert room_store.count() == 0


def test_a_resent_verdict_is_stored_once(api: FlaskClient, room_store: store.RoomStore) -> None:
    first, second = _verdict("1.1", "wrong"), _verdict("1.1", "right")
    assert _push(api, room_store, "learner-one", "Ann", first).get_json()["stored"] == 1
    answer = _push(api, room_store, "learner-one", "Ann", first, second).get_json()
    assert (answer["stored"], answer["already"]) == (1, 1)
    assert room_store.count() == 2
    cell = _view(api, room_store)["learners"][0]["cells"]["1.1"]
    assert cell == {"status": "right", "attempts": 2, "mistake": ""}


def test_the_page_is_served_with_its_assets_and_no_outside_address(api: FlaskClient) -> None:
    page = api.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    for asset in ("/static/room.js", "/static/room.css"):
        with api.get(asset) as served:
            assert asset in html and served.status_code == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    with api.get("/static/room.js") as script:
        assert "innerHTML" not in script.get_data(as_text=True)


# --- what the page shows -------------------------------------------------------------------

def test_the_grid_counts_each_learners_status_and_attempts(api: FlaskClient,
                                                           room_store: store.RoomStore) -> None:
    _push(api, room_store, "learner-ann", "Ann", _verdict("1.1", "wrong", mistake="avg_of_rate",
                                                          advice="sum first"),
          _verdict("1.1", "right"), _verdict("2.1", "wrong", mistake="avg_of_rate", advice="sum first"))
    _push(api, room_store, "learner-bob", "Bob",
          _verdict("1.1", "wrong", mistake="no_rate", advice="rate it"),
          _verdict("1.1", "wrong", mistake="avg_of_rate", advice="sum first"))
    _push(api, room_store, "learner-cat", "Cat", _verdict("1.1", "wrong", mistake="avg_of_rate",
                                                          advice="sum first"))
    view = _view(api, room_store)
    assert [lr["name"] for lr in view["learners"]] == ["Ann", "Bob", "Cat"]
    ann, bob, _cat = view["learners"]
    assert ann["cells"]["1.1"] == {"status": "right", "attempts": 2, "mistake": ""}
    assert bob["cells"]["1.1"] == {"status": "wrong", "attempts": 2, "mistake": "avg_of_rate"}
    assert "1.2" not in ann["cells"] and ann["right"] == 1
    by_id = {e["id"]: e for e in view["exercises"]}
    assert list(by_id)[: len(CATALOGUE)] == [e for e, _ in CATALOGUE]  # workshop order, all of them
    one = by_id["1.1"]
    assert (one["right"], one["wrong"], one["unanswered"]) == (1, 2, 0)
    assert one["share_right"] == pytest.approx(1 / 3)
    # Bob's and Cat's current answers both show avg_of_rate (Bob's first one, no_rate, is past).
    assert (one["common_mistake"], one["common_mistake_learners"], one["advice"]) == (
        "avg_of_rate", 2, "sum first")
    assert (by_id["1.2"]["unanswered"], by_id["1.2"]["common_mistake"]) == (3, "")


def test_three_wrong_answers_in_a_row_and_ten_quiet_minutes_mark_a_learner_stuck(
        room_store: store.RoomStore) -> None:
    t0 = 1_800_000_000.0
    room_store.join("learner-ann", "Ann", now=t0)
    room_store.join("learner-bob", "Bob", now=t0)
    room_store.add("learner-ann", "Ann", [store.Verdict(f"v-ann-{i}", "2.3", "wrong") for i in range(2)],
                   now=t0 + 60)
    view = room_store.view(CATALOGUE, now=t0 + 120)
    assert [lr["stuck"] for lr in view["learners"]] == [[], []]  # two wrong answers: still trying
    room_store.add("learner-ann", "Ann", [store.Verdict("v-ann-3", "2.3", "wrong")], now=t0 + 90)
    ann = room_store.view(CATALOGUE, now=t0 + 120)["learners"][0]
    assert ann["stuck"] == ["3 wrong answers in a row on 2.3"]
    room_store.add("learner-ann", "Ann", [store.Verdict("v-ann-4", "2.3", "right")], now=t0 + 100)
    assert room_store.view(CATALOGUE, now=t0 + 120)["learners"][0]["stuck"] == []
    # Bob has no right answer since he joined; Ann's are recent: after ten minutes he is stuck.
    room_store.add("learner-ann", "Ann", [store.Verdict("v-ann-5", "2.4", "right")], now=t0 + 590)
    bob = room_store.view(CATALOGUE, now=t0 + 599)["learners"][1]
    assert bob["stuck"] == []
    bob = room_store.view(CATALOGUE, now=t0 + 660)["learners"][1]
    assert bob["stuck"] == ["no right answer for 11 min while others move on"]
    # When nobody moves (a break, a long explanation), nobody is marked stuck.
    everyone_quiet = room_store.view(CATALOGUE, now=t0 + 590 + store.STUCK_QUIET_S + 1)
    assert [lr["stuck"] for lr in everyone_quiet["learners"]] == [[], []]


def test_the_incident_shows_each_learners_stage_and_the_graded_diagnoses(
        api: FlaskClient, room_store: store.RoomStore) -> None:
    def event(stage: str, status: str = "unanswered", **detail: Any) -> dict[str, Any]:
        return _verdict("incident", status, source="incident", module="07-incident",
                        detail={"stage": stage, "seed": 7, **detail})

    _push(api, room_store, "learner-ann", "Ann", event("started"))
    _push(api, room_store, "learner-bob", "Bob", event("started"), event("over"),
          event("answered", "wrong", fault="latency", endpoint="todos.add", start="10:01", end="10:04",
                score="2 of 4"),
          event("answered", "right", fault="slow_db", endpoint="*", start="10:00", end="10:05",
                score="4 of 4"))
    _push(api, room_store, "learner-cat", "Cat", _verdict("1.1", "right"))
    view = _view(api, room_store)
    stages = {lr["name"]: lr["incident"] for lr in view["learners"]}
    assert stages["Ann"]["stage"] == "running"
    bob = stages["Bob"]
    assert (bob["stage"], bob["score"], bob["attempts"]) == ("answered", "4 of 4", 2)
    assert stages["Cat"] == {}
    assert view["diagnoses"] == [{"learner": "Bob", "fault": "slow_db", "endpoint": "*", "start": "10:00",
                                  "end": "10:05", "score": "4 of 4", "right": True, "seed": 7}]
    # The incident is not an exercise column.
    assert "incident" not in {e["id"] for e in view["exercises"]}


def test_the_csv_has_every_learner_and_exercise_and_runs_no_formula(
        api: FlaskClient, room_store: store.RoomStore) -> None:
    _push(api, room_store, "learner-eve", "=HYPERLINK(\"http://evil\")",
          _verdict("1.1", "wrong", mistake="-1+1"))
    _push(api, room_store, "learner-ann", "Ann", _verdict("1.1", "right"))
    answer = api.get(f"/api/export.csv?token={room_store.secret('token')}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert len(rows) == 2 * (len(CATALOGUE) + 1)  # every exercise and the incident, per learner
    eve = next(r for r in rows if r["learner_id"] == "learner-eve" and r["exercise"] == "1.1")
    assert eve["learner"] == "'=HYPERLINK(\"http://evil\")" and eve["mistake"] == "'-1+1"
    assert {r["status"] for r in rows if r["learner"] == "Ann" and r["exercise"] == "1.1"} == {"right"}


def test_the_page_asks_again_only_when_something_changed(api: FlaskClient,
                                                         room_store: store.RoomStore) -> None:
    version = _view(api, room_store)["version"]
    assert api.get(f"/api/room?since={version}", headers=_token(room_store)).status_code == 204
    _push(api, room_store, "learner-ann", "Ann", _verdict("1.1", "right"))
    assert api.get(f"/api/room?since={version}", headers=_token(room_store)).status_code == 200


# --- a learner's side, against the real service -----------------------------------------------

def _serve(var_dir: Path, port: int, log_dir: Path, name: str = "room") -> Proc:
    proc = start(name, [str(BIN / "lab"), "room", "serve", "--port", str(port)],
                 {"VAR_DIR": str(var_dir)}, log_dir)
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 30, f"lab room serve on {port}")
    return proc


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, store.RoomStore, Path]]:
    """`lab room serve` on a free port: (url, its store, its var dir)."""
    var_dir, port = tmp_path / "facilitator", free_port()
    proc = _serve(var_dir, port, tmp_path)
    try:
        yield f"http://127.0.0.1:{port}", store.RoomStore(var_dir / "room" / "room.sqlite"), var_dir
    finally:
        proc.stop()


def test_serve_prints_the_code_and_the_page_and_binds_the_loopback(served: tuple[str, store.RoomStore, Path],
                                                                    tmp_path: Path) -> None:
    url, room, _ = served
    said = (tmp_path / "room.out").read_text(encoding="utf-8")
    assert f"room code:        {room.secret('code')}" in said
    assert f"{url}/#token={room.secret('token')}" in said
    assert "only this laptop can reach it" in said
    port = int(url.rsplit(":", 1)[1])
    listening = {c.laddr.ip for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    assert listening == {"127.0.0.1"}, listening


def _lab(*argv: str, var_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(BIN / "lab"), *argv], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "VAR_DIR": str(var_dir)})
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_join_refuses_a_wrong_code_and_a_room_that_is_not_there(served: tuple[str, store.RoomStore, Path],
                                                                 tmp_path: Path) -> None:
    url, room, _ = served
    learner = tmp_path / "learner"
    wrong = _lab("room", "join", url, "NOPE22", "--name", "Ann", var_dir=learner, check=False)
    assert wrong.returncode == 1 and "refused the code" in wrong.stderr
    gone = _lab("room", "join", f"http://127.0.0.1:{free_port()}", room.secret("code"), "--name", "Ann",
                var_dir=learner, check=False)
    assert gone.returncode == 1 and "cannot reach the room" in gone.stderr
    assert client.membership(learner / "room") is None
    joined = _lab("room", "join", url, room.secret("code").lower(), "--name", "Ann", var_dir=learner)
    assert "joined the room" in joined.stdout
    again = _lab("room", "join", url, room.secret("code"), "--name", "Ann B.", var_dir=learner)
    assert "as Ann B." in again.stdout
    assert [(lr["name"]) for lr in room.view()["learners"]] == ["Ann B."]  # the same learner, renamed


def test_a_day_with_a_wrong_room_code_stops_before_it_starts_anything(
        served: tuple[str, store.RoomStore, Path], tmp_path: Path) -> None:
    url, _, _ = served
    learner = tmp_path / "learner"
    day = _lab("day", "--room", url, "WRONG2", "--name", "Ann", var_dir=learner, check=False)
    assert day.returncode == 1 and "refused the code" in day.stderr and "lab room join" in day.stderr
    assert "1/4" not in day.stdout and not (learner / "run").exists()


def _check_in_kernel(var_dir: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run script in a fresh Python, as a notebook kernel would, in the learner's VAR_DIR."""
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env={**os.environ, "VAR_DIR": str(var_dir)})


CHOICE = next(e for e in EXERCISES.values() if e.answer_type == "choice" and e.solution in e.options)
WRONG_CHOICE = next(k for k in CHOICE.options if k != CHOICE.solution)

CHECKS = f"""
import time
from curriculum import exercises
from room import client
for answer in ({WRONG_CHOICE!r}, {WRONG_CHOICE!r}, {CHOICE.solution!r}):
    print(exercises.check({CHOICE.id!r}, answer).status)
deadline = time.monotonic() + 30
while len(client.Outbox(client.room_dir())) and time.monotonic() < deadline:
    time.sleep(0.1)
print("waiting", len(client.Outbox(client.room_dir())))
"""


def test_every_check_reaches_the_room_with_its_attempt_and_mistake(served: tuple[str, store.RoomStore, Path],
                                                                    tmp_path: Path) -> None:
    url, room, _ = served
    learner = tmp_path / "learner"
    _lab("room", "join", url, room.secret("code"), "--name", "Ann", var_dir=learner)
    done = _check_in_kernel(learner, CHECKS)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["wrong", "wrong", "right", "waiting", "0"]
    with closing(sqlite3.connect(room.path)) as db:
        rows = db.execute("SELECT exercise, status, attempt, mistake, source FROM verdicts "
                          "ORDER BY rowid").fetchall()
    assert rows == [(CHOICE.id, "wrong", 1, f"chose {WRONG_CHOICE}", "check"),
                    (CHOICE.id, "wrong", 2, f"chose {WRONG_CHOICE}", "check"),
                    (CHOICE.id, "right", 3, "", "check")]
    cell = room.view(CATALOGUE)["learners"][0]["cells"][CHOICE.id]
    assert cell == {"status": "right", "attempts": 3, "mistake": ""}


def test_a_learner_not_in_a_room_sends_nothing_and_keeps_nothing(tmp_path: Path) -> None:
    learner = tmp_path / "learner"
    done = _check_in_kernel(learner, CHECKS.replace("deadline = ", "deadline = 0 and "))
    assert done.returncode == 0, done.stderr
    assert not (learner / "room").exists() or len(client.Outbox(learner / "room")) == 0


def test_verdicts_made_while_the_room_is_down_are_sent_when_it_answers(tmp_path: Path) -> None:
    var_dir, port = tmp_path / "facilitator", free_port()
    proc = _serve(var_dir, port, tmp_path, "room-1")
    url = f"http://127.0.0.1:{port}"
    room = store.RoomStore(var_dir / "room" / "room.sqlite")
    learner = tmp_path / "learner"
    _lab("room", "join", url, room.secret("code"), "--name", "Ann", var_dir=learner)
    proc.stop()
    done = _check_in_kernel(learner, CHECKS.replace("time.monotonic() + 30", "time.monotonic() + 3"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["waiting", "3"]  # kept on disk, the cells unharmed
    status = _lab("room", "status", var_dir=learner, check=False)
    assert status.returncode == 1 and "3 verdict(s) waiting" in status.stdout
    assert "does not answer" in status.stdout
    proc = _serve(var_dir, port, tmp_path, "room-2")
    try:
        status = _lab("room", "status", var_dir=learner)
        assert "0 verdict(s) waiting" in status.stdout
        assert room.count() == 3
    finally:
        proc.stop()


def test_a_killed_room_service_keeps_every_acknowledged_verdict(tmp_path: Path) -> None:
    var_dir, port = tmp_path / "facilitator", free_port()
    proc = _serve(var_dir, port, tmp_path, "room-1")
    url = f"http://127.0.0.1:{port}"
    room = store.RoomStore(var_dir / "room" / "room.sqlite")
    code, token = room.secret("code"), room.secret("token")
    acknowledged = []
    with requests.Session() as session:
        for batch in range(20):
            verdicts = [_verdict(f"{batch % 7 + 1}.{i + 1}", "wrong") for i in range(5)]
            answer = session.post(f"{url}/api/verdicts", headers={"X-Room-Code": code}, timeout=10,
                                  json={"learner": "learner-ann", "name": "Ann", "verdicts": verdicts})
            assert answer.status_code == 200
            acknowledged += answer.json()["ids"]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.stop()
    proc = _serve(var_dir, port, tmp_path, "room-2")
    try:
        assert (room.secret("code"), room.secret("token")) == (code, token)  # learners need not join again
        with closing(sqlite3.connect(room.path)) as db:
            stored = {row[0] for row in db.execute("SELECT id FROM verdicts")}
        assert stored == set(acknowledged) and len(acknowledged) == 100
    finally:
        proc.stop()


class _SilentRoom:
    """A room that accepts connections and never answers until released."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.connected = threading.Event()
        self.release = threading.Event()
        threading.Thread(target=self._hold, daemon=True).start()

    def _hold(self) -> None:
        connection, _ = self.server.accept()
        self.connected.set()
        self.release.wait(120)
        connection.close()
        self.server.close()


def test_a_room_that_hangs_never_holds_up_the_check_cell(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    silent = _SilentRoom()
    learner = tmp_path / "learner" / "room"
    learner.mkdir(parents=True)
    (learner / client.JOINED).write_text(json.dumps(
        {"url": silent.url, "code": "ABCDEF", "learner": "learner-ann", "name": "Ann"}), encoding="utf-8")
    from curriculum import exercises

    monkeypatch.setenv("VAR_DIR", str(tmp_path / "learner"))
    # A check that sent the verdict itself would now wait ten minutes for this room.
    monkeypatch.setattr(client, "PUSH_TIMEOUT_S", 600.0)
    try:
        checked = threading.Thread(target=exercises.check, args=(CHOICE.id, CHOICE.solution))
        checked.start()
        checked.join(timeout=60)
        assert not checked.is_alive(), "the check cell waited for the room"
        assert silent.connected.wait(30), "the background sender never tried the room"
        assert not silent.release.is_set() and len(client.Outbox(learner)) == 1
    finally:
        silent.release.set()


def test_serve_on_another_address_says_once_what_it_exposes(tmp_path: Path) -> None:
    port = free_port()
    argv = [str(BIN / "lab"), "room", "serve", "--listen", "127.0.0.2", "--port", str(port)]
    proc = start("room-wide", argv, {"VAR_DIR": str(tmp_path / "facilitator")}, tmp_path)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.2:{port}/healthz"), 30, "lab room serve --listen")
        said = (tmp_path / "room-wide.out").read_text(encoding="utf-8")
        assert said.count(f"listening on 127.0.0.2:{port}: any machine that reaches this laptop") == 1
        assert "keep the token off the projector" in said
        assert "learners join with: lab room join http://" in said
        assert not _answers(f"http://127.0.0.1:{port}/healthz")  # that address only
    finally:
        proc.stop()


def _saved_notebook(path: Path, answers: dict[str, str]) -> Path:
    import nbformat

    book = nbformat.v4.new_notebook()
    for exercise, answer in answers.items():
        for tag, source in (("exercise-answer", f"ANSWER = {answer!r}"),
                            ("exercise-check", f"exercises.check({exercise!r}, ANSWER)")):
            cell = nbformat.v4.new_code_cell(source)
            cell.metadata.update({"tags": [tag], "exercise": exercise})
            book.cells.append(cell)
    nbformat.write(book, path)
    return path


def test_progress_push_sends_a_saved_notebooks_statuses_once(served: tuple[str, store.RoomStore, Path],
                                                              tmp_path: Path) -> None:
    url, room, _ = served
    learner = tmp_path / "learner"
    notebook = _saved_notebook(tmp_path / f"{CHOICE.module}.ipynb", {CHOICE.id: WRONG_CHOICE})
    refused = _lab("progress", "--push", "--offline", str(notebook), var_dir=learner, check=False)
    assert refused.returncode == 1 and "not in a room" in refused.stderr
    _lab("room", "join", url, room.secret("code"), "--name", "Ann", var_dir=learner)
    pushed = _lab("progress", "--push", "--offline", "--json", str(notebook), var_dir=learner)
    assert "room: sent 1 verdict(s)" in pushed.stderr and json.loads(pushed.stdout)["summary"]["wrong"] == 1
    assert room.view(CATALOGUE)["learners"][0]["cells"][CHOICE.id]["status"] == "wrong"
    _saved_notebook(notebook, {CHOICE.id: CHOICE.solution})
    _lab("progress", "--push", "--offline", str(notebook), var_dir=learner)
    _lab("progress", "--push", "--offline", str(notebook), var_dir=learner)
    cell = room.view(CATALOGUE)["learners"][0]["cells"][CHOICE.id]
    assert cell["status"] == "right" and cell["attempts"] == 0  # a saved file says no attempt count


def test_the_blind_incident_tells_the_room_where_the_learner_is(served: tuple[str, store.RoomStore, Path],
                                                                tmp_path: Path) -> None:
    from curriculum.blind_incident import MIN_DURATION_S, plan

    url, room, _ = served
    learner = tmp_path / "learner"
    _lab("room", "join", url, room.secret("code"), "--name", "Ann", var_dir=learner)
    seed = 3
    _lab("incident", "--seed", str(seed), "--blind", "--duration", f"{MIN_DURATION_S:g}", var_dir=learner)
    client_side = client.send(learner / "room")
    assert client_side.pending == 0, client_side
    assert room.view(CATALOGUE)["learners"][0]["incident"]["stage"] == "over"
    truth = plan(seed, MIN_DURATION_S)
    answer = _lab("incident", "answer", "--seed", str(seed), "--fault", truth.kind, "--endpoint",
                  truth.endpoint or "*", "--start", "+0", "--end", f"+{MIN_DURATION_S:g}", var_dir=learner,
                  check=False)
    assert "blind incident 3" in answer.stdout
    client.send(learner / "room")
    view = room.view(CATALOGUE)
    assert view["learners"][0]["incident"]["stage"] == "answered"
    (diagnosis,) = view["diagnoses"]
    assert (diagnosis["learner"], diagnosis["fault"], diagnosis["endpoint"]) == \
        ("Ann", truth.kind, truth.endpoint or "*")
    assert diagnosis["score"].endswith("of 4") and diagnosis["right"] is (answer.returncode == 0)
