"""The model of the workshop's exercises: what an exercise is, the registry, and the helpers
the modules' definitions share. The exercises themselves live one module of the workshop a
file, in curriculum/modules/ (m01_metrics.py for notebooks/01-metrics.ipynb, ...), each with
its question, hint, mistakes, reference solution and banks of answers together;
curriculum.exercise_bank registers them all.

Adding an exercise means adding one `add(Exercise(...))` to its module's file, with its
`solution` and its `answers` (the banks tests/test_exercises.py grades: every right answer must
be right, every wrong one must be refused with the advice it names).

Answer types:

| answer_type | ANSWER holds | checked against |
|---|---|---|
| promql | a PromQL string | the reference query, evaluated at the same moments (prometheus, start, at) |
| value | a computed pandas/Python value | the reference function applied to the same data |
| choice | an option key, e.g. "b" | the reference key (offline) |
| number | a number | the reference number, or a function of the context, within `tolerance` |
| jq | a jq filter (`-s ` first to slurp) | the reference's output on the same JSON-lines file (log) |
| alert | an alert's expr, or {"expr": ..., "for": "1m"} | promtool, on the `rule_test` scenarios (offline) |

An alert exercise's `rule_test` is YAML: a list of scenarios, each `name`, `series` (selector ->
values in promtool's notation, 5 s apart), `eval_time` and `fires` (true/false). The learner's
rule is right when it fires in exactly the scenarios that say so, whatever labels it gives
the alert (curriculum.rule_grader.RuleRun asks promtool); the reference must pass them too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

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


# PromQL banks are compared at moments over the last 5 minutes of the synthetic traffic, which
# holds faults (tests/support/promdata.py): an answer right at one instant only is refused.
OVER_RANGE = ("prometheus", "start", "at")


def pinned(query: str) -> Callable[[Mapping[str, Any]], str]:
    """A bank's answer: query with every range selector pinned (`@`) to the end of the checked
    range, what a query copied with the moment it was run is: right at that instant only."""
    return lambda d: re.sub(r"(\[\w+\])", rf"\1 @ {int(d['at'].timestamp())}", query)


def more_right(bank: Answers, *right: Any) -> Answers:
    """The bank with more right answers written differently."""
    return dataclasses.replace(bank, right=(*bank.right, *right))


# The advice a wrong answer gets when none of its exercise's mistakes recognises it (the start
# of curriculum.exercises' generic advice): the phrase a bank's Wrong names for such answers.
OPEN_HINT = "Open the hint above the answer cell"


@dataclass(frozen=True)
class Wrong:
    """A wrong answer of a bank, and a phrase the advice it gets must contain."""

    answer: Any
    advice: str


@dataclass(frozen=True)
class Answers:
    """An exercise's banks of test answers, graded by tests/test_exercises.py.

    An answer is a literal (PromQL, an option key, a number) or a function of the test's data
    `d`, which holds: access (the access lines of the recorded run, tests/data/analysis),
    log_frame (all its log lines), web_log (the web log's path), spans (its span file),
    export_request and export_trace (an export's request id and trace id in it), and, from a
    real Prometheus serving known synthetic traffic (tests/support/promdata.py): prometheus,
    start, at, end, targets (how many targets it scrapes) and busiest (the option key of 6.5's
    busiest process). `context` names what the check is given (PromQL: prometheus, start, at);
    `given` adds data: a value, or a function of d.
    """

    right: tuple[Any, ...]
    wrong: tuple[Wrong, ...]
    context: tuple[str, ...] = ()
    given: Mapping[str, Any] = field(default_factory=dict)


def answers(right: Any, equivalent: Any, wrong: Any, advice: str, context: tuple[str, ...] = (),
            given: Mapping[str, Any] | None = None, more_wrong: tuple[Wrong, ...] = ()) -> Answers:
    """The usual banks: the reference's answer, a right one written differently, and a wrong one
    (with the phrase its advice must hold), plus any more wrong ones."""
    return Answers((right, equivalent), (Wrong(wrong, advice), *more_wrong), tuple(context),
                   dict(given or {}))


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
    solution: Any = None  # the reference: PromQL, a function of the data, a key or a number
    answers: Answers | None = None  # the banks of right and wrong answers the tests grade

    def __post_init__(self) -> None:
        """Refuse an inconsistent definition at import, not in a learner's notebook."""
        module_number = self.module.split("-", 1)[0].lstrip("0") or "0"
        if self.id.split(".", 1)[0] != module_number:
            raise ValueError(f"exercise {self.id}: its number must start with module {self.module}'s")
        if self.kind not in KINDS or self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"exercise {self.id}: kind {self.kind!r} / answer_type {self.answer_type!r}")
        if (self.answer_type == "alert") != bool(self.rule_test):
            raise ValueError(f"exercise {self.id}: an alert exercise (and only one) has a rule_test")
        if self.rule_test:
            scenarios = yaml.safe_load(self.rule_test)
            keys = {"name", "series", "eval_time", "fires"}
            if not isinstance(scenarios, list) or not scenarios or \
                    any(not isinstance(x, dict) or set(x) != keys for x in scenarios):
                raise ValueError(f"exercise {self.id}: rule_test is a list of scenarios with "
                                 f"{sorted(keys)}")
        if self.answer_type == "choice":
            if len(self.options) < 2:
                raise ValueError(f"exercise {self.id}: a choice needs at least two options")
            unknown = set(self.mistakes) - set(self.options)
            if unknown:
                raise ValueError(f"exercise {self.id}: mistakes for unknown options {sorted(unknown)}")


EXERCISES: dict[str, Exercise] = {}


# References that are not an exercise's answer (the blind incident's window, in 07).
REFERENCES: dict[str, Any] = {}


def choice_answers(exercise: Exercise) -> Answers:
    """A choice's banks, when its solution is one key: that key (and as a person might type
    it), and every other option, each of which must get the advice its mistake gives."""
    key = str(exercise.solution)
    return Answers((key, f" {key.upper()} ", f"({key})"),
                   tuple(Wrong(other, exercise.mistakes[other].advice if other in exercise.mistakes else "")
                         for other in exercise.options if other != key))


def add(exercise: Exercise) -> Exercise:
    """Register an exercise of the workshop (each id once), with its solution and answer banks
    (a choice with a fixed key has them made: choice_answers)."""
    if exercise.answers is None and exercise.answer_type == "choice" and isinstance(exercise.solution, str):
        exercise = dataclasses.replace(exercise, answers=choice_answers(exercise))
    if exercise.id in EXERCISES:
        raise ValueError(f"exercise {exercise.id} is defined twice")
    if exercise.solution is None or exercise.answers is None:
        raise ValueError(f"exercise {exercise.id}: give its solution and its answers")
    if not exercise.answers.right or not exercise.answers.wrong:
        raise ValueError(f"exercise {exercise.id}: its answers need a right one and a wrong one")
    EXERCISES[exercise.id] = exercise
    return exercise


def add_reference(name: str, value: Any) -> None:
    """Register a reference the notebooks fill in headless runs that is no exercise's answer."""
    REFERENCES[name] = value


def close(answer: Any, value: Any) -> bool:
    """True when answer is a number equal to value within float rounding (for `when` tests)."""
    try:
        return FLOAT_ROUNDING.allows(float(answer), float(value))
    except (TypeError, ValueError):
        return False


def same_series(answer: Any, series: Any) -> bool:
    """True when answer is a Series with series's index and values (for `when` tests)."""
    try:
        return bool(answer.sort_index().astype("float64").equals(series.sort_index().astype("float64")))
    except (AttributeError, TypeError, ValueError):
        return False


def choice_advice(advice: Mapping[str, str]) -> dict[str, Mistake]:
    """A choice's wrong keys -> their advice, as Mistakes."""
    return {key: Mistake(text) for key, text in advice.items()}


def close_to(answer: Any, value: Any, rel: float = 1e-3) -> bool:
    """True when answer is a number within rel of value (for `when` tests of numbers)."""
    try:
        got, want = float(answer), float(value)
    except (TypeError, ValueError):
        return False
    return abs(got - want) <= max(rel * abs(want), 1e-9)


def worker_gap(frame: Any, request_id: str, last: bool = False) -> float:
    """Seconds from a request's access line to the worker's first (or last) line of its task."""
    mine = frame[frame["request_id"] == request_id]
    sent = mine.loc[mine["logger"] == "app.access", "timestamp"].min()
    worker = mine.loc[mine["service"] == "todo-worker", "timestamp"]
    return float(((worker.max() if last else worker.min()) - sent).total_seconds())


def queue_ms(spans: Any, from_start: bool = False) -> float:
    """Milliseconds from the producer span's end (or start) to the consumer span's start."""
    producer = next(s for s in spans if s.kind == "PRODUCER")
    consumer = next(s for s in spans if s.kind == "CONSUMER")
    return (consumer.start_ns - (producer.start_ns if from_start else producer.end_ns)) / 1e6


def bucket(seconds: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper] holding a duration."""
    from analysis import prom

    return prom.bucket_bounds(float(seconds))


def bench_cost(baseline: str, traced: str = "c", endpoint: str = "POST /api/todos") -> float:
    """CPU ms/request of configuration `traced` minus `baseline` in docs/benchmarks.md."""
    from analysis import benchmarks

    table = benchmarks.overhead()
    mine = table[table["endpoint"] == endpoint].set_index("configuration")["CPU ms/request"]
    pick = {key: next(v for k, v in mine.items() if k.startswith(f"({key})")) for key in (baseline, traced)}
    return float(pick[traced] - pick[baseline])


