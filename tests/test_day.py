"""`lab day`, the workshop day in one command, on a fresh lab as a learner runs it at 9:00."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from analysis.lab_context import RunRecord
from lab.loadrun import TRAFFIC, WORKSHOP_FAULTS
from room.store import RoomStore
from stack import launch
from stack.config import LabConfig
from tests.support.launcher import lab_env, run_lab
from tests.support.processes import BIN, free_port, http_ok, start, wait_until


def _requests_counted(config: LabConfig) -> float:
    """Every request the app has counted, as Prometheus last scraped it."""
    answer = requests.get(f"{config.environment.prometheus_url}/api/v1/query",
                          params={"query": "sum(http_request_duration_seconds_count)"}, timeout=10).json()
    return float(answer["data"]["result"][0]["value"][1])


@pytest.mark.slow
@pytest.mark.stack
def test_the_day_in_one_command_on_a_fresh_lab(tmp_path: Path) -> None:
    """The stack, JupyterLab on the working copies, the run with the workshop's fault windows,
    gentle traffic after it, and where everything is; a second `lab day` starts and records
    nothing; `lab down` stops all of it."""
    env = lab_env(tmp_path / "var", {"LAB_REPORTS_DIR": str(tmp_path / "reports")})
    config = LabConfig.from_env(env)
    try:
        day = run_lab(env, "day", timeout=900)
        assert day.code == 0, day.stdout[-3000:] + day.stderr[-3000:]
        out = day.stdout
        assert [line[:3] for line in out.splitlines() if re.match(r"\d/4  ", line)] == \
            ["1/4", "2/4", "3/4", "4/4"]
        # Never silent for long while the five-minute run records: a line every few seconds.
        assert len([line for line in out.splitlines() if line.startswith("load: ")]) >= 30, out
        record = RunRecord.from_json((tmp_path / "reports" / "last-run.json").read_text(encoding="utf-8"))
        assert sorted(window.name for window in record.faults) == \
            sorted(fault.split("=")[0] for fault, _ in WORKSHOP_FAULTS)
        notebooks = re.search(r"JupyterLab\s+(http://127\.0\.0\.1:\d+/lab\?token=\w+)", out)
        assert notebooks, out
        assert requests.get(notebooks.group(1), timeout=10).status_code == 200
        assert (config.workshop_dir / "00-setup.ipynb").is_file()
        # The gentle traffic reaches the app after the recorded run.
        running = launch.recorded(config)
        assert {TRAFFIC, "jupyter"} <= set(running), running
        status = run_lab(env, "status")
        assert status.code == 0, status.stdout
        shown = rf"^traffic\s+running\s+{running[TRAFFIC].pid}\s"
        assert re.search(shown, status.stdout, re.M), status.stdout
        before = _requests_counted(config)
        time.sleep(20)
        assert _requests_counted(config) > before

        # A later recorded run (the blind incident's traffic, say) pauses the background traffic:
        # its edges stay quiet and every request of it is Locust's; then the traffic resumes.
        later = run_lab(env, "load", "--users", "1", "--duration", "5", timeout=300)
        assert later.code == 0, later.stdout + later.stderr
        assert "background traffic paused for the recorded run" in later.stdout
        assert "background traffic resumed" in later.stdout
        running = launch.recorded(config)
        assert running[TRAFFIC].matches()
        last = tmp_path / "reports" / "last-run.json"
        assert RunRecord.from_json(last.read_text(encoding="utf-8")).users == 1
        last.write_text(record.to_json(), encoding="utf-8")  # the day's run again, for what follows

        # The second time with the facilitator's room: joined first, said at the end.
        room_port = free_port()
        room_var = tmp_path / "facilitator"
        facilitator = start("room", [str(BIN / "lab"), "room", "serve", "--port", str(room_port)],
                            {"VAR_DIR": str(room_var)}, tmp_path)
        room_url = f"http://127.0.0.1:{room_port}"
        wait_until(lambda: http_ok(f"{room_url}/healthz"), 30, "lab room serve")
        code = RoomStore(room_var / "room" / "room.sqlite").secret("code")
        try:
            again = run_lab(env, "day", "--room", room_url, code, "--name", "Dee", timeout=300)
        finally:
            facilitator.stop()
        assert again.code == 0, again.stdout + again.stderr
        assert "already up" in again.stdout and "already recorded" in again.stdout
        assert "jupyter: already running" in again.stdout
        assert f"(pid {running[TRAFFIC].pid})" in again.stdout
        assert f"0/4  joined the room at {room_url} as Dee" in again.stdout
        assert re.search(rf"^  the room\s+{re.escape(room_url)} as Dee$", again.stdout, re.M), again.stdout
    finally:
        down = run_lab(env, "down", timeout=180)
    assert down.code == 0 and "traffic: stopped" in down.stdout and "jupyter: stopped" in down.stdout
    assert launch.recorded(config) == {}
