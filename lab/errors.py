"""The one error type the launcher turns into a clean one-line message and exit code."""

from __future__ import annotations


class LabError(Exception):
    """Something the user can fix; the message says what, in one line where possible."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        """Keep the exit code the CLI should return."""
        super().__init__(message)
        self.exit_code = exit_code
