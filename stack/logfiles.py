"""Reading the services' log files: the last lines, and following new ones."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path


def tail(path: Path, count: int) -> list[str]:
    """The last count lines of path (none when it does not exist)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line.rstrip("\n") for line in deque(fh, maxlen=count)]
    except FileNotFoundError:
        return []


def timestamp(line: str) -> str:
    """The line's timestamp field, for merging files in time order ("" when absent)."""
    try:
        record = json.loads(line)
    except ValueError:
        return ""
    return str(record.get("timestamp", "")) if isinstance(record, dict) else ""


def merged_tail(paths: Sequence[Path], count: int) -> list[str]:
    """The last count lines over several files, in timestamp order (stable for ties)."""
    lines = [line for path in paths for line in tail(path, count)]
    return sorted(lines, key=timestamp)[-count:] if len(paths) > 1 else lines


def follow(paths: Sequence[Path], interval: float = 0.25) -> Iterator[str]:
    """Yield complete lines appended to paths from now on (until the caller stops)."""
    offsets = {path: path.stat().st_size if path.exists() else 0 for path in paths}
    partial = {path: "" for path in paths}
    while True:
        quiet = True
        for path in paths:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offsets[path]:  # truncated or replaced: start over
                offsets[path] = 0
            if size == offsets[path]:
                continue
            with open(path, "rb") as fh:
                fh.seek(offsets[path])
                data = fh.read()
            offsets[path] += len(data)
            chunk = data.decode("utf-8", errors="replace")
            quiet = False
            text = partial[path] + chunk
            *complete, partial[path] = text.split("\n")
            yield from complete
        if quiet:
            time.sleep(interval)
