"""A line every few seconds while a long step works, so that no lab command is silent for long.

    with heartbeat(lambda: f"running 01-metrics.ipynb: cell {cell} of 60", say, every=5):
        execute(...)

The line is what `what` says now (a string, or a function asked at each beat), then the time
spent and, when the step's length is known, the time left. Used where a step waits on
something that prints nothing itself: a service becoming healthy, a notebook executing, a
benchmark section, a blind incident.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

BEAT_S = 5.0  # half the longest silence a lab command allows itself (10 s)


def elapsed_line(what: str, elapsed_s: float, total_s: float | None = None) -> str:
    """'what: 35 s' or 'what: 35 s of 300 s (265 s left)'."""
    line = f"{what}: {elapsed_s:.0f} s"
    if total_s is not None:
        line += f" of {total_s:.0f} s ({max(0.0, total_s - elapsed_s):.0f} s left)"
    return line


def say_now(line: str) -> None:
    """Print line at once (stdout may be a pipe: a buffered beat would arrive late)."""
    print(line, flush=True)


@contextmanager
def heartbeat(what: str | Callable[[], str], say: Callable[[str], None] = say_now,
              every: float = BEAT_S, total_s: float | None = None) -> Iterator[None]:
    """Say a progress line every `every` seconds until the block ends (never after it)."""
    began = time.monotonic()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            said = what() if callable(what) else what
            say(elapsed_line(said, time.monotonic() - began, total_s))

    beating = threading.Thread(target=beat, name="heartbeat", daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        beating.join()
