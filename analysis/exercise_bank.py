"""The workshop's exercises: question, hint, why, options, tolerance and common mistakes.

Each exercise is data; analysis.exercises checks answers against it and the reference solution
in notebooks/solutions.py. Adding one means adding an `Exercise` to EXERCISES below, a solution
to SOLUTIONS and a case to tests/test_exercises.py (a right, an equivalent and a wrong answer).

Answer types:

| answer_type | ANSWER holds | checked against |
|---|---|---|
| promql | a PromQL string | the reference query, evaluated at the same moment (prometheus, at) |
| value | a computed pandas/Python value | the reference function applied to the same data |
| choice | an option key, e.g. "b" | the reference key (offline) |
| number | a number | the reference number, or a function of the context, within `tolerance` |
| jq | a jq filter (`-s ` first to slurp) | the reference's output on the same JSON-lines file (log) |
| alert | an alert's expr, or {"expr": ..., "for": "1m"} | `promtool test rules` with `rule_test` (offline) |

An alert exercise's `rule_test` is a promtool test file without `rule_files` (the engine adds
the learner's rule, named LabExercise, and the lab's own rules, so recording rules can be
used): `evaluation_interval` and `tests` with input series and the times LabExercise must and
must not fire. Any rule that fires exactly then is right; the reference must pass it too.

`mistakes` turn a wrong answer into advice on how to fix it: for a choice, the wrong key ->
why that option is tempting and wrong; otherwise a named `Mistake` recognised by a regular
expression on the answer's text (`pattern`) or by a test on (answer, expected) (`when`).
Engine-wide PromQL mistakes (sum before rate, `le` dropped, a window shorter than four
scrapes, a counter without rate) are in analysis.exercises.COMMON_PROMQL_MISTAKES and need not
be repeated here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["predict", "query", "interpret"]
AnswerType = Literal["promql", "value", "choice", "number", "jq", "alert"]
KINDS: tuple[str, ...] = ("predict", "query", "interpret")
ANSWER_TYPES: tuple[str, ...] = ("promql", "value", "choice", "number", "jq", "alert")


@dataclass(frozen=True)
class Tolerance:
    """How far a number may be from the reference and still be right, and why."""

    abs: float = 0.0
    rel: float = 0.0
    reason: str = ""

    def allows(self, got: float, want: float) -> bool:
        """True when got is within abs or rel (of want) of want."""
        return abs(got - want) <= max(self.abs, self.rel * abs(want)) + 1e-12

    def describe(self) -> str:
        """'± 0.05' or '± 10%' (with the reason), as a learner reads it."""
        parts = [f"± {self.abs:g}"] if self.abs else []
        parts += [f"± {self.rel:.0%}"] if self.rel else []
        text = " or ".join(parts) or "exact"
        return f"{text} ({self.reason})" if self.reason else text


# Two evaluations of the same PromQL at the same moment agree exactly; equivalent but
# differently written queries may sum in another order: float rounding only.
FLOAT_ROUNDING = Tolerance(rel=1e-9, abs=1e-12, reason="float rounding only")


@dataclass(frozen=True)
class Mistake:
    """A common wrong answer: how to recognise it and how to fix it."""

    advice: str
    pattern: str | None = None  # regex searched in a PromQL or text answer (whitespace collapsed)
    # when(answer, expected, **context) -> True when this mistake explains the answer; for
    # PromQL, answer and expected are the two evaluated results (DataFrames).
    when: Callable[..., bool] | None = None


@dataclass(frozen=True)
class Exercise:
    """One exercise of a notebook module."""

    id: str  # "M.N", M = module number
    module: str  # notebook stem, e.g. "01-metrics"
    kind: Kind
    answer_type: AnswerType
    question: str  # short markdown
    hint: str  # markdown, shown folded
    why: str  # markdown shown after a right answer
    options: Mapping[str, str] = field(default_factory=dict)  # choice: key -> text
    tolerance: Tolerance = FLOAT_ROUNDING
    mistakes: Mapping[str, Mistake] = field(default_factory=dict)
    rule_test: str = ""  # alert: the promtool test (YAML) the rule must pass

    def __post_init__(self) -> None:
        """Refuse an inconsistent definition at import, not in a learner's notebook."""
        module_number = self.module.split("-", 1)[0].lstrip("0") or "0"
        if self.id.split(".", 1)[0] != module_number:
            raise ValueError(f"exercise {self.id}: its number must start with module {self.module}'s")
        if self.kind not in KINDS or self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"exercise {self.id}: kind {self.kind!r} / answer_type {self.answer_type!r}")
        if (self.answer_type == "alert") != bool(self.rule_test):
            raise ValueError(f"exercise {self.id}: an alert exercise (and only one) has a rule_test")
        if self.answer_type == "choice":
            if len(self.options) < 2:
                raise ValueError(f"exercise {self.id}: a choice needs at least two options")
            unknown = set(self.mistakes) - set(self.options)
            if unknown:
                raise ValueError(f"exercise {self.id}: mistakes for unknown options {sorted(unknown)}")


EXERCISES: dict[str, Exercise] = {}


def add(exercise: Exercise) -> Exercise:
    """Register an exercise (each id once)."""
    if exercise.id in EXERCISES:
        raise ValueError(f"exercise {exercise.id} is defined twice")
    EXERCISES[exercise.id] = exercise
    return exercise


def _close(answer: Any, value: Any) -> bool:
    """True when answer is a number equal to value within float rounding (for `when` tests)."""
    try:
        return FLOAT_ROUNDING.allows(float(answer), float(value))
    except (TypeError, ValueError):
        return False


def _same_series(answer: Any, series: Any) -> bool:
    """True when answer is a Series with series's index and values (for `when` tests)."""
    try:
        return bool(answer.sort_index().astype("float64").equals(series.sort_index().astype("float64")))
    except (AttributeError, TypeError, ValueError):
        return False


# --- 01-metrics -----------------------------------------------------------------------------

add(Exercise(
    id="1.1", module="01-metrics", kind="query", answer_type="promql",
    question="Write the PromQL for the **request rate per endpoint** (requests per second, one "
             "series per `endpoint`) over the last minute.",
    hint="Requests are counted by the `_count` series of `http_request_duration_seconds`. "
         "Take `rate(...[1m])` of each series first, then `sum by (...)` the label you keep.",
    why="`rate` turns each process's counter into per-second increase (and survives a worker "
        "restart, a counter reset); only then may series be added. Summing first would add "
        "counters of different processes, and a reset of one would look like a drop of all.",
    mistakes={
        "by_method": Mistake("Group by the label the question names: `endpoint`, not `method` "
                             "or `status`.", pattern=r"by\s*\((?![^)]*endpoint)"),
        "no_grouping": Mistake("One series per endpoint: add `by (endpoint)` to the sum.",
                               pattern=r"^sum\s*\(rate\([^)]*\)\)\s*$"),
    },
))

add(Exercise(
    id="1.2", module="01-metrics", kind="query", answer_type="promql",
    question="The **p95 latency of the JSON list endpoint** (`endpoint=\"api.list_todos\"`) over "
             "the last minute.",
    hint="`histogram_quantile(0.95, ...)` over the `_bucket` series. Filter on the endpoint "
         "inside the selector, `rate` the buckets, and keep `le` in your `sum by (...)`.",
    why="`histogram_quantile` needs the bucket counters of all processes added per bucket "
        "boundary `le`; the filter on `endpoint` goes inside the selector so only that "
        "endpoint's observations are in the buckets. The result is interpolated inside one "
        "bucket, so it is only as precise as the bucket is narrow.",
    mistakes={
        "no_filter": Mistake("Only api.list_todos: put `{endpoint=\"api.list_todos\"}` in the "
                             "bucket selector; without it you get the p95 of every endpoint.",
                             pattern=r"^(?!.*api\.list_todos)"),
        "wrong_quantile": Mistake("p95 is the 0.95 quantile: `histogram_quantile(0.95, ...)`.",
                                  pattern=r"histogram_quantile\(\s*(?!0?\.95\b)[0-9.]+"),
    },
))

# --- 02-logs --------------------------------------------------------------------------------

add(Exercise(
    id="2.1", module="02-logs", kind="query", answer_type="value",
    question="Count the **5xx answers per endpoint** (a pandas Series indexed by `endpoint`, "
             "only endpoints that had any) from `access`.",
    hint="Filter the rows with `access[\"status_code\"] >= 500`, then `.groupby(\"endpoint\")` "
         "and count with `.size()`.",
    why="Each access line is one answered request, so counting lines counts requests. Only "
        "endpoints that failed appear: `groupby` has no group for an endpoint with no 5xx row.",
    mistakes={
        "all_status": Mistake("Keep only the failed requests: filter `status_code >= 500` "
                              "before grouping (4xx are the client's mistakes, not ours).",
                              when=lambda answer, expected, access: _same_series(
                                  answer, access.groupby("endpoint").size())),
        "count_columns": Mistake("`.count()` counts non-empty cells per column and gives a "
                                 "table; `.size()` counts rows and gives one Series.",
                                 when=lambda answer, expected, **_: hasattr(answer, "columns")),
    },
))

add(Exercise(
    id="2.2", module="02-logs", kind="query", answer_type="value",
    question="The **p95 of `duration_ms` for `api.list_todos`** from the logs (a float, pandas' "
             "default interpolation).",
    hint="Select the rows of the endpoint with `access.loc[access[\"endpoint\"] == ..., "
         "\"duration_ms\"]`, then `.quantile(0.95)`.",
    why="The logs hold every request's exact duration, so this p95 has no bucket error; "
        "Prometheus's p95 from the histogram is interpolated inside a bucket and can differ "
        "by up to that bucket's width.",
    tolerance=Tolerance(abs=0.001, reason="durations are logged to the microsecond; other "
                                          "interpolation code may round differently"),
    mistakes={
        "all_endpoints": Mistake("Filter on `endpoint == \"api.list_todos\"` first: this is "
                                 "the p95 of every endpoint.",
                                 when=lambda answer, expected, access: _close(
                                     answer, access["duration_ms"].quantile(0.95))),
        "mean": Mistake("That is the mean of the endpoint's durations; the p95 is "
                        "`.quantile(0.95)`, the duration 95% of requests stay under.",
                        when=lambda answer, expected, access: _close(answer, access.loc[
                            access["endpoint"] == "api.list_todos", "duration_ms"].mean())),
    },
))

# --- 03-traces ------------------------------------------------------------------------------

add(Exercise(
    id="3.1", module="03-traces", kind="query", answer_type="value",
    question="Find the **trace id of the slowest request** of the run in `access` (a string).",
    hint="`access.nlargest(1, \"duration_ms\")` gives the slowest row; its `trace_id` column "
         "leads to the trace.",
    why="The access line carries the trace id of its request, so the slowest request's log "
        "line leads straight to its trace: the metric shows *that* something is slow, the log "
        "line shows *which* request, the trace shows *where* the time went.",
    mistakes={
        "request_id": Mistake("The trace id is the 32-hex-digit `trace_id`, not the "
                              "`request_id` (our own id, in the X-Request-ID header).",
                              when=lambda answer, expected, access: answer in set(
                                  access["request_id"].astype(str))),
        "fastest": Mistake("The slowest request has the *largest* `duration_ms`: "
                           "`nlargest`, `idxmax` or sort descending.",
                           when=lambda answer, expected, access: answer == str(
                               access.nsmallest(1, "duration_ms")["trace_id"].iloc[0])),
    },
))

# --- 05 -------------------------------------------------------------------------------------

add(Exercise(
    id="5.1", module="05-incident", kind="query", answer_type="promql",
    question="Write the PromQL for the **share of `api.list_todos` requests answered 5xx** over "
             "the last minute.",
    hint="Divide the rate of the endpoint's 5xx `_count` (`status=~\"5..\"`) by the rate of all "
         "its `_count`; sum each side before dividing so the labels match.",
    why="A ratio of two rates over the same window: the share of requests that failed. "
        "Summing each side first makes the two sides' labels match (status differs between "
        "them), and the window decides how much pre-fault traffic dilutes the share.",
    mistakes={
        "ratio_of_counters": Mistake("Divide rates, not raw counters: raw counters hold every "
                                     "request since the process started, not the last minute.",
                                     pattern=r"^(?!.*(rate|increase)\().*$"),
        "unmatched_labels": Mistake("A division matches series label by label: unsummed, each "
                                    "5xx series finds itself on the other side (a share of 1) "
                                    "or no partner at all (an empty result). Sum (or "
                                    "`sum by (endpoint)`) both sides so the labels agree.",
                                    when=lambda got, expected, **_: got.empty or bool(
                                        (got["value"] == 1).all())),
    },
))
