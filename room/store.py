"""The room's state: learners and their verdicts, in one SQLite file (WAL) that a restart keeps.

A verdict carries the id its learner's lab gave it, so a resend (the learner's outbox could
not tell whether the first send arrived) is stored once. Everything the facilitator's page
shows is computed here from the stored rows (`RoomStore.view`): the grid of learners by
exercises, who is stuck, each exercise's share right and most common mistake, where each
learner is in the blind incident. Times that decide "stuck" are the service's own clock
(when a verdict arrived), never a learner's, whose laptop clock may be off.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS learners (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, joined REAL NOT NULL, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS verdicts (
    id TEXT PRIMARY KEY, learner TEXT NOT NULL REFERENCES learners(id),
    exercise TEXT NOT NULL, module TEXT NOT NULL, status TEXT NOT NULL,
    mistake TEXT NOT NULL, advice TEXT NOT NULL, attempt INTEGER NOT NULL,
    source TEXT NOT NULL, at TEXT NOT NULL, received REAL NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS verdicts_by_learner ON verdicts (learner, exercise);
"""
# The room code learners type: no 0/O, 1/I/L to misread on a projector.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6
STUCK_WRONG_ATTEMPTS = 3  # wrong answers in a row on one exercise
STUCK_QUIET_S = 600.0  # no right answer for this long while others move on
INCIDENT = "incident"  # the exercise id of the blind incident's events
INCIDENT_STAGES = ("started", "over", "answered")


@dataclass(frozen=True)
class Verdict:
    """One verdict as a learner's lab sent it (already validated by the service)."""

    id: str
    exercise: str
    status: str  # right, wrong, unanswered; for the incident: its stage's outcome
    module: str = ""
    mistake: str = ""  # the name of the known mistake the answer matched
    advice: str = ""  # that mistake's advice, for the facilitator
    attempt: int = 0
    source: str = "check"  # check (a check cell), progress (`lab progress --push`), incident
    at: str = ""  # when the learner's lab made it (its clock, ISO 8601)
    detail: Mapping[str, Any] = field(default_factory=dict)  # the incident's stage and diagnosis


@dataclass
class Cell:
    """One learner's state on one exercise."""

    status: str = "unanswered"
    attempts: int = 0
    wrong_in_a_row: int = 0
    mistake: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON the page reads."""
        return {"status": self.status, "attempts": self.attempts, "mistake": self.mistake}


class RoomStore:
    """The room's SQLite file; every method opens its own connection (one per request thread)."""

    def __init__(self, path: Path) -> None:
        """Create the file and its tables when missing, and the room's two secrets once."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO secrets VALUES ('code', ?)",
                       ("".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)),))
            db.execute("INSERT OR IGNORE INTO secrets VALUES ('token', ?)", (secrets.token_urlsafe(24),))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            # synchronous=FULL: a verdict acknowledged is on disk even if the machine loses power.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    def secret(self, name: str) -> str:
        """The room code ("code") learners push with, or the facilitator's token ("token")."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return str(row[0])

    def join(self, learner: str, name: str, now: float | None = None) -> None:
        """Add a learner, or rename one who joins again."""
        moment = time.time() if now is None else now
        with self._connect() as db:
            db.execute("INSERT INTO learners VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
                       "SET name = excluded.name, seen = excluded.seen", (learner, name, moment, moment))

    def add(self, learner: str, name: str, verdicts: Sequence[Verdict],
            now: float | None = None) -> tuple[int, int]:
        """Store a learner's verdicts in one transaction: (stored, already there)."""
        moment = time.time() if now is None else now
        stored = 0
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO learners VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
                       "SET name = excluded.name, seen = excluded.seen", (learner, name, moment, moment))
            for v in verdicts:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (v.id, learner, v.exercise, v.module, v.status, v.mistake, v.advice, v.attempt,
                     v.source, v.at, moment, json.dumps(dict(v.detail), sort_keys=True)))
                stored += cursor.rowcount
            db.execute("COMMIT")
        return stored, len(verdicts) - stored

    def version(self) -> tuple[int, int, int]:
        """Changes whenever the page would: (newest verdict's row, learners, their last activity
        in milliseconds)."""
        with self._connect() as db:
            newest = db.execute("SELECT coalesce(max(rowid), 0) FROM verdicts").fetchone()[0]
            learners, seen = db.execute("SELECT count(*), coalesce(max(seen), 0) FROM learners").fetchone()
        return int(newest), int(learners), int(seen * 1000)

    def count(self) -> int:
        """Verdicts stored."""
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM verdicts").fetchone()[0])

    def _rows(self) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            db.execute("BEGIN")
            learners = db.execute("SELECT * FROM learners ORDER BY name COLLATE NOCASE, joined").fetchall()
            verdicts = db.execute("SELECT * FROM verdicts ORDER BY received, rowid").fetchall()
            db.execute("COMMIT")
        return learners, verdicts

    def view(self, catalogue: Sequence[tuple[str, str]] = (), now: float | None = None) -> dict[str, Any]:
        """Everything the facilitator's page shows, as JSON (see the module docstring).

        catalogue: (exercise id, module) of every exercise, in workshop order, so that an
        exercise nobody has answered yet still has its column.
        """
        moment = time.time() if now is None else now
        learners, verdicts = self._rows()
        order: dict[str, str] = dict(catalogue)
        cells: dict[tuple[str, str], Cell] = defaultdict(Cell)
        last_right: dict[str, float] = {}
        incident: dict[str, dict[str, Any]] = {}
        advice: dict[tuple[str, str], str] = {}
        for v in verdicts:
            learner, exercise = v["learner"], v["exercise"]
            if exercise == INCIDENT:
                incident[learner] = _incident_step(incident.get(learner), v)
                continue
            order.setdefault(exercise, v["module"])
            cell = cells[(learner, exercise)]
            if v["status"] in ("right", "wrong"):
                cell.attempts = max(cell.attempts + 1 if v["source"] == "check" else cell.attempts,
                                    int(v["attempt"]))
                cell.status = v["status"]
            if v["status"] == "right":
                cell.wrong_in_a_row, cell.mistake = 0, ""
                last_right[learner] = max(last_right.get(learner, 0.0), float(v["received"]))
            elif v["status"] == "wrong":
                cell.wrong_in_a_row += 1
                cell.mistake = v["mistake"]
                if v["mistake"]:
                    advice[(exercise, v["mistake"])] = v["advice"]
        known = [e for e, _ in catalogue]
        exercise_ids = known + sorted((e for e in order if e not in set(known)), key=_number)
        return {
            "learners": [self._learner(row, cells, exercise_ids, last_right, incident, moment)
                         for row in learners],
            "exercises": [_exercise(e, order[e], [cells[(row["id"], e)] for row in learners
                                                  if (row["id"], e) in cells], len(learners), advice)
                          for e in exercise_ids],
            "diagnoses": [{"learner": row["name"], **incident[row["id"]]["diagnosis"]}
                          for row in learners
                          if row["id"] in incident and incident[row["id"]].get("diagnosis")],
            "generated": moment,
        }

    @staticmethod
    def _learner(row: sqlite3.Row, cells: Mapping[tuple[str, str], Cell], exercise_ids: list[str],
                 last_right: Mapping[str, float], incident: Mapping[str, dict[str, Any]],
                 now: float) -> dict[str, Any]:
        learner = row["id"]
        mine = {e: cells[(learner, e)] for e in exercise_ids if (learner, e) in cells}
        stuck = [f"{cell.wrong_in_a_row} wrong answers in a row on {e}" for e, cell in mine.items()
                 if cell.status == "wrong" and cell.wrong_in_a_row >= STUCK_WRONG_ATTEMPTS]
        since = last_right.get(learner, float(row["joined"]))
        others_moving = any(now - t < STUCK_QUIET_S for other, t in last_right.items() if other != learner)
        if now - since >= STUCK_QUIET_S and others_moving:
            stuck.append(f"no right answer for {int((now - since) // 60)} min while others move on")
        return {
            "id": learner, "name": row["name"], "joined": row["joined"], "seen": row["seen"],
            "cells": {e: cell.as_dict() for e, cell in mine.items()},
            "right": sum(c.status == "right" for c in mine.values()),
            "stuck": stuck,
            "incident": {k: v for k, v in incident.get(learner, {}).items() if k != "diagnosis"},
        }

    def export_rows(self, catalogue: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
        """One row per learner and exercise (unanswered ones included), the incident last."""
        view = self.view(catalogue)
        rows = []
        for learner in view["learners"]:
            for exercise in view["exercises"]:
                cell = learner["cells"].get(exercise["id"], Cell().as_dict())
                rows.append({"learner": learner["name"], "learner_id": learner["id"],
                             "exercise": exercise["id"], "module": exercise["module"],
                             "status": cell["status"], "attempts": cell["attempts"],
                             "mistake": cell["mistake"]})
            stage = learner["incident"]
            rows.append({"learner": learner["name"], "learner_id": learner["id"], "exercise": INCIDENT,
                         "module": "07-incident", "status": stage.get("stage", "not started"),
                         "attempts": stage.get("attempts", 0), "mistake": stage.get("score", "")})
        return rows


def _number(exercise: str) -> tuple[int, ...]:
    """"1.10" after "1.9"."""
    return tuple(int(p) if p.isdigit() else 0 for p in exercise.split("."))


def _incident_step(state: dict[str, Any] | None, row: sqlite3.Row) -> dict[str, Any]:
    """Where a learner is in the blind incident after one more event."""
    state = dict(state or {"stage": "not started", "attempts": 0})
    detail = json.loads(row["detail"])
    stage = str(detail.get("stage", ""))
    if stage == "answered":
        state.update(stage="answered", attempts=state.get("attempts", 0) + 1,
                     score=str(detail.get("score", "")), right=row["status"] == "right",
                     diagnosis={k: detail.get(k) for k in ("fault", "endpoint", "start", "end", "score")}
                     | {"right": row["status"] == "right", "seed": detail.get("seed")})
    elif state.get("stage") != "answered" or stage == "started":
        state["stage"] = {"started": "running", "over": "over"}.get(stage, state.get("stage"))
        if stage == "started":
            state["seed"], state["since"] = detail.get("seed"), row["at"]
    return state


def _exercise(exercise: str, module: str, cells: list[Cell], learners: int,
              advice: Mapping[tuple[str, str], str]) -> dict[str, Any]:
    """One exercise across the room: how many are right and wrong, and the most common mistake."""
    right = sum(c.status == "right" for c in cells)
    wrong = sum(c.status == "wrong" for c in cells)
    mistakes = Counter(c.mistake for c in cells if c.status == "wrong" and c.mistake)
    common, seen = mistakes.most_common(1)[0] if mistakes else ("", 0)
    return {"id": exercise, "module": module, "right": right, "wrong": wrong,
            "unanswered": learners - right - wrong,
            "share_right": right / learners if learners else 0.0,
            "common_mistake": common, "common_mistake_learners": seen,
            "advice": advice.get((exercise, common), "")}
