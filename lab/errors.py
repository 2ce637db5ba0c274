"""The launcher's error: the stack library's, which the CLI turns into one line and an exit code."""

from __future__ import annotations

from stack.errors import StackError

# Raised by lab commands; the CLI catches StackError, its base, so both read alike.
LabError = StackError
