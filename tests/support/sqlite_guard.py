"""Every sqlite3 connection the test process opens, tracked: which are still open, and a
ResourceWarning for one garbage-collected while open on every Python (3.13 warns natively).

The tracking connection class is handed to sqlite3.connect as its `factory`, the hook the
sqlite3 module offers for it; SQLAlchemy, kombu and Celery all open theirs through it.
"""

from __future__ import annotations

import functools
import sqlite3
import sys
import traceback
import warnings
import weakref
from collections.abc import Callable
from typing import Any

# Python 3.13 warns by itself when an open connection is collected; earlier ones say nothing.
NATIVE_WARNING = sys.version_info >= (3, 13)


class TrackedConnection(sqlite3.Connection):
    """An sqlite3 connection that knows whether it is open and where it was opened."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        self.is_open = False
        self.database = str(database)
        # Our frames only: the libraries' dozen between them and sqlite3 say nothing new.
        self.opened_at = [frame for frame in traceback.extract_stack(limit=60)[:-2]
                          if "-packages" not in frame.filename][-8:]
        super().__init__(database, *args, **kwargs)
        self.is_open = True
        _opened.append(weakref.ref(self))

    def close(self) -> None:
        """Close, then remember it (a close refused from a foreign thread leaves it open)."""
        super().close()
        self.is_open = False

    def __del__(self) -> None:
        if NATIVE_WARNING:  # a __del__ of ours replaces sqlite3's own finalizer, which warns
            super().__del__()  # type: ignore[misc]
        elif self.is_open:
            warnings.warn(f"unclosed database in {self!r} ({self.database})", ResourceWarning,
                          stacklevel=1, source=self)


_opened: list[weakref.ref[TrackedConnection]] = []


def _tracking(connect: Callable[..., sqlite3.Connection]) -> Callable[..., sqlite3.Connection]:
    @functools.wraps(connect)
    def tracked_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", TrackedConnection)
        return connect(*args, **kwargs)

    return tracked_connect


def install() -> None:
    """Track every connection sqlite3.connect makes from now on (idempotent)."""
    if not hasattr(sqlite3.connect, "__wrapped__"):
        # sqlite3 re-exports dbapi2's connect; SQLAlchemy calls the dbapi2 one.
        sqlite3.connect = sqlite3.dbapi2.connect = _tracking(sqlite3.dbapi2.connect)  # type: ignore[assignment]


def mark() -> int:
    """A position in the record of opened connections, for open_since()."""
    return len(_opened)


def open_since(position: int) -> list[TrackedConnection]:
    """The connections opened after position that are still open."""
    alive = (ref() for ref in _opened[position:])
    return [conn for conn in alive if conn is not None and conn.is_open]


def describe(connections: list[TrackedConnection]) -> str:
    """Where each of these connections was opened, for a failure message."""
    return "\n".join(f"--- {conn.database}, opened at:\n{''.join(traceback.format_list(conn.opened_at))}"
                     for conn in connections)
