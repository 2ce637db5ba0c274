"""The tracked notebooks as a learner meets them: every exercise of the bank is there, in the
contract's shape (a folded hint, `ANSWER = None`, a check cell after it), nothing before an
exercise gives its answer away, and nothing is saved in them (no outputs, no answers).

Read from the .ipynb files only; nothing is executed (test_notebooks runs them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from curriculum import exercises, notebook_run, progress
from curriculum.exercise_bank import EXERCISES

TRACKED = notebook_run.notebooks()


def _book(path: Path) -> Any:
    return nbformat.read(path, as_version=4)


def _index(book: Any, cell: Any) -> int:
    return next(i for i, c in enumerate(book.cells) if c is cell)


@pytest.mark.parametrize("path", TRACKED, ids=[p.stem for p in TRACKED])
def test_a_tracked_notebook_is_pristine(path: Path) -> None:
    book = _book(path)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        f"{path.name} carries saved outputs: clear them before committing"
    assert all(g.status == "unanswered" for g in progress.grade_notebook(path)), \
        f"{path.name} carries an answer"


def test_every_exercise_of_the_bank_is_in_its_notebook_once() -> None:
    """Both ways: the bank's exercises of each notebook, and no exercise the bank lacks."""
    found: dict[str, str] = {}
    for path in TRACKED:
        for slot in progress.exercise_cells(_book(path)):
            where = found.get(slot.exercise)
            assert where is None, f"exercise {slot.exercise} in {where} and {path.name}"
            found[slot.exercise] = path.stem
    modules = {p.stem for p in TRACKED}  # a module whose notebook is still to come is skipped
    assert found == {i.id: i.module for i in EXERCISES.values() if i.module in modules}


def _exercises() -> list[tuple[Path, str]]:
    return [(p, slot.exercise) for p in TRACKED for slot in progress.exercise_cells(_book(p))]


@pytest.mark.parametrize(("path", "exercise_id"), _exercises(),
                         ids=[f"{p.stem}:{i}" for p, i in _exercises()])
def test_an_exercise_asks_first_and_gives_nothing_away(path: Path, exercise_id: str) -> None:
    book = _book(path)
    [slot] = [s for s in progress.exercise_cells(book) if s.exercise == exercise_id]
    assert slot.answer is not None and slot.check is not None, "an answer cell and a check cell"
    for cell, tag in ((slot.answer, progress.ANSWER_TAG), (slot.check, progress.CHECK_TAG)):
        assert cell.metadata.get("exercise") == exercise_id and tag in cell.metadata.get("tags", [])
    assert slot.answer.source.splitlines()[0].startswith("ANSWER = None")
    answer_at, check_at = _index(book, slot.answer), _index(book, slot.check)
    assert answer_at < check_at
    before = book.cells[:answer_at]
    # The hint is folded: in a <details> block above, or rendered by exercises.ask().
    asked = any(c.cell_type == "code" and f'exercises.ask("{exercise_id}")' in c.source for c in before)
    folded = any(c.cell_type == "markdown" and "<details>" in c.source for c in before)
    assert asked or folded, "a folded hint above the answer cell"
    # Nothing above the check runs the reference, and a written solution is not printed above.
    earlier = book.cells[:check_at]
    call = re.compile(rf"""reference\(\s*["']{re.escape(exercise_id)}["']""")
    assert not any(call.search(c.source) for c in earlier if c.cell_type == "code"), \
        "the reference solution is run before the exercise is checked"
    solution = exercises.reference(exercise_id)
    if isinstance(solution, str) and len(solution) > 12:
        written = " ".join(solution.split())
        assert not any(written in " ".join(c.source.split()) for c in before), \
            "the solution is written out above the exercise"
    # What a right answer teaches (its `why`) is not stated above: else the text answers it.
    said = _plain(" ".join(c.source for c in before))
    for sentence in re.split(r"(?<=[.:;])\s+", EXERCISES[exercise_id].why):
        lesson = _plain(sentence)
        assert len(lesson) <= 40 or lesson not in said, f"stated above the exercise: {sentence}"


def _plain(text: str) -> str:
    """Text without markdown emphasis and with single spaces, lower case: how a sentence reads."""
    return re.sub(r"[\s`*_]+", " ", text).strip().lower()


def test_the_check_for_a_lesson_stated_above_catches_one() -> None:
    """The why-check above on a planted notebook text: a sentence of 1.1's why, restyled."""
    why = EXERCISES["1.1"].why
    sentence = next(s for s in re.split(r"(?<=[.:;])\s+", why) if len(_plain(s)) > 40)
    restyled = "**" + sentence.replace(" ", "  \n") + "**"
    assert _plain(sentence) in _plain(f"Some text. {restyled} More text.")
