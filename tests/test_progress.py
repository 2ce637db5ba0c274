"""`lab progress`: a learner's saved notebooks graded without running them again."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from curriculum import exercises, notebook_run, progress
from curriculum.exercise_bank import EXERCISES, Exercise, Mistake
from lab.cli import main

DATA = Path(__file__).parent / "data" / "analysis"


def _progress(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["progress", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_tracked_notebooks_have_every_exercise_unanswered(capsys: pytest.CaptureFixture[str]) -> None:
    tracked = notebook_run.notebooks()
    report = _progress(capsys, *map(str, tracked))
    rows = report["exercises"]
    assert isinstance(rows, list) and rows
    assert all(row["status"] == "unanswered" for row in rows), rows
    # Every exercise of the bank whose module is a tracked notebook is listed, once.
    modules = {p.stem for p in tracked}
    assert sorted(r["id"] for r in rows) == sorted(i.id for i in EXERCISES.values() if i.module in modules)
    assert all(r["module"] == EXERCISES[r["id"]].module for r in rows)


def _cell(source: str, exercise: str | None = None, tag: str | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if exercise and tag:
        cell.metadata.update({"tags": [tag], "exercise": exercise})
    return cell


def test_a_learners_executed_notebook_is_graded_right_wrong_and_unanswered(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A real kernel runs the learner's answers; `lab progress` reads the saved file only."""
    monkeypatch.delenv(exercises.FILL_VARIABLE, raising=False)
    book = nbformat.v4.new_notebook()
    book.cells = [
        _cell("from pathlib import Path\nfrom analysis import logs\nfrom curriculum import exercises\n"
              f"frame = logs.load_logs(Path({str(DATA / 'web.jsonl')!r})).frame\n"
              "access = logs.access_lines(frame)"),
        # A first, wrong try at 2.1 in the same kernel: the saved check is the second attempt.
        _cell("exercises.check('2.1', access.groupby('endpoint').size(), access=access)"),
        _cell("ANSWER = access[access.status_code >= 500].groupby('endpoint').size()",
              "2.1", "exercise-answer"),
        _cell('exercises.check("2.1", ANSWER, access=access)', "2.1", "exercise-check"),
        _cell("ANSWER = None  # your pandas here", "2.2", "exercise-answer"),
        _cell('exercises.check("2.2", ANSWER, access=access)', "2.2", "exercise-check"),
        # Without metadata (as the first notebooks): found from the check call.
        _cell("ANSWER = access.nlargest(1, 'duration_ms')['request_id'].iloc[0]"),
        _cell('exercises.check_value(ANSWER, "3.1", access=access)'),
    ]
    source = tmp_path / "learner.ipynb"
    nbformat.write(book, source)
    outcome = notebook_run.execute(source, tmp_path / "02-logs.ipynb", {})
    assert outcome.ok, outcome.error
    saved = tmp_path / "02-logs.ipynb"

    rows = {r["id"]: r for r in _progress(capsys, str(saved))["exercises"]}  # type: ignore[union-attr]
    # The module's other exercises (not in this learner's file) are listed unanswered.
    module = {i.id: "unanswered" for i in EXERCISES.values() if i.module == "02-logs"}
    assert {i: r["status"] for i, r in rows.items()} == {**module, "2.1": "right", "2.2": "unanswered",
                                                         "3.1": "wrong"}
    assert rows["3.1"]["module"] == "03-traces"
    assert (rows["2.1"]["attempts"], rows["3.1"]["attempts"], rows["2.2"]["attempts"]) == (2, 1, 0)
    assert main(["progress", str(saved)]) == 0
    assert "2.1    right, 2 attempts" in capsys.readouterr().out

    # The learner edits a computed answer and saves without running the check: not graded.
    executed = nbformat.read(saved, as_version=4)
    executed.cells[2].source = "ANSWER = access.groupby('endpoint').size()"
    executed.cells[2].execution_count = 99
    nbformat.write(executed, saved)
    rows = {r["id"]: r for r in _progress(capsys, str(saved))["exercises"]}  # type: ignore[union-attr]
    assert rows["2.1"]["status"] == "unanswered" and "run the check cell" in rows["2.1"]["note"]

    assert main(["progress", str(saved)]) == 0
    table = capsys.readouterr().out
    assert f"0 right, 1 wrong, {len(module)} unanswered of {len(module) + 1} exercises" in table


@pytest.fixture
def quiz(monkeypatch: pytest.MonkeyPatch) -> Iterator[Exercise]:
    """A throwaway choice exercise (in module 09-quiz) with its solution."""
    item = Exercise(id="9.1", module="09-quiz", kind="interpret", answer_type="choice",
                    question="q", hint="h", why="w", options={"a": "x", "b": "y"},
                    mistakes={"b": Mistake("not y")})
    monkeypatch.setitem(EXERCISES, "9.1", item)
    real = exercises.reference
    monkeypatch.setattr(exercises, "reference", lambda i: "a" if i == "9.1" else real(i))
    yield item


def test_a_choice_answer_saved_but_never_checked_is_graded_offline(
        quiz: Exercise, tmp_path: Path) -> None:
    path = tmp_path / "09-quiz.ipynb"
    for answer, status in (('"A"', "right"), ("'b'", "wrong"), ("None", "unanswered")):
        book = nbformat.v4.new_notebook()
        book.cells = [_cell(f"ANSWER = {answer}  # a or b", "9.1", "exercise-answer"),
                      _cell('exercises.check("9.1", ANSWER)', "9.1", "exercise-check")]
        nbformat.write(book, path)
        assert [g.status for g in progress.grade([path])] == [status]


def test_a_promql_answer_changed_since_its_check_needs_the_check_run_again(tmp_path: Path) -> None:
    check = _cell('exercises.check("1.1", ANSWER, prometheus=p, at=run.end)', "1.1", "exercise-check")
    verdict = {"id": "1.1", "module": "01-metrics", "status": "right",
               "answer": "sum by (endpoint) (rate(x[1m]))", "at": "2026-01-01T00:00:00+00:00"}
    check.outputs = [nbformat.v4.new_output("execute_result", {exercises.VERDICT_MIME: verdict,
                                                                "text/plain": "..."})]
    book = nbformat.v4.new_notebook()
    book.cells = [_cell('ANSWER = "sum by (endpoint) (rate(x[1m]))"', "1.1", "exercise-answer"), check]
    path = tmp_path / "01-metrics.ipynb"
    nbformat.write(book, path)
    assert [g.status for g in progress.grade([path]) if g.id == "1.1"] == ["right"]
    book.cells[0].source = 'ANSWER = "sum(rate(x[1m]))"'
    nbformat.write(book, path)
    [changed] = [g for g in progress.grade([path]) if g.id == "1.1"]
    assert changed.status == "unanswered" and changed.note == progress.UNCHECKED
    book.cells[0].source = "ANSWER = sum(("
    nbformat.write(book, path)
    assert [g.status for g in progress.grade([path]) if g.id == "1.1"] == ["wrong"]


def test_no_working_copies_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    assert main(["progress"]) == 1
    assert "run `lab notebook` first" in capsys.readouterr().err
    assert main(["progress", str(tmp_path / "nope.ipynb")]) == 2


def test_a_facilitator_sees_per_exercise_who_has_a_wrong_answer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def report(learner: str, **statuses: str) -> Path:
        rows = [{"id": i.replace("_", "."), "module": "01-metrics", "status": s} for i, s in statuses.items()]
        path = tmp_path / f"{learner}.json"
        path.write_text(json.dumps({"learner": learner, "exercises": rows}), encoding="utf-8")
        return path

    files = [report("ana", **{"1_1": "right", "1_2": "wrong"}),
             report("bo", **{"1_1": "wrong", "1_2": "wrong", "1_10": "right"}),
             report("cy", **{"1_1": "unanswered"})]
    rows = progress.room([json.loads(f.read_text()) for f in files])
    assert [(r.id, r.right, r.wrong, r.unanswered, r.stuck) for r in rows] == [
        ("1.1", 1, 1, 1, ("bo",)), ("1.2", 0, 2, 1, ("ana", "bo")), ("1.10", 1, 0, 2, ())]
    assert main(["progress", "--room", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert "3 learner(s)" in out and "ana, bo" in out
    (tmp_path / "bad.json").write_text("not json", encoding="utf-8")
    assert main(["progress", "--room", str(tmp_path / "bad.json")]) == 2


def test_a_working_copy_is_named_as_lab_notebook_names_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`lab progress 01-metrics` grades the working copy, as `lab notebook --reset 01-metrics`
    takes the name; a name that is neither says which copies there are."""
    var = tmp_path / "var"
    monkeypatch.setenv("VAR_DIR", str(var))
    (var / "workshop").mkdir(parents=True)
    tracked = Path(__file__).parents[1] / "notebooks" / "01-metrics.ipynb"
    (var / "workshop" / "01-metrics.ipynb").write_bytes(tracked.read_bytes())
    for name in ("01-metrics", "01-metrics.ipynb"):
        graded = _progress(capsys, "--offline", name)
        assert graded["notebooks"] == [str(var / "workshop" / "01-metrics.ipynb")]
        assert {row["module"] for row in graded["exercises"]} == {"01-metrics"}
    assert main(["progress", "02-logs"]) == 2
    assert "working copies: 01-metrics" in capsys.readouterr().err


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """`lab progress --room ... | head` ends without a BrokenPipe traceback."""
    rows = [{"id": exercise_id, "module": item.module, "status": "wrong"}
            for exercise_id, item in EXERCISES.items()]
    files = []
    for number in range(40):  # long names: far more output than a pipe holds
        path = tmp_path / f"learner-{number}.json"
        path.write_text(json.dumps({"learner": f"learner-{number}-" + "x" * 200, "exercises": rows}),
                        encoding="utf-8")
        files.append(str(path))
    command = [sys.executable, "-m", "lab.cli", "progress", "--room", *files]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout is not None and run.stdout.readline().startswith(b"40 learner(s)")
    run.stdout.close()  # as `head -n 1` does
    _, err = run.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert run.returncode == 141
