"""Publishing jobs from the web: one place that enqueues, counts and correlates."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.result import AsyncResult

from app.observability import names
from app.observability.context import request_id_var
from app.observability.metrics import BACKGROUND_JOBS

# Message header that carries the web request id into the worker's log lines.
REQUEST_ID_HEADER = "lab_request_id"


def enqueue(task: Task, *args: Any, environment: str, task_id: str | None = None) -> AsyncResult:
    """Publish task(*args) with the current request id; count it once it is on the broker.

    Raises kombu's OperationalError when the broker cannot be reached within the
    publish retry policy (a few seconds), so the caller can answer 503.
    """
    result = task.apply_async(
        args=args, task_id=task_id, headers={REQUEST_ID_HEADER: request_id_var.get() or ""}
    )
    BACKGROUND_JOBS.labels(task.job_type, names.JOB_ENQUEUED, environment).inc()
    return result
