"""stack.heartbeat: the line a long step says every few seconds, and never after it ends; and
`lab up`'s wait for healthy services, which says what it still waits for and why."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from stack import heartbeat as heartbeat_module
from stack import launch
from stack.config import LabConfig
from stack.errors import StackError
from stack.heartbeat import elapsed_line, heartbeat
from stack.topology import Service


def test_a_long_step_says_what_it_does_until_it_ends_and_then_stops() -> None:
    said: list[str] = []
    step = [0]
    with heartbeat(lambda: f"notebook 01: cell {step[0]}", said.append, every=0.05, total_s=9):
        for step[0] in range(1, 6):
            time.sleep(0.06)
    count = len(said)
    assert count >= 3, said
    assert said[0].startswith("notebook 01: cell ") and said[0].endswith(" s of 9 s (9 s left)")
    time.sleep(0.2)
    assert len(said) == count  # nothing after the block
    assert not [t for t in threading.enumerate() if t.name == "heartbeat"]


def test_the_line_says_time_spent_and_left() -> None:
    assert elapsed_line("load", 35.4) == "load: 35 s"
    assert elapsed_line("incident (blind) running", 35.4, 300) == \
        "incident (blind) running: 35 s of 300 s (265 s left)"
    assert elapsed_line("late", 310, 300) == "late: 310 s of 300 s (0 s left)"


def test_waiting_for_services_says_which_and_why_until_the_timeout(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat_module, "BEAT_S", 0.1)
    config = LabConfig.private(tmp_path / "var", {})
    slow = Service("prometheus", "PROMETHEUS_PORT", ["prometheus"], {}, lambda session: "loading its WAL")
    said: list[str] = []
    with pytest.raises(StackError, match=r"prometheus not healthy after 1 s: loading its WAL"):
        launch.wait_healthy(config, [slow], [], 1.0, said.append)
    line = re.compile(r"waiting for prometheus \(prometheus: loading its WAL\): \d s of 1 s \(\d s left\)")
    assert len(said) >= 3 and all(line.fullmatch(s) for s in said), said
