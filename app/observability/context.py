"""Context variables that carry correlation ids into every log line of a request or task."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# task_id and job_type of the Celery task running in this thread, if any.
task_var: ContextVar[dict[str, str] | None] = ContextVar("task", default=None)

# Accept ids a proxy or client would plausibly send (UUIDs, Caddy's ids, hex, ULIDs),
# refuse anything that could smuggle newlines, quotes or unbounded text into logs.
_WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")


def is_well_formed_request_id(value: str | None) -> bool:
    """True for an incoming X-Request-ID we are willing to adopt."""
    return bool(value) and _WELL_FORMED.fullmatch(value or "") is not None


def new_request_id() -> str:
    """A fresh request id (UUID4)."""
    return str(uuid.uuid4())
