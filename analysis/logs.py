"""The app's JSON log lines as a typed pandas DataFrame, and the questions asked of them.

Lines come from the local launcher's files (var/log/web.jsonl, var/log/worker.jsonl: one
JSON object per line) or from `docker compose logs` output, where each line is prefixed by
its container (``web-1  | {...}``). A line that is not a JSON object (a truncated write, a
traceback, a banner) is counted in ``LogLoad.malformed`` and skipped, never fatal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from app.observability import names

# The columns every frame has, in this order, whatever the lines held.
COLUMNS = (
    names.F_TIMESTAMP, names.F_LEVEL, names.F_LOGGER, names.F_MESSAGE, names.F_SERVICE,
    names.F_REQUEST_ID, names.F_METHOD, names.F_PATH, names.F_ENDPOINT, names.F_STATUS,
    names.F_DURATION_MS, names.F_CLIENT_IP, names.F_USER_AGENT, names.F_TRACE_ID,
    names.F_SPAN_ID, names.F_TASK_ID, names.F_JOB_TYPE,
)
# `docker compose logs`: "<service>-<n>  | " or "<project>-<service>-<n>  | " before the JSON.
_COMPOSE_PREFIX = re.compile(r"^(?P<container>[A-Za-z0-9][\w.-]*)\s+\|\s?(?P<rest>.*)$")


@dataclass
class LogLoad:
    """Parsed log lines, and how many lines could not be parsed."""

    frame: pd.DataFrame
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)


def _parse_line(raw: str) -> tuple[dict[str, object] | None, str | None]:
    """(record, container) of one line; record None when the line is not a JSON object."""
    line = raw.strip()
    container = None
    if line and not line.startswith("{"):
        match = _COMPOSE_PREFIX.match(line)
        if match:
            container, line = match["container"], match["rest"].strip()
    try:
        record = json.loads(line)
    except ValueError:
        return None, container
    return (record if isinstance(record, dict) else None), container


def parse_lines(lines: Iterable[str], max_examples: int = 5) -> LogLoad:
    """Parse JSON log lines (plain or compose-prefixed); blank lines are neither data nor errors."""
    records: list[dict[str, object]] = []
    malformed = 0
    examples: list[str] = []
    for raw in lines:
        if not raw.strip():
            continue
        record, container = _parse_line(raw)
        if record is None:
            malformed += 1
            if len(examples) < max_examples:
                examples.append(raw.rstrip("\n")[:200])
            continue
        if container is not None:
            record.setdefault("container", container)
        records.append(record)
    return LogLoad(typed(pd.DataFrame.from_records(records)), malformed, examples)


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Give the known columns their types; missing ones are added empty."""
    frame = frame.copy()
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    frame[names.F_TIMESTAMP] = pd.to_datetime(frame[names.F_TIMESTAMP], utc=True, errors="coerce",
                                              format="ISO8601")
    frame[names.F_STATUS] = pd.to_numeric(frame[names.F_STATUS], errors="coerce").astype("Int64")
    frame[names.F_DURATION_MS] = pd.to_numeric(frame[names.F_DURATION_MS],
                                               errors="coerce").astype("float64")
    for column in COLUMNS:
        if column not in (names.F_TIMESTAMP, names.F_STATUS, names.F_DURATION_MS):
            frame[column] = frame[column].astype("string")
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[[*COLUMNS, *extra]].sort_values(names.F_TIMESTAMP, kind="stable",
                                                ignore_index=True)


def load_logs(*paths: str | Path) -> LogLoad:
    """Read and parse log files (JSON lines or saved `docker compose logs` output)."""
    loads = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            loads.append(parse_lines(fh))
    if not loads:
        return parse_lines([])
    frame = typed(pd.concat([load.frame for load in loads], ignore_index=True))
    return LogLoad(frame, sum(load.malformed for load in loads),
                   [e for load in loads for e in load.malformed_examples])


def access_lines(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the access log: one line per request the app answered (the /metrics scrape excluded)."""
    return frame[frame[names.F_LOGGER] == names.ACCESS_LOGGER].reset_index(drop=True)


def between(frame: pd.DataFrame, start: pd.Timestamp | None = None,
            end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Lines with start <= timestamp < end (timezone-aware bounds)."""
    mask = pd.Series(True, index=frame.index)
    if start is not None:
        mask &= frame[names.F_TIMESTAMP] >= pd.Timestamp(start)
    if end is not None:
        mask &= frame[names.F_TIMESTAMP] < pd.Timestamp(end)
    return frame[mask].reset_index(drop=True)


def errors_by_endpoint(frame: pd.DataFrame, min_status: int = 500) -> pd.DataFrame:
    """Per endpoint: requests, errors (status >= min_status) and their share, worst first."""
    access = access_lines(frame)
    is_error = access[names.F_STATUS].fillna(0) >= min_status
    table = access.assign(error=is_error).groupby(names.F_ENDPOINT, dropna=False).agg(
        requests=("error", "size"), errors=("error", "sum"))
    table["error_ratio"] = table["errors"] / table["requests"]
    return table.sort_values(["errors", "requests"], ascending=False).reset_index()


def slow_requests(frame: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The top slowest requests with what is needed to find them again (request and trace id)."""
    access = access_lines(frame)
    columns = [names.F_TIMESTAMP, names.F_METHOD, names.F_PATH, names.F_ENDPOINT, names.F_STATUS,
               names.F_DURATION_MS, names.F_REQUEST_ID, names.F_TRACE_ID]
    return access.nlargest(top, names.F_DURATION_MS)[columns].reset_index(drop=True)


def latency_percentiles(frame: pd.DataFrame, quantiles: tuple[float, ...] = (0.5, 0.95, 0.99),
                        by: str | None = names.F_ENDPOINT) -> pd.DataFrame:
    """Latency percentiles in ms from duration_ms, per endpoint (or overall when by is None).

    Linear interpolation between the closest ranks (pandas' default), the usual definition.
    """
    access = access_lines(frame).dropna(subset=[names.F_DURATION_MS])
    labels = [f"p{q * 100:g}" for q in quantiles]
    if by is None:
        values = access[names.F_DURATION_MS].quantile(list(quantiles)).to_numpy()
        row = {"requests": len(access), **dict(zip(labels, values, strict=True))}
        return pd.DataFrame([row])
    grouped = access.groupby(by, dropna=False)[names.F_DURATION_MS]
    table = grouped.quantile(list(quantiles)).unstack()
    table.columns = labels
    table.insert(0, "requests", grouped.size())
    return table.sort_values(labels[-1], ascending=False).reset_index()


def status_share(frame: pd.DataFrame, pattern: str = r"5\d\d") -> tuple[int, int]:
    """(matching, total) access lines whose status matches a regex such as 5\\d\\d."""
    access = access_lines(frame)
    status = access[names.F_STATUS].astype("string").fillna("")
    return int(status.str.fullmatch(pattern).sum()), len(access)


def quantile_ms(durations_ms: pd.Series, quantile: float) -> float:
    """One quantile (linear interpolation) of a duration column, NaN when it is empty."""
    values = durations_ms.dropna().to_numpy(dtype="float64")
    return float(np.quantile(values, quantile)) if len(values) else float("nan")
