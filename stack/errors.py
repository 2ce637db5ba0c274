"""The one error type of the stack library: something the user can fix, said in one line."""

from __future__ import annotations

from app.settings import CONFIG_ERROR_EXIT

__all__ = ["CONFIG_ERROR_EXIT", "StackError"]


class StackError(Exception):
    """Something the user can fix; the message says what, in one line where possible."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        """Keep the exit code the command line should return."""
        super().__init__(message)
        self.exit_code = exit_code
