"""stack.heartbeat: the line a long step says every few seconds, and never after it ends."""

from __future__ import annotations

import threading
import time

from stack.heartbeat import elapsed_line, heartbeat


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
