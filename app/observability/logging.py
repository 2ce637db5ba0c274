"""JSON logging shared by web and worker (python-json-logger).

Context (request id, task, trace) is added by a filter attached to the *handler*, so records
from any logger, including libraries and child loggers, carry it. Passwords in connection
URLs are masked in the final line, whatever field they ended up in.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from app.observability import names
from app.observability.context import request_id_var, task_var
from app.settings import mask_url

_OURS = "lab-json"
_SECRET_PARAM = re.compile(r"((?:password|passwd|pwd|token|secret)=)[^&\s\"]+", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """Replace passwords in URLs and password/token parameters with ***."""
    # Every log line passes here: the two regular expressions were a third of the cost of
    # an access-log line (bench/). Each needs a character that most lines do not contain.
    if "@" in text:
        text = mask_url(text)
    if "=" in text:
        text = _SECRET_PARAM.sub(r"\1***", text)
    return text


class ContextFilter(logging.Filter):
    """Add request_id, task fields and the current trace/span ids to a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the context fields; never drops a record."""
        request_id = request_id_var.get()
        task = task_var.get()
        if task:
            for key, value in task.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
            request_id = request_id or task.get(names.F_REQUEST_ID)
        if request_id and not hasattr(record, names.F_REQUEST_ID):
            setattr(record, names.F_REQUEST_ID, request_id)
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            setattr(record, names.F_TRACE_ID, format(ctx.trace_id, "032x"))
            setattr(record, names.F_SPAN_ID, format(ctx.span_id, "016x"))
        return True


class LabJsonFormatter(JsonFormatter):
    """One JSON object per line with the lab's field names and secrets masked."""

    def __init__(self, service: str, instance: str = "") -> None:
        """Name the standard fields as the lab documents them; instance names the replica."""
        super().__init__(
            "{levelname}{name}{message}{process}",
            style="{",
            # pid tells which gunicorn worker or pool child wrote the line.
            rename_fields={
                "levelname": names.F_LEVEL, "name": names.F_LOGGER, "process": names.F_PID,
            },
            timestamp=names.F_TIMESTAMP,
            static_fields={names.F_SERVICE: service, **({names.F_INSTANCE: instance} if instance else {})},
            json_ensure_ascii=False,
        )

    def format(self, record: logging.LogRecord) -> str:
        """Format, then mask secrets in the whole line."""
        return mask_secrets(super().format(record))

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Keep the standard fields first for readable lines."""
        super().add_fields(log_data, record, message_dict)
        ts = log_data.pop(names.F_TIMESTAMP, None)
        if ts is not None:
            ordered = {names.F_TIMESTAMP: ts, **log_data}
            log_data.clear()
            log_data.update(ordered)


def as_json_handler(handler: logging.Handler, service: str, instance: str = "") -> logging.Handler:
    """Give handler the lab's formatter and context filter, and mark it as ours."""
    handler.setFormatter(LabJsonFormatter(service, instance))
    handler.addFilter(ContextFilter())
    handler.set_name(_OURS)
    return handler


def configure_logging(service: str, level: str = "INFO", log_file: str = "", instance: str = "") -> None:
    """Make the root logger write JSON lines to stdout (and to log_file when given).

    Replaces the handlers a previous call installed and leaves others alone (pytest's
    capture handler, for one).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _OURS or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
            handler.close()
    root.addHandler(as_json_handler(logging.StreamHandler(sys.stdout), service, instance))
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        root.addHandler(as_json_handler(logging.FileHandler(log_file, encoding="utf-8"), service, instance))
    root.setLevel(level)
    # Our access log replaces werkzeug's and gunicorn's per-request lines.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Python warnings (Celery's "running as root", deprecations) become JSON lines too.
    logging.captureWarnings(True)
    # billiard (Celery's pool) logs through a logger that does not propagate and has no
    # handler, so its messages would reach stderr as plain text via logging.lastResort.
    billiard = logging.getLogger("multiprocessing")
    _adopt(billiard, root.handlers)
    # Its INFO lines narrate every child start ("calling self.run()"): keep warnings up.
    billiard.setLevel(max(logging.WARNING, root.level))


def _adopt(logger: logging.Logger, handlers: list[logging.Handler]) -> None:
    """Give a non-propagating logger our handlers instead of any previous ones of ours."""
    for handler in list(logger.handlers):
        if handler.get_name() == _OURS:
            logger.removeHandler(handler)
    for handler in handlers:
        if handler.get_name() == _OURS:
            logger.addHandler(handler)
