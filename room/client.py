"""A learner's side of the room: join once, then every verdict goes to the room in the background.

`join(url, code, name)` asks the room service to add the learner and writes
VAR_DIR/room/joined.json (the room's URL and code, the learner's id and name). From then on
`push(record)` (called by every exercise check) puts the verdict in an outbox on disk
(VAR_DIR/room/outbox.sqlite) and wakes one background thread that sends what the outbox holds;
the check cell never waits for the network. A verdict leaves the outbox only when the room
acknowledged it; while the room does not answer, verdicts stay there and the thread tries again
(after 2, 5, 10, 30, then every 60 seconds), and every later push or `lab room status` sends
them too. Each verdict carries its own id, so a resend the room already has is stored once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from app.layout import Layout

JOINED, OUTBOX, STATE = "joined.json", "outbox.sqlite", "sent.json"
PUSH_TIMEOUT_S = 3.0  # per request; the check cell never waits for it
BATCH = 50  # verdicts per request (well under the service's body limit)
RETRY_S = (2.0, 5.0, 10.0, 30.0, 60.0)


class RoomError(Exception):
    """Joining failed: the room cannot be reached, or refused the code or the name."""


@dataclass(frozen=True)
class Membership:
    """The room a learner joined, as joined.json keeps it."""

    url: str
    code: str
    learner: str
    name: str


@dataclass(frozen=True)
class Sent:
    """What one sending pass did."""

    sent: int  # verdicts the room acknowledged in this pass
    pending: int  # verdicts still in the outbox
    error: str = ""  # why the last request failed ("" when it did not)
    dropped: int = 0  # verdicts the room refused as malformed (never sent again)


def room_dir() -> Path:
    """VAR_DIR/room of this lab (VAR_DIR from the environment)."""
    return Layout.from_env().room_dir


def membership(directory: Path | None = None) -> Membership | None:
    """The joined room, or None when the learner has not joined one."""
    path = (directory or room_dir()) / JOINED
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Membership(str(data["url"]), str(data["code"]), str(data["learner"]), str(data["name"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _error_of(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", response.reason))
    except ValueError:
        return f"{response.status_code} {response.reason}"


def join(url: str, code: str, name: str, directory: Path | None = None,
         timeout: float = 5.0) -> Membership:
    """Join the room at url with its code under name (again: same learner, new name)."""
    directory = directory or room_dir()
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise RoomError(f"{url!r} is not a room URL: it starts with http:// (as `lab room serve` prints)")
    before = membership(directory)
    learner = before.learner if before and before.url == url else uuid.uuid4().hex
    try:
        answer = requests.post(f"{url}/api/join", json={"learner": learner, "name": name},
                               headers={"X-Room-Code": code.strip().upper()}, timeout=timeout)
    except requests.RequestException as exc:
        raise RoomError(f"cannot reach the room at {url}: {exc.__class__.__name__}; is `lab room "
                        "serve` running there, and is this laptop on the same network?") from None
    if answer.status_code == 401:
        raise RoomError("the room refused the code: check it against the one the facilitator shows")
    if answer.status_code != 200:
        raise RoomError(f"the room refused to join: {_error_of(answer)}")
    joined = Membership(url, code.strip().upper(), learner, str(answer.json()["name"]))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / JOINED
    path.write_text(json.dumps(asdict(joined), indent=1), encoding="utf-8")
    os.chmod(path, 0o600)  # it holds the room code
    return joined


def leave(directory: Path | None = None) -> bool:
    """Forget the joined room (the outbox is kept: `lab room join` again sends it)."""
    path = (directory or room_dir()) / JOINED
    if path.exists():
        path.unlink()
        return True
    return False


class Outbox:
    """Verdicts not yet acknowledged by the room, in a SQLite file several kernels share."""

    def __init__(self, directory: Path) -> None:
        """Open (and create) directory/outbox.sqlite."""
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / OUTBOX
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                       "id TEXT UNIQUE NOT NULL, body TEXT NOT NULL)")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def put(self, verdict: Mapping[str, Any]) -> None:
        """Keep one verdict (it has an "id") until the room acknowledges it."""
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO outbox (id, body) VALUES (?, ?)",
                       (verdict["id"], json.dumps(dict(verdict), sort_keys=True)))

    def oldest(self, limit: int = BATCH) -> list[dict[str, Any]]:
        """The oldest verdicts waiting, in the order they were made."""
        with self._connect() as db:
            rows = db.execute("SELECT body FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [json.loads(body) for (body,) in rows]

    def remove(self, ids: list[str]) -> None:
        """Forget verdicts the room acknowledged (or refused for good)."""
        with self._connect() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def __len__(self) -> int:
        """Verdicts waiting."""
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def send(directory: Path | None = None, timeout: float | None = None) -> Sent:
    """Send everything the outbox holds to the joined room, oldest first; stop at a failure.
    timeout: per request (PUSH_TIMEOUT_S by default)."""
    directory = directory or room_dir()
    timeout = PUSH_TIMEOUT_S if timeout is None else timeout
    joined = membership(directory)
    outbox = Outbox(directory)
    if joined is None:
        return Sent(0, len(outbox), "not in a room: `lab room join URL CODE --name NAME`")
    sent = dropped = 0
    error = ""
    with requests.Session() as session:
        while batch := outbox.oldest():
            try:
                answer = session.post(f"{joined.url}/api/verdicts", timeout=timeout,
                                      headers={"X-Room-Code": joined.code},
                                      json={"learner": joined.learner, "name": joined.name,
                                            "verdicts": batch})
            except requests.RequestException as exc:
                error = f"the room at {joined.url} does not answer ({exc.__class__.__name__})"
                break
            if answer.status_code == 200:
                outbox.remove([v["id"] for v in batch])
                sent += len(batch)
            elif answer.status_code in (400, 413):  # never accepted as it is: do not block the rest
                outbox.remove([v["id"] for v in batch])
                dropped += len(batch)
                error = f"the room refused {len(batch)} verdict(s): {_error_of(answer)}"
            elif answer.status_code == 401:
                error = "the room refused the code (a new room?): `lab room join` again"
                break
            else:
                error = f"the room answered {answer.status_code}: {_error_of(answer)}"
                break
    result = Sent(sent, len(outbox), error, dropped)
    _remember(directory, result)
    return result


def _remember(directory: Path, result: Sent) -> None:
    """The last pass's outcome, for `lab room status` (never raises)."""
    with suppress(OSError):
        (directory / STATE).write_text(json.dumps(
            {**asdict(result), "at": datetime.now(UTC).isoformat(timespec="seconds")}), encoding="utf-8")


def last_pass(directory: Path | None = None) -> dict[str, Any]:
    """What the last sending pass did ({} before the first)."""
    try:
        return dict(json.loads(((directory or room_dir()) / STATE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


class _Sender:
    """The one background thread of a process that empties the outbox."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"room-sender {directory}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        failures = 0
        while True:
            delay = RETRY_S[min(failures, len(RETRY_S) - 1)] if failures else None
            self.wake.wait(delay)
            self.wake.clear()
            try:
                result = send(self.directory)
            except Exception:  # the room must never break a learner's kernel
                result = Sent(0, 1, "unexpected error")
            failures = failures + 1 if result.pending else 0


_SENDERS: dict[tuple[Path, int], _Sender] = {}
_SENDERS_LOCK = threading.Lock()


def push(exercise: str, status: str, *, module: str = "", mistake: str = "", advice: str = "",
         attempt: int = 0, source: str = "check", detail: Mapping[str, Any] | None = None,
         directory: Path | None = None) -> bool:
    """Queue one verdict for the joined room and return at once; False when not in a room.

    exercise: its id ("2.3", or "incident" with the stage in detail); status: right, wrong or
    unanswered; mistake and advice: the known mistake a wrong answer matched. The verdict gets
    its id and moment here.
    """
    directory = directory or room_dir()
    if membership(directory) is None:
        return False
    verdict = {"id": uuid.uuid4().hex, "at": datetime.now(UTC).isoformat(timespec="seconds"),
               "exercise": exercise, "status": status, "module": module, "mistake": mistake[:80],
               "advice": advice[:500], "attempt": attempt, "source": source, "detail": dict(detail or {})}
    Outbox(directory).put(verdict)
    key = (directory, os.getpid())  # a forked process starts its own thread
    with _SENDERS_LOCK:
        sender = _SENDERS.get(key)
        if sender is None:
            sender = _SENDERS[key] = _Sender(directory)
    sender.wake.set()
    return True
