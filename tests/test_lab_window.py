"""Live windows: the notebooks look at the last N minutes of whatever traffic there was, and
fall back to the recorded run when asked and those minutes were idle."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from analysis.lab_context import FaultWindow, LabContext, RunRecord, write_run
from tests.support.promdata import RecordedPrometheus, requests_between

pytestmark = pytest.mark.stack


def _context(synthetic: RecordedPrometheus, reports: Path) -> LabContext:
    return LabContext.from_env({"PROMETHEUS_URL": synthetic.client.url,
                                "LAB_REPORTS_DIR": str(reports)})


def test_the_last_minutes_count_the_traffic_there_was(synthetic: RecordedPrometheus,
                                                      tmp_path: Path) -> None:
    window = _context(synthetic, tmp_path).window(minutes=5, end=synthetic.end)
    assert window.source == "live" and window.seconds == 300
    assert window.requests == pytest.approx(requests_between(-300, 0), rel=0.01)
    assert "the last 5 minutes" in str(window)


def test_idle_minutes_fall_back_to_the_recorded_run_only_when_asked(
        synthetic: RecordedPrometheus, tmp_path: Path) -> None:
    context = _context(synthetic, tmp_path)
    idle_end = synthetic.end + timedelta(hours=2)
    assert context.window(minutes=10, end=idle_end).requests == 0
    with pytest.raises(FileNotFoundError, match="click around the app"):
        context.window(minutes=10, end=idle_end, fallback="run")

    start, end = synthetic.end - timedelta(minutes=4), synthetic.end - timedelta(minutes=1)
    fault = FaultWindow("error_rate.api.list_todos", 0.2, start + timedelta(minutes=1),
                        start + timedelta(minutes=2))
    write_run(tmp_path, RunRecord(start, end, "http://x", "steady", 4, 180.0, Path("s.csv"),
                                  Path("s.json"), Path("r.html"), [fault]))
    recorded = context.window(minutes=10, end=idle_end, fallback="run")
    assert (recorded.source, recorded.start, recorded.end) == ("run", start, end)
    assert recorded.requests == pytest.approx(requests_between(-240, -60), rel=0.01)
    assert recorded.faults == [fault] and "recorded load run" in str(recorded)
    # A live window that overlaps the recorded fault carries it (for shading charts).
    assert context.window(minutes=3, end=synthetic.end).faults == [fault]
    assert context.window(minutes=0.5, end=synthetic.end).faults == []


def test_a_notebook_studies_the_recorded_run_unless_given_minutes(
        synthetic: RecordedPrometheus, tmp_path: Path) -> None:
    context = _context(synthetic, tmp_path)
    start, end = synthetic.end - timedelta(minutes=4), synthetic.end - timedelta(minutes=1)
    fault = FaultWindow("latency.todos.index", 0.4, start + timedelta(minutes=1),
                        start + timedelta(minutes=2))
    write_run(tmp_path, RunRecord(start, end, "http://x", "steady", 4, 180.0, Path("s.csv"),
                                  Path("s.json"), Path("r.html"), [fault]))
    studied = context.study()
    assert (studied.source, studied.start, studied.end, studied.faults) == ("run", start, end, [fault])
    assert studied.requests == pytest.approx(requests_between(-240, -60), rel=0.01)
    live = context.study(minutes=10, end=synthetic.end)
    assert live.source == "live" and live.seconds == 600
    assert context.study(minutes=10, end=synthetic.end + timedelta(hours=2)).source == "run"  # idle
