"""Exercise checks for the notebooks: is the learner's query right?

An answer is right when it produces the same result as the reference solution
(notebooks/solutions.py), not when it is spelled the same: `sum by (endpoint) (rate(x[1m]))`
and `sum(rate(x[1m])) by (endpoint)` are both right. PromQL answers are compared series by
series (same label sets, same values); pandas answers value by value.

A learner who has not answered yet (ANSWER is None) is told so, and nothing fails. When the
notebooks are executed headless (``LAB_FILL_SOLUTIONS=1``, as `lab demo` and the tests do),
an unanswered exercise takes the reference solution and a check that fails raises, so a
broken query or a broken solution fails the run.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from analysis import prom

SOLUTIONS_FILE = Path(__file__).resolve().parents[1] / "notebooks" / "solutions.py"
FILL_VARIABLE = "LAB_FILL_SOLUTIONS"
# Two evaluations of the same PromQL at the same moment agree exactly; equivalent but
# differently written queries may sum in another order: allow float rounding only.
REL_TOLERANCE = 1e-9


class ExerciseFailed(AssertionError):
    """A checked answer did not match the reference (raised in headless runs)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check, shown in the notebook."""

    exercise: str
    status: str  # "right", "wrong" or "unanswered"
    message: str
    answer: Any = None

    @property
    def right(self) -> bool:
        """True when the answer matched the reference."""
        return self.status == "right"

    def __str__(self) -> str:
        """One line a learner reads."""
        mark = {"right": "✔ right", "wrong": "✘ not yet right", "unanswered": "… not answered"}
        return f"Exercise {self.exercise}: {mark[self.status]}: {self.message}"

    def _repr_html_(self) -> str:
        colour = {"right": "#1a7f37", "wrong": "#cf222e", "unanswered": "#6e7781"}[self.status]
        return f'<p style="color:{colour}"><b>{self}</b></p>'


def filling() -> bool:
    """True in headless runs that answer the exercises from the solutions file."""
    return os.environ.get(FILL_VARIABLE, "").strip() in ("1", "true", "yes")


def solutions(path: Path = SOLUTIONS_FILE) -> ModuleType:
    """The solutions module (notebooks/solutions.py), loaded by path."""
    spec = importlib.util.spec_from_file_location("lab_notebook_solutions", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference(exercise: str) -> Any:
    """The reference solution of an exercise: a PromQL string or a function of the data."""
    table: dict[str, Any] = solutions().SOLUTIONS
    if exercise not in table:
        raise KeyError(f"no solution for exercise {exercise} in {SOLUTIONS_FILE}")
    return table[exercise]


def _finish(verdict: Verdict) -> Verdict:
    """Raise for a wrong answer in headless runs; otherwise hand the verdict to the notebook."""
    if filling() and verdict.status != "right":
        raise ExerciseFailed(str(verdict))
    return verdict


def _series_key(frame: pd.DataFrame) -> pd.Series:
    """Each row's label set as one sortable string."""
    labels = sorted(c for c in frame.columns if c not in ("timestamp", "value"))
    if not labels:
        return pd.Series([""] * len(frame), index=frame.index)
    return frame[labels].astype("string").fillna("").agg("|".join, axis=1)


def compare_vectors(answer: pd.DataFrame, expected: pd.DataFrame) -> str | None:
    """None when two instant-query results hold the same series and values; else why not."""
    if len(answer) != len(expected):
        return f"{len(answer)} series, the reference has {len(expected)}"
    got = dict(zip(_series_key(answer), answer["value"], strict=True))
    want = dict(zip(_series_key(expected), expected["value"], strict=True))
    if set(got) != set(want):
        extra = sorted(set(got) - set(want))[:3]
        return f"other label sets than the reference (e.g. {extra}); check your `by (...)`"
    for key, value in want.items():
        if not _same(got[key], value):
            return f"series {{{key}}} is {got[key]:.6g}, the reference says {value:.6g}"
    return None


def _same(a: float, b: float) -> bool:
    """Equal within float rounding; NaN equals NaN (both say 'no traffic')."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=1e-12)


def check_promql(prometheus: prom.Prometheus, answer: str | None, exercise: str,
                 at: datetime) -> Verdict:
    """Evaluate the answer and the reference at the same moment and compare the results."""
    expected_query = str(reference(exercise))
    if answer is None and filling():
        answer = expected_query
    if answer is None:
        return Verdict(exercise, "unanswered", "write your PromQL in ANSWER and run both cells")
    try:
        got = prometheus.instant(answer, at)
    except Exception as exc:  # Prometheus answers a syntax error with HTTP 400
        return _finish(Verdict(exercise, "wrong", f"Prometheus refused it: {exc}", answer))
    expected = prometheus.instant(expected_query, at)
    if expected.empty:
        return _finish(Verdict(exercise, "wrong", "the reference query returned nothing: "
                               "was there traffic before this moment?", answer))
    problem = compare_vectors(got, expected)
    if problem:
        return _finish(Verdict(exercise, "wrong", problem, answer))
    return _finish(Verdict(exercise, "right", f"{len(got)} series, same values as the reference",
                           answer))


def _as_comparable(value: Any) -> Any:
    """A Series/DataFrame sorted by index with plain float values, or the scalar itself."""
    if isinstance(value, pd.DataFrame | pd.Series):
        value = value.sort_index()
        return value.astype("float64") if not isinstance(value, pd.DataFrame) else value
    return value


def compare_values(answer: Any, expected: Any) -> str | None:
    """None when a pandas or scalar answer equals the reference value; else why not."""
    answer, expected = _as_comparable(answer), _as_comparable(expected)
    if isinstance(expected, pd.Series):
        if not isinstance(answer, pd.Series):
            return (f"expected a pandas Series (one value per {expected.index.name}), "
                    f"got {type(answer).__name__}")
        if list(map(str, answer.index)) != list(map(str, expected.index)):
            return f"index {list(answer.index)[:5]} differs from the reference {list(expected.index)[:5]}"
        if not np.allclose(answer.to_numpy(), expected.to_numpy(), equal_nan=True):
            return "same index as the reference, other values"
        return None
    if isinstance(expected, float | int | np.floating | np.integer):
        try:
            return None if _same(float(answer), float(expected)) else \
                f"{answer!r}, the reference says {expected!r}"
        except (TypeError, ValueError):
            return f"expected a number, got {answer!r}"
    return None if answer == expected else f"{answer!r}, the reference says {expected!r}"


def check_value(answer: Any, exercise: str, **data: Any) -> Verdict:
    """Compare a computed answer with the reference function applied to the same data."""
    solve: Callable[..., Any] = reference(exercise)
    expected = solve(**data)
    if answer is None and filling():
        answer = expected
    if answer is None:
        return Verdict(exercise, "unanswered", "compute your answer into ANSWER and run both cells")
    problem = compare_values(answer, expected)
    if problem:
        return _finish(Verdict(exercise, "wrong", problem, answer))
    return _finish(Verdict(exercise, "right", "same as the reference", answer))
