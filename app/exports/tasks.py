"""The export task and its helpers. Tasks take ids, never objects, and run inside the Flask app context.

They live in the app package, as in Flask's Celery example, so the web process that
publishes them has them registered (the tracing of a publish needs the task object);
the worker process (worker/) imports them through create_app.
"""

from __future__ import annotations

import csv
import logging
import os
import resource
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Task, shared_task
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.db import db
from app.models import Export, Todo, utcnow
from app.observability import names

# The name its lines have always carried in the worker's log (recorded data filter on it).
log = logging.getLogger(names.TASK_LOGGER)

CSV_HEADER = ("id", "text", "done", "position", "created_at", "updated_at")
# Cells starting with these are formulas to a spreadsheet: neutralise them.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MAX_RETRIES = 3


class InjectedFault(RuntimeError):
    """A failure injected on purpose by the export_failure_rate fault."""


def safe_cell(text: str) -> str:
    """Protect a text cell against spreadsheet formula injection (OWASP's advice)."""
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def export_path(export_dir: Path, export_id: str) -> Path:
    """Where the finished CSV of an export lives."""
    return export_dir / f"{export_id}.csv"


def write_csv(path: Path, batch_size: int = 1000) -> int:
    """Stream every todo into path atomically; returns the number of rows.

    Rows are fetched in batches (a server-side cursor on PostgreSQL), written as they come,
    and the file appears under its final name only when complete and synced.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A worker killed mid-export leaves its temporary file behind: clear those first.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    stmt = (
        select(Todo.id, Todo.text, Todo.done, Todo.position, Todo.created_at, Todo.updated_at)
        .order_by(Todo.position, Todo.id)
        .execution_options(yield_per=batch_size)
    )
    rows = 0
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_HEADER)
            for row in db.session.execute(stmt):
                writer.writerow((
                    row.id, safe_cell(row.text), "true" if row.done else "false", row.position,
                    row.created_at.isoformat(), row.updated_at.isoformat(),
                ))
                rows += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def _mark_failed(export_id: str, error: str) -> None:
    """Record a final failure (best effort: the database may be what failed)."""
    try:
        db.session.rollback()
        export = db.session.get(Export, export_id)
        if export is not None:
            export.status = "failed"
            export.error = error[:500]
            export.finished_at = utcnow()
            db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("could not record the failure of export %s", export_id)


# The export's state lives in the exports table, so Celery's result store is not needed:
# ignoring results also keeps a Redis outage from breaking publishing in the web process.
@shared_task(
    bind=True, name="exports.export_todos", job_type=names.JOB_EXPORT, max_retries=MAX_RETRIES,
    ignore_result=True,
)
def export_todos(self: Task, export_id: str) -> dict[str, Any]:
    """Write all todos to EXPORT_DIR/<export_id>.csv and record the outcome."""
    export = db.session.get(Export, export_id)
    if export is None:
        raise LookupError(f"export {export_id} is not recorded")
    path = export_path(Path(current_app.config["EXPORT_DIR"]), export_id)
    if export.status == "succeeded" and path.exists():
        # A redelivered message of a finished export: do not write it twice.
        log.info("export already complete", extra={"rows": export.row_count})
        return {"export_id": export_id, "rows": export.row_count}
    faults = current_app.extensions["faults"]
    faults.delay("worker_delay")
    try:
        if faults.should_fail("export_failure_rate"):
            raise InjectedFault("export failed by injected fault (export_failure_rate)")
        export.status = "running"
        export.attempts += 1
        export.started_at = utcnow()
        db.session.commit()
        log.info("export started", extra={"attempt": export.attempts})
        rows = write_csv(path)
        export.status = "succeeded"
        export.row_count = rows
        export.error = None
        export.finished_at = utcnow()
        db.session.commit()
    except OperationalError as exc:
        db.session.rollback()
        if self.request.retries >= MAX_RETRIES:
            _mark_failed(export_id, f"database error after {MAX_RETRIES} retries")
            raise
        countdown = min(30, 2 ** self.request.retries)
        log.warning("transient database error, retrying in %ss", countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:
        _mark_failed(export_id, f"{type(exc).__name__}: {exc}")
        raise
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log.info("export finished", extra={"rows": rows, "peak_rss_kib": peak_kib})
    return {"export_id": export_id, "rows": rows}


def requeue_stale_exports(older_than_s: float) -> list[str]:
    """Queue again the exports still "queued" long after they were accepted.

    Their message was lost with the broker (a Redis that restarted without its data):
    without this they would wait forever. Requeueing a message that still exists is
    harmless: the task skips an export that already succeeded, and a second run of one
    in progress rewrites the same file atomically.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stale = db.session.execute(
        select(Export.id, Export.request_id).where(Export.status == "queued", Export.created_at < cutoff)
    ).all()
    for export_id, request_id in stale:
        export_todos.apply_async(
            args=(export_id,), task_id=export_id, headers={names.TASK_REQUEST_ID_HEADER: request_id or ""}
        )
        log.warning("export %s was still queued after %ss: queued again", export_id, int(older_than_s),
                    extra={names.F_REQUEST_ID: request_id or ""})
    return [export_id for export_id, _ in stale]
