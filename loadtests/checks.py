"""What a synthetic user checks in an answer; pure functions, so tests can feed them bad input."""

from __future__ import annotations

import csv
import io
from typing import Final

EXPORT_CSV_HEADER: Final = ("id", "text", "done", "position", "created_at", "updated_at")


def export_csv_problem(text: str, expected_rows: int | None = None) -> str | None:
    """Why a downloaded export is wrong (header, shape, cell values, row count), or None."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        return f"CSV does not parse: {exc}"
    if not rows:
        return "CSV is empty (no header)"
    if tuple(rows[0]) != EXPORT_CSV_HEADER:
        return f"unexpected CSV header {rows[0][:8]!r}"
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(EXPORT_CSV_HEADER):
            return f"line {number}: {len(row)} cells, expected {len(EXPORT_CSV_HEADER)}"
        if not row[0].isdigit() or not row[3].lstrip("-").isdigit():
            return f"line {number}: id and position must be integers"
        if row[2] not in ("true", "false"):
            return f"line {number}: done must be true or false, got {row[2][:20]!r}"
    if expected_rows is not None and len(rows) - 1 != expected_rows:
        return f"CSV has {len(rows) - 1} rows, the task reported {expected_rows}"
    return None
