"""How long each module takes a learner, measured from the notebooks themselves.

What is measured: the words a learner reads (every markdown cell, and each exercise's question
and options as `exercises.ask` shows them; not the folded hints), read at READING_WPM, and the
time the machine spends running the cells (from an executed notebook's cell timings, which
nbclient records). What is a stated estimate, not a measurement: the minutes an exercise takes
(EXERCISE_MINUTES, by what the learner does: choose, compute, or write a query from scratch).
docs/workshop.md publishes the table and fits the agenda to it; tests/test_agenda.py checks
that the page's figures are this module's, so a notebook that grows shows up there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from curriculum.exercise_bank import EXERCISES, Exercise

# Technical prose with formulas and code: slower than the 200-250 words a minute of plain prose.
READING_WPM = 150
# Minutes per exercise: choosing an option or a prediction; computing a number or a frame; writing
# a query (PromQL, jq, pandas) from scratch, with a first wrong try.
EXERCISE_MINUTES = {"choose": 2.0, "compute": 3.0, "write": 5.0}
_WORD = re.compile(r"[A-Za-z0-9_'.-]*[A-Za-z0-9]")


def effort(item: Exercise) -> str:
    """choose, compute or write: what the learner does for an exercise."""
    if item.answer_type == "choice":
        return "choose"
    if item.answer_type in ("promql", "jq", "alert") or (
            item.answer_type == "value" and item.kind == "query"):
        return "write"
    return "compute"


def words(text: str) -> int:
    """Words as a reader counts them: each name and number once (`per-second` and `4.5` are one)."""
    return len(_WORD.findall(text))


@dataclass(frozen=True)
class ModuleTime:
    """One module: what it asks of a learner, in minutes."""

    module: str
    words: int
    exercises: tuple[str, ...]
    exercise_minutes: float
    run_seconds: float | None  # None without an executed notebook

    @property
    def reading_minutes(self) -> float:
        """Reading at READING_WPM."""
        return self.words / READING_WPM

    @property
    def minutes(self) -> float:
        """Reading, exercises and the machine's time, in minutes."""
        return self.reading_minutes + self.exercise_minutes + (self.run_seconds or 0.0) / 60


def run_seconds(executed: Any) -> float:
    """Seconds the kernel spent on the cells of an executed notebook (nbclient's timings)."""
    total = 0.0
    for cell in executed.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        began, ended = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if began and ended:
            total += (datetime.fromisoformat(ended.replace("Z", "+00:00"))
                      - datetime.fromisoformat(began.replace("Z", "+00:00"))).total_seconds()
    return total


def _cells_through(cells: list[Any], exercise: str | None) -> list[Any]:
    """The cells up to and including the check cell of exercise (all of them when None)."""
    if exercise is None:
        return cells
    for index, cell in enumerate(cells):
        if cell.get("metadata", {}).get("exercise") == exercise and \
                "exercise-check" in cell.get("metadata", {}).get("tags", []):
            return cells[:index + 1]
    raise KeyError(f"no check cell of exercise {exercise}")


def measure(path: Path, executed: Path | None = None, through: str | None = None) -> ModuleTime:
    """The module of notebook path (with the machine's time from its executed copy, if given);
    through: only up to that exercise's check cell (a module cut short in an agenda)."""
    notebook = nbformat.read(path, as_version=4)
    module = path.stem
    cells = _cells_through(notebook.cells, through)
    asked = {cell.get("metadata", {}).get("exercise") for cell in cells}
    mine = [item for item in EXERCISES.values() if item.module == module and item.id in asked]
    text = [cell.source for cell in cells if cell.cell_type == "markdown"]
    text += [item.question + " " + " ".join((item.options or {}).values()) for item in mine]
    return ModuleTime(
        module=module,
        words=sum(words(t) for t in text),
        exercises=tuple(item.id for item in mine),
        exercise_minutes=sum(EXERCISE_MINUTES[effort(item)] for item in mine),
        run_seconds=run_seconds(nbformat.read(executed, as_version=4)) if executed else None,
    )
