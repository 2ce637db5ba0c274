"""Grade a learner's saved notebooks without running them (what `lab progress` prints).

An exercise in a notebook is an answer cell (first line `ANSWER = None`, metadata
`{"tags": ["exercise-answer"], "exercise": "M.N"}`) and a check cell (tag `exercise-check`)
whose saved output holds the verdict (curriculum.exercises.VERDICT_MIME). Notebooks without
that metadata are read too: an `ANSWER = ...` cell belongs to the exercise id named in the
next `exercises.check...("M.N", ...)` cell.

Grading, per exercise:

- `ANSWER = None` (or no answer cell): unanswered. The tracked notebooks hold only these.
- A literal answer (a string, a number) that the saved verdict was given: that verdict.
- A literal answer changed since (or never) checked: a choice or number is graded offline;
  a jq filter is run again on the log file of the last check; a PromQL answer is re-evaluated
  when a Prometheus is given and the last check saved its moment; otherwise unanswered, with
  a note to run the check cell.
- A computed answer (pandas code): the saved verdict when the check cell ran after the answer
  cell; otherwise unanswered, with the same note.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from analysis import prom
from curriculum import exercises
from curriculum.exercise_bank import EXERCISES

ANSWER_TAG, CHECK_TAG = "exercise-answer", "exercise-check"
ANSWER_NAME = "ANSWER"
_CHECK_CALL = re.compile(r"""exercises\.(?:check\w*|ask)\(.*?["'](\d+\.\d+)["']""", re.S)
_PLAIN_VERDICT = re.compile(r"Exercise (\d+\.\d+): (✔|✘|…)")
NOT_LITERAL = object()  # an answer that is code, not a literal
SYNTAX_ERROR = object()


@dataclass(frozen=True)
class Graded:
    """One exercise's status in one notebook."""

    id: str
    module: str
    status: str  # right, wrong, unanswered
    note: str = ""
    attempts: int = 0  # answers checked (the saved verdict's attempt number), 0 when unknown

    def as_dict(self) -> dict[str, str | int]:
        """The JSON row (the note only when there is one)."""
        row: dict[str, str | int] = asdict(self)
        if not self.note:
            row.pop("note")
        return row


def _attempts(record: Mapping[str, Any]) -> int:
    """The attempt number a saved verdict carries (0 for a record without one)."""
    try:
        return max(0, int(record.get("attempt", 0)))
    except (TypeError, ValueError):
        return 0


@dataclass
class _Slot:
    """The cells of one exercise in a notebook."""

    exercise: str
    answer: Any = None  # the answer cell
    check: Any = None  # the check cell


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _assigns_answer(source: str) -> bool:
    return re.search(rf"^\s*{ANSWER_NAME}\s*=", source, re.M) is not None


def exercise_cells(notebook: Any) -> list[_Slot]:
    """The exercises of a notebook in cell order, from metadata or, failing that, the code."""
    slots: dict[str, _Slot] = {}
    pending: list[Any] = []  # answer cells without metadata, waiting for their check cell
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tags, named = _tags(cell), cell.get("metadata", {}).get("exercise")
        if named and (ANSWER_TAG in tags or CHECK_TAG in tags):
            slot = slots.setdefault(str(named), _Slot(str(named)))
            if ANSWER_TAG in tags:
                slot.answer = cell
            else:
                slot.check = cell
            continue
        if _assigns_answer(cell.source):
            pending = [cell]
            continue
        found = _CHECK_CALL.search(cell.source)
        if found and "exercises.ask" not in cell.source:
            slot = slots.setdefault(found[1], _Slot(found[1]))
            slot.check = slot.check or cell
            if pending and slot.answer is None:
                slot.answer = pending[0]
            pending = []
    return list(slots.values())


def answer_literal(source: str) -> Any:
    """The value of the last top-level `ANSWER = <literal>`; NOT_LITERAL for code."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return SYNTAX_ERROR
    value: Any = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == ANSWER_NAME for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = NOT_LITERAL
    return value


def saved_verdict(cell: Any) -> dict[str, Any] | None:
    """The verdict record saved in a check cell's output (or read from its text)."""
    if cell is None:
        return None
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if exercises.VERDICT_MIME in data:
            return dict(data[exercises.VERDICT_MIME])
        text = data.get("text/plain", "")
        found = _PLAIN_VERDICT.search(text if isinstance(text, str) else "".join(text))
        if found:
            status = {"✔": "right", "✘": "wrong", "…": "unanswered"}[found[2]]
            return {"id": found[1], "status": status}
    return None


def _ran_after(check: Any, answer: Any) -> bool:
    """True when the check cell was executed after the answer cell (execution counts)."""
    done, given = check.get("execution_count"), answer.get("execution_count")
    return done is not None and given is not None and done > given


UNCHECKED = "answered but not checked since: run the check cell"


def grade_slot(slot: _Slot, module: str, prometheus: prom.Prometheus | None = None) -> Graded:
    """One exercise's status from its saved cells (see the module docstring)."""
    item = EXERCISES.get(slot.exercise)
    module = item.module if item else module
    if slot.answer is None:
        return Graded(slot.exercise, module, "unanswered", "no answer cell")
    answer = answer_literal(slot.answer.source)
    if answer is None:
        return Graded(slot.exercise, module, "unanswered")
    if answer is SYNTAX_ERROR:
        return Graded(slot.exercise, module, "wrong", "the answer cell is not valid Python")
    record = saved_verdict(slot.check)
    if answer is NOT_LITERAL:
        if record and record.get("status") in exercises.STATUSES and _ran_after(slot.check, slot.answer):
            return Graded(slot.exercise, module, str(record["status"]), attempts=_attempts(record))
        return Graded(slot.exercise, module, "unanswered", UNCHECKED)
    if record and record.get("answer") == answer and record.get("status") in exercises.STATUSES:
        return Graded(slot.exercise, module, str(record["status"]), attempts=_attempts(record))
    if item is None:
        return Graded(slot.exercise, module, "unanswered", "not in the exercise bank")
    offline = exercises.grade_offline(item, answer, (record or {}).get("expected"))
    if offline is not None:
        return Graded(slot.exercise, module, offline, "graded from the saved answer")
    if item.answer_type == "jq" and record and record.get("log") and Path(str(record["log"])).is_file():
        try:
            verdict = exercises.check(item.id, answer, log=Path(str(record["log"])))
        except Exception as exc:  # jq missing: say so, do not guess
            return Graded(slot.exercise, module, "unanswered", f"{UNCHECKED} ({exc})")
        return Graded(slot.exercise, module, verdict.status, "re-run with jq")
    if item.answer_type == "promql" and prometheus is not None and record and record.get("at"):
        try:
            verdict = exercises.check(item.id, answer, prometheus=prometheus,
                                      at=datetime.fromisoformat(str(record["at"])))
        except Exception as exc:  # Prometheus unreachable, data gone: say so, do not guess
            return Graded(slot.exercise, module, "unanswered", f"{UNCHECKED} ({exc})")
        return Graded(slot.exercise, module, verdict.status, "re-evaluated in Prometheus")
    return Graded(slot.exercise, module, "unanswered", UNCHECKED)


def grade_notebook(path: Path, prometheus: prom.Prometheus | None = None) -> list[Graded]:
    """Every exercise of one saved notebook, in cell order, plus the module's missing ones."""
    notebook = nbformat.read(path, as_version=4)
    graded = [grade_slot(slot, path.stem, prometheus) for slot in exercise_cells(notebook)]
    seen = {g.id for g in graded}
    graded += [Graded(i.id, i.module, "unanswered", "no answer cell")
               for i in EXERCISES.values() if i.module == path.stem and i.id not in seen]
    return graded


def grade(paths: list[Path], prometheus: prom.Prometheus | None = None) -> list[Graded]:
    """Every exercise of the notebooks, in the order given."""
    return [row for path in paths for row in grade_notebook(path, prometheus)]


def summary(graded: list[Graded]) -> dict[str, int]:
    """How many exercises are right, wrong and unanswered."""
    return {status: sum(g.status == status for g in graded) for status in exercises.STATUSES}


@dataclass(frozen=True)
class RoomRow:
    """One exercise across a room of learners: how many are right, wrong, unanswered, and who."""

    id: str
    module: str
    right: int
    wrong: int
    unanswered: int
    stuck: tuple[str, ...]  # learners whose answer is wrong


def room(reports: list[dict[str, Any]]) -> list[RoomRow]:
    """Per exercise, the statuses of several learners' `lab progress --json` documents."""
    order: dict[str, str] = {}
    status: dict[tuple[str, str], str] = {}
    learners = []
    for index, report in enumerate(reports):
        learner = str(report.get("learner") or f"learner {index + 1}")
        learners.append(learner)
        for row in report.get("exercises", []):
            order.setdefault(str(row["id"]), str(row.get("module", "")))
            status[(str(row["id"]), learner)] = str(row.get("status", "unanswered"))

    def key(exercise_id: str) -> tuple[int, ...]:
        return tuple(int(part) for part in exercise_id.split(".") if part.isdigit())

    rows = []
    for exercise_id in sorted(order, key=key):
        seen = [status.get((exercise_id, learner), "unanswered") for learner in learners]
        rows.append(RoomRow(exercise_id, order[exercise_id], seen.count("right"), seen.count("wrong"),
                            seen.count("unanswered"),
                            tuple(lr for lr, s in zip(learners, seen, strict=True) if s == "wrong")))
    return rows
