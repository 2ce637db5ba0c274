"""Prometheus metrics shared by web and worker (prometheus-client).

Works in a single process and in multiprocess mode (gunicorn workers, Celery prefork
children): when PROMETHEUS_MULTIPROC_DIR is set before this module is first imported,
values live in per-process files that the exposition aggregates.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from app.observability import names

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUEST_DURATION = Histogram(
    names.HTTP_REQUEST_DURATION,
    "Duration of HTTP requests handled by the Flask app, in seconds.",
    ["method", "endpoint", "status", "environment"],
    buckets=names.HTTP_BUCKETS,
)

BACKGROUND_JOBS = Counter(
    names.BACKGROUND_JOBS,
    "Background jobs by type and lifecycle status (enqueued in web; started, succeeded, "
    "failed, retried in the worker).",
    ["job_type", "status", "environment"],
)

BACKGROUND_JOB_DURATION = Histogram(
    names.BACKGROUND_JOB_DURATION,
    "Run time of background jobs in the worker, in seconds.",
    ["job_type", "status", "environment"],
    buckets=names.JOB_BUCKETS,
)


def declare_job_series(job_types: Iterable[str], statuses: Iterable[str], environment: str) -> None:
    """Create the job counters at 0 so that increase() and absent-series alerts see the
    first job too (a counter born at 1 has no earlier sample to increase from)."""
    for job_type in job_types:
        for status in statuses:
            BACKGROUND_JOBS.labels(job_type, status, environment)


def multiprocess_dir() -> str | None:
    """The multiprocess directory in force, if any."""
    return os.environ.get(MULTIPROC_ENV) or None


def reset_multiprocess_dir(path: str | Path) -> None:
    """Empty (or create) a multiprocess directory; call once before any child starts."""
    directory = Path(path)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)


def mark_process_dead(pid: int) -> None:
    """Drop a dead child's live-gauge files (counters and histograms are kept)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


def _constant(pid: int) -> Callable[[], int]:
    """A pid getter for ProcessCollector that always names the same process."""
    return lambda: pid


class ProcessGroupCollector(Collector):
    """Process metrics (CPU, memory, fds) for a parent and all its children.

    In multiprocess mode the stock process collector would describe only the process that
    happens to answer the scrape. This collector reports every process of the server, each
    labelled with its pid and role, using prometheus-client's own /proc reader.
    """

    def __init__(self, root_pid: int, root_role: str, child_role: str) -> None:
        """Describe root_pid and its live children."""
        self.root_pid = root_pid
        self.root_role = root_role
        self.child_role = child_role

    def _members(self) -> Iterator[tuple[int, str]]:
        yield self.root_pid, self.root_role
        try:
            children = psutil.Process(self.root_pid).children()
        except psutil.Error:
            return
        for child in children:
            yield child.pid, self.child_role

    def collect(self) -> Iterable[Metric]:
        """Yield process_* metrics with pid and role labels."""
        merged: dict[str, Metric] = {}
        for pid, role in self._members():
            collector = ProcessCollector(namespace="", pid=_constant(pid), registry=None)
            for metric in collector.collect():
                target = merged.setdefault(
                    metric.name, Metric(metric.name, metric.documentation, metric.type)
                )
                for sample in metric.samples:
                    labels = {**sample.labels, "pid": str(pid), "role": role}
                    target.add_sample(sample.name, labels, sample.value)
        return list(merged.values())


def exposition(process_collector: Collector | None = None) -> tuple[bytes, str]:
    """Render the current metrics: aggregated over processes when in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        if process_collector is not None:
            registry.register(process_collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
