"""What the benchmarks measure a process with: its CPU time, its JSON log lines.

The processes themselves are started by the stack library (stack.launch.attached).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil

from stack import launch
from stack.config import LabConfig


@contextmanager
def serve(var_dir: Path, env: Mapping[str, str], only: tuple[str, ...] = ("web",),
          workers: int = 2, threads: int = 4, worker_concurrency: int = 2,
          worker_args: tuple[str, ...] = ()) -> Iterator[launch.Running]:
    """The services named in only, on free ports with VAR_DIR var_dir and env; stopped after."""
    settings = {**env, "GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": str(threads)}
    config = LabConfig.private(var_dir, settings, worker_concurrency=worker_concurrency,
                               worker_args=worker_args)
    with launch.attached(config, only, migrate_first=False) as running:
        yield running


def port_of(handle: launch.Handle) -> int:
    """The port a service's URL names (what the load generator takes)."""
    return int(handle.url.rsplit(":", 1)[1].split("/", 1)[0])


class CpuMeter:
    """CPU seconds (user + system) used by a process tree, per process so that a replaced
    worker neither loses nor double-counts time."""

    def __init__(self, pid: int) -> None:
        """Meter the tree under pid (pid included)."""
        self.pid = pid
        self._last = self._sample()

    def processes(self) -> list[psutil.Process]:
        """The processes metered now: the tree under pid."""
        root = psutil.Process(self.pid)
        return [root, *root.children(recursive=True)]

    def _sample(self) -> dict[tuple[int, float], float]:
        try:
            processes = self.processes()
        except psutil.Error:
            return {}
        sample = {}
        for proc in processes:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                sample[(proc.pid, proc.create_time())] = times.user + times.system
        return sample

    def lap(self) -> float:
        """CPU seconds used since the previous lap (or since creation)."""
        now = self._sample()
        used = sum(value - self._last.get(key, 0.0) for key, value in now.items())
        self._last = now
        return used
