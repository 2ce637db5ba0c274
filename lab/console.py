"""How a lab command says what it does while it works: one line at once, progress on stdout,
the clean-up after a failure ("stopping ...") on stderr."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    """Print line now (a command is never silent for long), on stderr when it reports a clean-up."""
    print(line, file=sys.stderr if line.startswith("stopping") else sys.stdout, flush=True)
