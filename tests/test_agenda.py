"""The workshop's times are measured, and the facilitator's kit says the measured figures:
each notebook's Duration line, the module table, the measurement table and the 3.5-hour
agenda's slots follow curriculum/agenda.py (words read, exercises by what they ask)."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import nbformat
import pytest

from curriculum import agenda
from tests.support.processes import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGE = (ROOT / "docs" / "workshop.md").read_text(encoding="utf-8")


def rounded(minutes: float) -> int:
    """Up to the next five minutes, as the kit states them."""
    return 5 * math.ceil(minutes / 5)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_module_states_its_measured_duration(path: Path) -> None:
    measured = agenda.measure(path)
    header = nbformat.read(path, as_version=4).cells[0].source
    stated = re.search(r"\*\*Duration:\*\* (\d+) minutes", header)
    assert stated and int(stated[1]) == rounded(measured.minutes), (path.stem, measured)
    row = re.search(rf"^\| `{re.escape(path.stem)}` \| (\d+) \|", PAGE, re.M)
    assert row and int(row[1]) == rounded(measured.minutes), "the module table of docs/workshop.md"
    table = re.search(rf"^\| `{re.escape(path.stem)}` \| ([\d,]+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$",
                      PAGE, re.M)
    assert table, f"the measurement table has no row for {path.stem}"
    assert [int(x.replace(",", "")) for x in table.groups()] == [
        measured.words, round(measured.reading_minutes), len(measured.exercises),
        round(measured.exercise_minutes), rounded(measured.minutes)]


def _clock(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def test_the_agenda_gives_each_module_at_least_its_measured_time_in_three_and_a_half_hours() -> None:
    rows = re.findall(r"^\| (\d:\d\d) \| ([^|]+) \|", PAGE, re.M)
    assert rows and rows[0][0] == "0:00" and rows[-1][0] == "3:30", rows
    slots = {what: _clock(after[0]) - _clock(time) for (time, what), after in itertools.pairwise(rows)}
    covered = set()
    for what, slot in slots.items():
        module = re.search(r"`(\d\d-[\w-]+)`", what)
        if not module:
            continue
        through = re.search(r"through (\d+\.\d+)", what)
        measured = agenda.measure(ROOT / "notebooks" / f"{module[1]}.ipynb", through=through and through[1])
        assert slot >= math.ceil(measured.minutes), (what, slot, measured.minutes)
        covered.add(module[1])
    take_home = re.search(r"^\| 3:30 \| end \| take-home: ([^|]+)\|", PAGE, re.M)
    assert take_home, "the agenda's last row names what is take-home"
    assert covered | set(re.findall(r"`(\d\d-[\w-]+)`", take_home[1])) == {p.stem for p in NOTEBOOKS}


def test_an_exercise_is_read_and_timed_by_what_it_asks() -> None:
    from curriculum.exercise_bank import EXERCISES

    assert agenda.effort(EXERCISES["1.1"]) == "write"  # PromQL from scratch
    assert agenda.effort(EXERCISES["1.3"]) == "choose"
    assert agenda.effort(EXERCISES["0.1"]) == "compute"
    assert agenda.words("`rate(x[1m])` is per-second, 4.5 times") == 7  # rate x 1m is per-second 4.5 times


def test_the_full_day_is_the_sum_of_the_modules() -> None:
    stated = re.search(r"A full day \(about [\d.]+ hours of modules, (\d+) minutes measured\)", PAGE)
    assert stated and int(stated[1]) == sum(rounded(agenda.measure(p).minutes) for p in NOTEBOOKS)
