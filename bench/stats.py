"""Medians with their spread, and the markdown tables the report is made of."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median (nan for no values)."""
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], digits: int = 1, unit: str = "") -> str:
    """'median (min..max)' of several runs, or just the value for one run."""
    if not values:
        return "n/a"
    fmt = f"{{:.{digits}f}}"
    mid = fmt.format(median(values)) + unit
    if len(values) == 1:
        return mid
    return f"{mid} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
