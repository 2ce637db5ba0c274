"""A learner's working copies: made once, kept, restored on --reset; the tracked notebooks and
what `lab demo` executes stay untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
import pytest

from curriculum import notebook_run, progress
from lab import workshop
from lab.cli import build_parser
from lab.errors import LabError
from stack import processes
from stack.config import LabConfig


def _digest(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_working_copies_are_made_once_kept_and_reset_on_request(tmp_path: Path) -> None:
    config = LabConfig.from_env({"VAR_DIR": str(tmp_path / "var")})
    tracked = workshop.tracked(config)
    before = _digest(tracked)

    first = workshop.working_copies(config)
    assert [p.name for p in first.copied] == [p.name for p in tracked]
    assert config.workshop_dir == tmp_path / "var" / "workshop"
    assert _digest(first.copied) == before

    # The learner answers in a copy and saves; a second `lab notebook` keeps it.
    mine = config.workshop_dir / tracked[0].name
    book = nbformat.read(mine, as_version=4)
    answer = next(c for c in book.cells if "exercise-answer" in c.metadata.get("tags", []))
    answer.source = answer.source.replace("ANSWER = None", "ANSWER = 'mine'", 1)
    nbformat.write(book, mine)
    edited = mine.read_bytes()
    again = workshop.working_copies(config)
    assert not again.copied and not again.reset and mine.read_bytes() == edited
    # `lab progress` grades the copy (answered, not checked), the demo still runs the tracked.
    assert any(g.status != "unanswered" or g.note for g in progress.grade([mine]))
    assert all(g.status == "unanswered" and not g.note for g in progress.grade([tracked[0]]))
    assert notebook_run.notebooks() == tracked and _digest(tracked) == before

    # --reset of one notebook restores it and moves the learner's version aside.
    other = config.workshop_dir / tracked[1].name
    other.write_text("{}", encoding="utf-8")
    reset = workshop.working_copies(config, reset=True, names=[tracked[0].stem])
    assert reset.reset == [mine] and mine.read_bytes() == tracked[0].read_bytes()
    assert reset.set_aside is not None and (reset.set_aside / mine.name).read_bytes() == edited
    assert other.read_text(encoding="utf-8") == "{}"  # not named: kept
    workshop.working_copies(config, reset=True)
    assert _digest(workshop.tracked(config)) == before == {
        n: d for n, d in _digest(sorted(config.workshop_dir.glob("*.ipynb"))).items()}

    with pytest.raises(LabError, match="no tracked notebook 99-nope"):
        workshop.working_copies(config, reset=True, names=["99-nope"])


def test_lab_notebook_takes_reset_with_or_without_names() -> None:
    parser = build_parser()
    assert parser.parse_args(["notebook"]).reset is None
    assert parser.parse_args(["notebook", "--reset"]).reset == []
    assert parser.parse_args(["notebook", "--reset", "01-metrics"]).reset == ["01-metrics"]


def test_lab_notebook_copies_only_makes_the_copies_and_starts_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """What the Docker path's jupyter runs at start: copies made once, kept after, no server."""
    from lab.cli import main

    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    config = LabConfig.from_env()
    assert main(["notebook", "--copies-only"]) == 0
    copies = sorted(p.name for p in config.workshop_dir.glob("*.ipynb"))
    assert copies == [p.name for p in workshop.tracked(config)]
    assert "copied into" in capsys.readouterr().out
    edited = config.workshop_dir / copies[0]
    edited.write_text("{}", encoding="utf-8")
    assert main(["notebook", "--copies-only"]) == 0
    assert edited.read_text(encoding="utf-8") == "{}"  # the learner's, kept
    assert main(["notebook", "--copies-only", "--reset", edited.stem]) == 0
    assert edited.read_text(encoding="utf-8") != "{}"
    assert "restored from the tracked notebooks" in capsys.readouterr().out
    assert processes.read_pid(config.run_dir, "jupyter") is None


def test_a_jupyterlab_left_running_on_the_tracked_notebooks_is_not_reused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An older lab's JupyterLab served notebooks/ itself: `lab notebook` says so, starts nothing."""
    import os

    import psutil

    from lab.cli import main
    from stack import processes as procs

    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    config = LabConfig.from_env()
    me = psutil.Process(os.getpid())  # stands for the running JupyterLab: alive, ours
    old_root = f"--ServerApp.root_dir={config.root / 'notebooks'}"
    procs.write_pid(config.run_dir, procs.PidRecord("jupyter", me.pid, me.create_time(), 1,
                                                    ["jupyter", "lab", old_root]))
    assert main(["notebook"]) == 1
    assert "`lab down` and `lab notebook` again" in capsys.readouterr().err  # an error: stderr
    assert procs.read_pid(config.run_dir, "jupyter") is not None  # nothing stopped or started
