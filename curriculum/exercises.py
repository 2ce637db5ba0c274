"""Exercise checks for the notebooks: is the learner's answer right, and if not, how to fix it?

One entry point, ``check(exercise_id, answer, **context)``, for every exercise of the bank
(curriculum.exercise_bank): PromQL (context: ``prometheus``, ``at``), computed values (context:
the notebook's data, passed to the reference function), choices and numbers. An answer is
right when it gives the same *result* as the reference solution (its `solution`), not
when it is spelled the same:

- PromQL results are compared series by series. A label the answer has and the reference has
  not is ignored when the answer's series stay distinct without it (an extra label constant
  across the answer, or one that only repeats what another label says: `sum by (le, endpoint)`
  of one endpoint is `sum by (le)`); the same the other way round. Values must agree within
  the exercise's tolerance (float rounding by default).
- Numbers and values agree within the exercise's stated tolerance; choices ignore case.

A wrong answer is explained: the exercise's own mistakes and the common PromQL mistakes below
are recognised and their advice shown (how to fix it), besides what differs. A right answer
shows the exercise's "why".

A learner who has not answered yet (ANSWER is None) is told so, and nothing fails. When the
notebooks are executed headless (``LAB_FILL_SOLUTIONS=1``, as `lab demo` and the tests do),
an unanswered exercise takes the reference solution and a check that fails raises, so a
broken query or a broken solution fails the run.

Each verdict also carries a small JSON record (mimetype VERDICT_MIME) saved with the notebook's
output, from which `lab progress` grades a saved notebook without running it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from analysis import prom
from curriculum.exercise_bank import EXERCISES, FLOAT_ROUNDING, REFERENCES, Exercise, Mistake, Tolerance
from curriculum.exercise_model import OPEN_HINT

FILL_VARIABLE = "LAB_FILL_SOLUTIONS"
VERDICT_MIME = "application/vnd.todolab.verdict+json"
STATUSES = ("right", "wrong", "unanswered")
# Answers checked per exercise in this kernel (see check()).
_ATTEMPTS: Counter[str] = Counter()
REL_TOLERANCE = FLOAT_ROUNDING.rel  # kept for callers of the first version


class ExerciseFailed(AssertionError):
    """A checked answer did not match the reference (raised in headless runs)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check, shown in the notebook."""

    exercise: str
    status: str  # "right", "wrong" or "unanswered"
    message: str
    answer: Any = None
    advice: tuple[str, ...] = ()  # how to fix a wrong answer
    why: str = ""  # shown after a right answer
    record: Mapping[str, Any] = field(default_factory=dict)  # saved for `lab progress`

    @property
    def right(self) -> bool:
        """True when the answer matched the reference."""
        return self.status == "right"

    def __str__(self) -> str:
        """What a learner reads, as plain text."""
        mark = {"right": "✔ right", "wrong": "✘ not yet right", "unanswered": "… not answered"}
        lines = [f"Exercise {self.exercise}: {mark[self.status]}: {self.message}"]
        lines += [f"  how to fix: {text}" for text in self.advice]
        if self.right and self.why:
            lines.append(f"  why: {self.why}")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The verdict as markdown (rendered by JupyterLab and in the HTML report)."""
        mark = {"right": "✔ **right**", "wrong": "✘ **not yet right**",
                "unanswered": "… *not answered*"}
        text = f"**Exercise {self.exercise}**: {mark[self.status]}: {self.message}"
        if self.advice:
            text += "\n\n**How to fix it:**\n\n" + "\n".join(f"- {a}" for a in self.advice)
        if self.right and self.why:
            text += f"\n\n**Why:** {self.why}"
        return text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": str(self), "text/markdown": self.markdown(),
                VERDICT_MIME: dict(self.record)}


def filling() -> bool:
    """True in headless runs that answer the exercises with their reference solutions."""
    return os.environ.get(FILL_VARIABLE, "").strip() in ("1", "true", "yes")


def reference(exercise: str) -> Any:
    """The reference solution of an exercise (PromQL, a function of the data, a key or a
    number), written beside it in its module's file; or another reference a notebook fills in."""
    if exercise in EXERCISES and EXERCISES[exercise].solution is not None:
        return EXERCISES[exercise].solution
    if exercise in REFERENCES:
        return REFERENCES[exercise]
    raise KeyError(f"no solution for exercise {exercise} (curriculum/modules/)")


def exercise(exercise_id: str) -> Exercise:
    """The bank's exercise; a clear message for an unknown id."""
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise KeyError(f"no exercise {exercise_id!r} in curriculum/exercise_bank.py "
                       f"(known: {', '.join(sorted(EXERCISES))})") from None


@dataclass(frozen=True)
class Question:
    """An exercise's question with its hint folded, for a notebook cell."""

    item: Exercise

    def markdown(self) -> str:
        """Question, the options of a choice, the tolerance of a number, the folded hint."""
        parts = [f"**Exercise {self.item.id}** ({self.item.kind}): {self.item.question}"]
        if self.item.options:
            parts.append("\n".join(f"- **{k}**: {v}" for k, v in self.item.options.items()))
        if self.item.answer_type == "number" and self.item.tolerance is not FLOAT_ROUNDING:
            parts.append(f"Accepted within {self.item.tolerance.describe()}.")
        parts.append(f"<details><summary>Hint</summary>\n\n{self.item.hint}\n\n</details>")
        return "\n\n".join(parts)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __str__(self) -> str:
        return self.markdown()


def ask(exercise_id: str) -> Question:
    """Show an exercise's question and folded hint in a notebook (`exercises.ask("1.1")`)."""
    return Question(exercise(exercise_id))


# --- common mistakes ------------------------------------------------------------------------

def _short_window(got: Any, expected: Any, query: str = "", prometheus: Any = None,
                  **_: Any) -> bool:
    """A range window shorter than MIN_SCRAPES_PER_WINDOW scrape intervals."""
    scrape = getattr(prometheus, "scrape_interval_s", prom.DEFAULT_SCRAPE_INTERVAL_S)
    for window in re.findall(r"\[(\d+[smh])\]", query):
        if prom.duration_seconds(window) < prom.MIN_SCRAPES_PER_WINDOW * scrape:
            return True
    return False


COMMON_PROMQL_MISTAKES: dict[str, Mistake] = {
    "sum_before_rate": Mistake(
        "Rate first, then sum: `sum(rate(x[1m]))`, never `rate(sum(x)...)`. Summing counters "
        "of several processes first hides each one's restarts (resets) and makes a drop of one "
        "look like a drop of all.",
        pattern=r"\b(rate|irate|increase)\(\s*(sum|avg|max|min|count)\b"),
    "le_dropped": Mistake(
        "Keep `le` in the sum: `histogram_quantile(q, sum by (le) (rate(x_bucket[1m])))`. "
        "Without `le` the buckets are added together and no quantile can be computed.",
        pattern=r"histogram_quantile\(.*\b(sum|avg)\b(?!.*\ble\b)"),
    "short_window": Mistake(
        f"Make the range window at least {prom.MIN_SCRAPES_PER_WINDOW} scrape intervals long "
        "(`[1m]` at a 5 s scrape): with fewer samples `rate` jumps, or is empty when fewer than "
        "two samples fall in the window.",
        when=_short_window),
    "counter_without_rate": Mistake(
        "A counter only grows since the process started: take `rate(x[1m])` (per second) or "
        "`increase(x[1m])` before using it.",
        pattern=r"^(?!.*\b(rate|irate|increase|delta|deriv)\().*_(count|total|bucket|sum)\b"),
    "irate": Mistake(
        "`irate` uses only the last two samples of the window and jumps with every scrape; "
        "`rate` averages the whole window, which is what 'over the last minute' means.",
        pattern=r"\birate\("),
}


def _collapse(text: str) -> str:
    """One line, single spaces: patterns need not care how the learner wrapped the query."""
    return " ".join(str(text).split())


def _mistake_matches(mistake: Mistake, text: str | None, answer: Any, expected: Any,
                     context: Mapping[str, Any]) -> bool:
    """True when the mistake's pattern (on text) or test (on the values) recognises the answer."""
    if mistake.pattern is not None and text is not None and re.search(mistake.pattern, text):
        return True
    if mistake.when is not None:
        try:
            return bool(mistake.when(answer, expected, **context))
        except Exception:  # a test that cannot judge this answer (another type, data) says no
            return False
    return False


def diagnose(item: Exercise, text: str | None, answer: Any, expected: Any,
             context: Mapping[str, Any]) -> tuple[str, ...]:
    """The advice of every mistake (the exercise's first, then common PromQL ones) the answer shows."""
    table: dict[str, Mistake] = dict(item.mistakes)
    if item.answer_type in ("promql", "alert"):
        table = {**table, **{k: v for k, v in COMMON_PROMQL_MISTAKES.items() if k not in table}}
    found = [m.advice for m in table.values() if _mistake_matches(m, text, answer, expected, context)]
    return tuple(dict.fromkeys(found))


# --- comparing results ----------------------------------------------------------------------

def _labels(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if c not in ("timestamp", "value"))


def _keys(frame: pd.DataFrame, labels: list[str]) -> list[str]:
    """Each row's values of labels as one string."""
    if not labels:
        return [""] * len(frame)
    return list(frame[labels].astype("string").fillna("").agg("|".join, axis=1))


def _describe(labels: list[str]) -> str:
    return f"by ({', '.join(labels)})" if labels else "without labels (one series)"


def compare_vectors(answer: pd.DataFrame, expected: pd.DataFrame,
                    tolerance: Tolerance = FLOAT_ROUNDING) -> str | None:
    """None when two instant-query results are equivalent; else what differs and how to fix it.

    A label only one side has is dropped when that side's series stay distinct without it
    (it was constant, or repeated what the other labels say).
    """
    got_labels, want_labels = _labels(answer), _labels(expected)
    common = [label for label in got_labels if label in want_labels]
    got_keys, want_keys = _keys(answer, common), _keys(expected, common)
    if len(set(got_keys)) != len(got_keys) or len(set(want_keys)) != len(want_keys):
        return (f"your result has {len(answer)} series {_describe(got_labels)}, the question "
                f"wants {len(expected)} {_describe(want_labels)}: change your `by (...)`")
    if len(answer) != len(expected):
        return (f"{len(answer)} series, the question wants {len(expected)}: check your "
                "selector's filters and your `by (...)`")
    got = dict(zip(got_keys, answer["value"], strict=True))
    want = dict(zip(want_keys, expected["value"], strict=True))
    if set(got) != set(want):
        extra = sorted(set(got) - set(want))[:3]
        return (f"other series than the question wants (e.g. {{{', '.join(extra)}}} "
                f"{_describe(common)}): check your filters and your `by (...)`")
    for key, value in want.items():
        if not _same(got[key], value, tolerance):
            # Say which series and which way, never the reference's value: the learner has
            # something left to find.
            where = f"series {{{key}}}" if key else "the value"
            way = "high" if got[key] > value or math.isnan(value) else "low"
            return (f"{where} is {got[key]:.6g}, too {way}: the series are the right ones, their "
                    "values are not; check the function, its range window and what you divide by")
    return None


def _same(a: float, b: float, tolerance: Tolerance = FLOAT_ROUNDING) -> bool:
    """Equal within tolerance; NaN equals NaN (both say 'no traffic')."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return tolerance.allows(a, b)


def _as_comparable(value: Any) -> Any:
    """A Series/DataFrame sorted by index with plain float values, or the scalar itself."""
    if isinstance(value, pd.DataFrame | pd.Series):
        value = value.sort_index()
        return value.astype("float64") if not isinstance(value, pd.DataFrame) else value
    return value


def compare_values(answer: Any, expected: Any, tolerance: Tolerance = FLOAT_ROUNDING) -> str | None:
    """None when a pandas or scalar answer equals the reference value; else why not."""
    answer, expected = _as_comparable(answer), _as_comparable(expected)
    if isinstance(expected, pd.Series):
        if isinstance(answer, pd.DataFrame) and answer.shape[1] == 1:
            answer = answer.iloc[:, 0].astype("float64")  # a one-column table says the same
        if not isinstance(answer, pd.Series):
            return (f"expected a pandas Series (one value per {expected.index.name}), "
                    f"got {type(answer).__name__}")
        if list(map(str, answer.index)) != list(map(str, expected.index)):
            return (f"your index has {len(answer)} entries (first: {list(answer.index)[:3]}), the "
                    f"question wants {len(expected)}: check your filter and what you group by")
        same = [_same(float(a), float(b), tolerance)
                for a, b in zip(answer.to_numpy(), expected.to_numpy(), strict=True)]
        return None if all(same) else "the right index, other values: check what you count or compute"
    if isinstance(expected, pd.DataFrame):
        if not isinstance(answer, pd.DataFrame):
            return f"expected a pandas DataFrame (a table), got {type(answer).__name__}"
        try:
            # Same rows and columns in any order; numbers within the tolerance.
            pd.testing.assert_frame_equal(answer.sort_index(axis=1), expected.sort_index(axis=1),
                                          check_dtype=False, check_names=False,
                                          check_index_type=False, check_column_type=False,
                                          rtol=max(tolerance.rel, 1e-9), atol=max(tolerance.abs, 1e-12))
        except AssertionError as exc:
            first = str(exc).strip().splitlines()[0]
            return f"the table is not the one the question asks for: {first}"
        return None
    if isinstance(expected, float | int | np.floating | np.integer) and not isinstance(expected, bool):
        try:
            got = float(answer)
        except (TypeError, ValueError):
            return f"expected a number, got {answer!r}"
        if _same(got, float(expected), tolerance):
            return None
        direction = "high" if got > float(expected) else "low"
        return f"{answer!r} is too {direction}" + (
            f" (accepted: {tolerance.describe()})" if tolerance is not FLOAT_ROUNDING else "")
    if isinstance(expected, str) and isinstance(answer, str):
        # Ids and names: surrounding blanks and case (hex ids in capitals) do not matter.
        alike = answer.strip().casefold() == expected.strip().casefold()
        return None if alike else f"{answer!r} is not the value the question asks for"
    return None if answer == expected else f"{answer!r} is not the value the question asks for"


# --- the checks -----------------------------------------------------------------------------

def _literal(answer: Any) -> Any:
    """The answer as saved in the verdict record when it is a plain literal, else None."""
    if isinstance(answer, bool | int | float | str) and not (
            isinstance(answer, float) and math.isnan(answer)):
        return answer
    if isinstance(answer, np.integer | np.floating):
        return answer.item()
    return None


def _verdict(item: Exercise, status: str, message: str, answer: Any,
             advice: tuple[str, ...] = (), **record: Any) -> Verdict:
    """A verdict with its progress record; raises for a wrong answer in headless runs."""
    saved = {"id": item.id, "module": item.module, "status": status,
             "answer": _literal(answer), **record}
    verdict = Verdict(item.id, status, message, answer, advice, item.why, saved)
    if filling() and status == "wrong":
        raise ExerciseFailed(str(verdict))
    return verdict


def _not_text(item: Exercise, answer: Any, what: str, example: str) -> Verdict:
    """A query or filter answered with something else than a string."""
    return _verdict(item, "wrong", f"ANSWER must be {what}, got {type(answer).__name__}", answer,
                    (f"Put it in quotes: {example}",))


def _unanswered(item: Exercise) -> Verdict:
    what = {"promql": "write your PromQL in ANSWER", "value": "compute your answer into ANSWER",
            "choice": f"put the key of your choice ({', '.join(item.options)}) in ANSWER",
            "number": "put your number in ANSWER", "jq": "write your jq filter in ANSWER",
            "alert": "write your alert's expression in ANSWER"}[item.answer_type]
    return Verdict(item.id, "unanswered", f"{what} and run both cells", None, (), item.why,
                   {"id": item.id, "module": item.module, "status": "unanswered", "answer": None})


def _wrong_advice(item: Exercise, found: tuple[str, ...]) -> tuple[str, ...]:
    """The recognised mistakes' advice, or a pointer to the hint when none was recognised."""
    return found or (f"{OPEN_HINT}, change ANSWER and run both cells again.",)


def check(exercise_id: str, answer: Any, **context: Any) -> Verdict:
    """Check an answer to any exercise of the bank; context is what the exercise needs.

    promql: ``prometheus`` (analysis.prom.Prometheus), ``at`` (the moment both queries are
    evaluated; now when omitted) and ``start``: when given, both are compared at moments spread
    over [start, at] too (the notebooks pass their run's window, fault included). value: the
    data the reference function takes (e.g. ``access=access``). choice: nothing. number: what
    the reference function takes, if any. jq: ``log``, the JSON-lines file both filters run on.
    alert: nothing (promtool runs offline).
    """
    item = exercise(exercise_id)
    if answer is None and not filling():
        return _unanswered(item)
    checker: Callable[..., Verdict] = {"promql": _check_promql, "value": _check_value,
                                       "choice": _check_choice, "number": _check_number,
                                       "jq": _check_jq, "alert": _check_alert}[item.answer_type]
    verdict = checker(item, answer, context)
    # The attempt's number (in this kernel) goes into the saved record: `lab progress` and a
    # facilitator see how many tries an exercise took.
    _ATTEMPTS[item.id] += 1
    mistake = _mistake_name(item, verdict)
    verdict = replace(verdict, record={**verdict.record, "attempt": _ATTEMPTS[item.id],
                                       **({"mistake": mistake} if mistake else {})})
    _to_room(verdict)
    return verdict


def _mistake_name(item: Exercise, verdict: Verdict) -> str:
    """The name of the known mistake a wrong answer matched ("" when none): what the room
    counts to tell a facilitator what to explain to everyone."""
    if verdict.status != "wrong":
        return ""
    if item.answer_type == "choice":
        return f"chose {verdict.answer}"
    table = {**COMMON_PROMQL_MISTAKES, **dict(item.mistakes)}
    for name, mistake in table.items():
        if mistake.advice in verdict.advice:
            return name
    return ""


def _to_room(verdict: Verdict) -> None:
    """Queue the verdict for the room the learner joined (room/client.py); never raises, never
    waits for the network, and headless runs that fill in the solutions send nothing."""
    if filling():
        return
    try:
        from room import client

        mistake = str(verdict.record.get("mistake", ""))
        client.push(verdict.exercise, verdict.status, module=str(verdict.record.get("module", "")),
                    mistake=mistake, advice=verdict.advice[0] if mistake and verdict.advice else "",
                    attempt=int(verdict.record.get("attempt", 0)))
    except Exception:  # a full disk or a broken room file must not break the check cell
        return


# How many moments of a range a PromQL answer is compared at (besides its end).
RANGE_MOMENTS = 12


def _moments(start: datetime | None, at: datetime) -> list[datetime]:
    """The moments a PromQL answer is compared at: `at` alone, or RANGE_MOMENTS spread evenly
    over [start, at] and `at` itself (an answer right at one instant only, a constant such as
    `vector(1)` on a run whose share is 1 at the end, is wrong somewhere in the range)."""
    if start is None or start >= at:
        return [at]
    span = at - start
    return [start + span * (i / RANGE_MOMENTS) for i in range(1, RANGE_MOMENTS)] + [at]


def _check_promql(item: Exercise, answer: Any, context: dict[str, Any]) -> Verdict:
    prometheus: prom.Prometheus = context.pop("prometheus")
    at: datetime = context.pop("at", None) or datetime.now(UTC)
    start: datetime | None = context.pop("start", None)
    expected_query = str(reference(item.id))
    if answer is None:  # filling: the reference answers
        answer = expected_query
    if not isinstance(answer, str):
        return _not_text(item, answer, "a PromQL string", 'ANSWER = "sum by (...) (...)"')
    text, moment = _collapse(answer), prom.require_aware(at, "at").isoformat()
    mistakes = {**context, "query": text, "prometheus": prometheus}
    compared = 0
    for when in _moments(start and prom.require_aware(start, "start"), at):
        try:
            got = prometheus.instant(answer, when)
        except Exception as exc:  # Prometheus answers a syntax error with HTTP 400
            found = diagnose(item, text, pd.DataFrame(), None, mistakes)
            return _verdict(item, "wrong", f"Prometheus refused it: {exc}", answer,
                            _wrong_advice(item, found), at=moment)
        expected = prometheus.instant(expected_query, when)
        if expected.empty and got.empty:
            continue  # nothing to compare yet (before the traffic, or a window still empty)
        compared += 1
        problem = (compare_vectors(got, expected, item.tolerance) if not expected.empty else
                   f"{len(got)} series where the question wants none (no traffic of that kind then)")
        if problem:
            found = diagnose(item, text, got, expected, mistakes)
            where = "" if when == at else f"at {when:%H:%M:%S} UTC (during the range checked): "
            return _verdict(item, "wrong", where + problem, answer, _wrong_advice(item, found),
                            at=moment)
    if compared == 0:
        # Nothing to grade on: the data has none of what the question is about (no traffic
        # yet, no 5xx in a run without faults). Not the learner's error: not "wrong", and a
        # headless run goes on (the banks, on data that has it, test the reference).
        return _verdict(item, "unanswered", "nothing to compare: the reference query returns "
                        "nothing in the range checked (no traffic yet, or none of the kind the "
                        "question is about)", answer,
                        ("Send some traffic (`lab load`; for errors and alerts a run with the "
                         "workshop's faults, `lab load --faults workshop`), wait a scrape "
                         "interval, and run the check again.",), at=moment)
    span = "" if start is None else f", at {compared} moments from {start:%H:%M:%S} to {at:%H:%M:%S} UTC"
    return _verdict(item, "right", f"same series and values as the reference{span}", answer, at=moment)


def _expected_value(item: Exercise, context: Mapping[str, Any]) -> Any:
    """The reference: a constant, or a function of the notebook's data."""
    solution = reference(item.id)
    return solution(**context) if callable(solution) else solution


def _check_value(item: Exercise, answer: Any, context: dict[str, Any]) -> Verdict:
    expected = _expected_value(item, context)
    if answer is None:  # filling: the reference answers
        answer = expected
    problem = compare_values(answer, expected, item.tolerance)
    if problem:
        found = diagnose(item, None, answer, expected, context)
        return _verdict(item, "wrong", problem, answer, _wrong_advice(item, found))
    return _verdict(item, "right", "same as the reference", answer)


def _check_choice(item: Exercise, answer: Any, context: dict[str, Any]) -> Verdict:
    expected = str(_expected_value(item, context)).strip().lower()
    if answer is None:  # filling: the reference answers
        answer = expected
    keys = {str(k).lower(): str(k) for k in item.options}
    given = str(answer).strip().strip("()").lower()
    if given not in keys:
        return _verdict(item, "wrong", f"{answer!r} is not one of the options "
                        f"{', '.join(item.options)}", answer,
                        ("Answer with the option's key, e.g. ANSWER = \"a\".",))
    if given == expected:
        return _verdict(item, "right", f"({keys[given]}) is right", keys[given])
    mistake = item.mistakes.get(keys[given])
    advice = (mistake.advice,) if mistake else ()
    return _verdict(item, "wrong", f"({keys[given]}) is not right", keys[given],
                    _wrong_advice(item, advice))


def _check_number(item: Exercise, answer: Any, context: dict[str, Any]) -> Verdict:
    expected = float(_expected_value(item, context))
    if answer is None:  # filling: the reference answers
        answer = expected
    try:
        got = float(answer)
    except (TypeError, ValueError):
        return _verdict(item, "wrong", f"expected a number, got {answer!r}", answer,
                        ("Put a number in ANSWER, e.g. ANSWER = 0.25 (no quotes, no unit).",))
    record: dict[str, Any] = {"expected": expected,
                              "tolerance": [item.tolerance.abs, item.tolerance.rel]}
    if _same(got, expected, item.tolerance):
        return _verdict(item, "right", f"{got:g} is within {item.tolerance.describe()}",
                        answer, **record)
    found = diagnose(item, None, got, expected, context)
    problem = compare_values(got, expected, item.tolerance) or "not within the tolerance"
    return _verdict(item, "wrong", problem, answer, _wrong_advice(item, found), **record)


class JqError(ValueError):
    """jq refused a filter (its own message)."""


def run_jq(program: str, path: Path) -> list[Any]:
    """The JSON values `jq -c program path` prints; a leading `-s ` slurps the file first."""
    binary = shutil.which("jq")
    if binary is None:
        raise FileNotFoundError("jq is not installed (stack/install-system-deps.sh installs it)")
    flags = ["-c"]
    text = program.strip()
    for slurp in ("-s ", "--slurp "):
        if text.startswith(slurp):
            flags.append("-s")
            text = text[len(slurp):].strip()
    done = subprocess.run([binary, *flags, text, str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise JqError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "jq failed")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _canonical(values: list[Any]) -> list[str]:
    """The values as sorted canonical JSON: the order jq prints them in does not matter."""
    return sorted(json.dumps(v, sort_keys=True) for v in values)


def _check_jq(item: Exercise, answer: Any, context: dict[str, Any]) -> Verdict:
    log = Path(context["log"])
    expected_program = str(reference(item.id))
    if answer is None:  # filling: the reference answers
        answer = expected_program
    if not isinstance(answer, str):
        return _not_text(item, answer, "a jq filter string", "ANSWER = 'select(.level == \"ERROR\")'")
    expected = run_jq(expected_program, log)
    try:
        got = run_jq(answer, log)
    except JqError as exc:
        found = diagnose(item, _collapse(answer), None, expected, context)
        return _verdict(item, "wrong", f"jq refused it: {exc}", answer, _wrong_advice(item, found),
                        log=str(log))
    if _canonical(got) == _canonical(expected):
        return _verdict(item, "right", f"{len(got)} value(s), the same as the reference's", answer,
                        log=str(log))
    found = diagnose(item, _collapse(answer), got, expected, context)
    shown = json.dumps(got[:2])[:200]
    count = ("more than the question wants" if len(got) > len(expected) else
             "fewer than the question wants" if len(got) < len(expected) else
             "as many as the question wants, but other ones")
    return _verdict(item, "wrong", f"{len(got)} value(s) (first: {shown}): {count}", answer,
                    _wrong_advice(item, found), log=str(log))


def rule_of(answer: Any) -> tuple[str, str]:
    """An alert answer as (expr, for): a bare expr, or a mapping with expr and optionally for."""
    if isinstance(answer, str):
        return answer, ""
    if isinstance(answer, Mapping) and isinstance(answer.get("expr"), str):
        return answer["expr"], str(answer.get("for") or "")
    raise TypeError("an alert answer is a PromQL expression string, or {'expr': ..., 'for': '1m'}")


def run_rule_test(item: Exercise, answer: Any) -> str | None:
    """None when the rule fires in exactly the exercise's scenarios that call for it; else which not."""
    from curriculum.rule_grader import RuleError, RuleRun

    expr, for_ = rule_of(answer)
    with tempfile.TemporaryDirectory(prefix="lab-exercise-") as tmp:
        run = RuleRun(Path(tmp), expr, for_, alert="LabExercise")
        problem = run.problem()
        if problem:
            return f"promtool refused the rule: {' '.join(problem.split())[:400]}"
        missed = []
        try:
            for scenario in yaml.safe_load(item.rule_test):
                fired = run.fires(dict(scenario["series"]), str(scenario["eval_time"]))
                if fired != bool(scenario["fires"]):
                    missed.append(f"{'fired' if fired else 'did not fire'} on: {scenario['name']}")
        except RuleError as exc:
            return f"promtool: {' '.join(str(exc).split())[:400]}"
    return "; ".join(missed) or None


def _check_alert(item: Exercise, answer: Any, context: dict[str, Any]) -> Verdict:
    expected = reference(item.id)
    if answer is None:  # filling: the reference answers
        answer = expected
    try:
        rule_of(answer)
    except TypeError as exc:
        return _verdict(item, "wrong", str(exc), answer,
                        ("ANSWER = 'your_expr > 0.05' or ANSWER = {'expr': '...', 'for': '1m'}",))
    broken = run_rule_test(item, expected)
    if broken:
        raise ExerciseFailed(f"exercise {item.id}: the reference rule fails its own test: {broken}")
    problem = run_rule_test(item, answer)
    text = _collapse(rule_of(answer)[0])
    if problem:
        found = diagnose(item, text, None, None, context)
        return _verdict(item, "wrong", problem, answer, _wrong_advice(item, found))
    return _verdict(item, "right", "your rule fires in exactly the scenarios that call for it",
                    answer)


# --- the first version's entry points (the notebooks call them) ------------------------------

def check_promql(prometheus: prom.Prometheus, answer: str | None, exercise: str,
                 at: datetime) -> Verdict:
    """Evaluate the answer and the reference at the same moment and compare the results."""
    return check(exercise, answer, prometheus=prometheus, at=at)


def check_value(answer: Any, exercise: str, **data: Any) -> Verdict:
    """Compare a computed answer with the reference function applied to the same data."""
    return check(exercise, answer, **data)


def grade_offline(item: Exercise, answer: Any, expected: Any = None) -> str | None:
    """'right'/'wrong' for an answer checked without the notebook's data; None if unknown.

    `lab progress` uses it on a saved ANSWER literal: a choice is graded against the reference
    key; a number against the reference constant, or `expected` saved by the last check; an
    alert rule by promtool.
    """
    if answer is None:
        return "unanswered"
    if item.answer_type == "alert":
        try:
            rule_of(answer)
        except TypeError:
            return "wrong"
        return "right" if run_rule_test(item, answer) is None else "wrong"
    if item.answer_type == "choice":
        solution = reference(item.id)
        if callable(solution):
            return None
        return "right" if str(answer).strip().strip("()").lower() == str(solution).lower() else "wrong"
    if item.answer_type == "number":
        solution = reference(item.id)
        want = expected if callable(solution) else solution
        if want is None:
            return None
        try:
            return "right" if _same(float(answer), float(want), item.tolerance) else "wrong"
        except (TypeError, ValueError):
            return "wrong"
    return None
