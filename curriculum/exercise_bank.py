"""The workshop's exercises: question, hint, why, options, tolerance and common mistakes.

Each exercise is data; curriculum.exercises checks answers against it and the reference solution
in curriculum/solutions.py. Adding one means adding an `Exercise` to EXERCISES below, a solution
to SOLUTIONS and a case to tests/test_exercises.py (a right, an equivalent and a wrong answer).

Answer types:

| answer_type | ANSWER holds | checked against |
|---|---|---|
| promql | a PromQL string | the reference query, evaluated at the same moment (prometheus, at) |
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


def _choice_advice(advice: Mapping[str, str]) -> dict[str, Mistake]:
    """A choice's wrong keys -> their advice, as Mistakes."""
    return {key: Mistake(text) for key, text in advice.items()}


def _close_to(answer: Any, value: Any, rel: float = 1e-3) -> bool:
    """True when answer is a number within rel of value (for `when` tests of numbers)."""
    try:
        got, want = float(answer), float(value)
    except (TypeError, ValueError):
        return False
    return abs(got - want) <= max(rel * abs(want), 1e-9)


def _worker_gap(frame: Any, request_id: str, last: bool = False) -> float:
    """Seconds from a request's access line to the worker's first (or last) line of its task."""
    mine = frame[frame["request_id"] == request_id]
    sent = mine.loc[mine["logger"] == "app.access", "timestamp"].min()
    worker = mine.loc[mine["service"] == "todo-worker", "timestamp"]
    return float(((worker.max() if last else worker.min()) - sent).total_seconds())


def _queue_ms(spans: Any, from_start: bool = False) -> float:
    """Milliseconds from the producer span's end (or start) to the consumer span's start."""
    producer = next(s for s in spans if s.kind == "PRODUCER")
    consumer = next(s for s in spans if s.kind == "CONSUMER")
    return (consumer.start_ns - (producer.start_ns if from_start else producer.end_ns)) / 1e6


def _bucket(seconds: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper] holding a duration."""
    from analysis import prom

    return prom.bucket_bounds(float(seconds))


def _bench_cost(baseline: str, traced: str = "c", endpoint: str = "POST /api/todos") -> float:
    """CPU ms/request of configuration `traced` minus `baseline` in docs/benchmarks.md."""
    from analysis import benchmarks

    table = benchmarks.overhead()
    mine = table[table["endpoint"] == endpoint].set_index("configuration")["CPU ms/request"]
    pick = {key: next(v for k, v in mine.items() if k.startswith(f"({key})")) for key in (baseline, traced)}
    return float(pick[traced] - pick[baseline])


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

# --- 00-setup -------------------------------------------------------------------------------

add(Exercise(
    id="0.1", module="00-setup", kind="predict", answer_type="number",
    question="Before you run the next cells: how many **scrape targets** does Prometheus have "
             "**up** right now (its `up` series with value 1)? Think of the processes the lab "
             "runs that expose metrics, and remember Prometheus scrapes itself.",
    hint="The lab's metrics come from the web app (all gunicorn workers behind one `/metrics`), "
         "the Celery worker (its own port), Caddy (its metrics listener) and Prometheus itself. "
         "Count the *targets*, not the processes behind them.",
    why="One target per `/metrics` endpoint: the web app (its workers are summed behind one "
        "endpoint, multiprocess mode), the worker, Caddy and Prometheus. `up` is written by "
        "Prometheus after every scrape, so it exists even when the target is down (value 0): "
        "the first thing to check when a graph is empty.",
    tolerance=Tolerance(abs=0, reason="a count of targets"),
    mistakes={
        "processes": Mistake("Count scrape targets, not processes: gunicorn's workers share "
                             "one `/metrics` (multiprocess mode), and so do the Celery pool "
                             "children.", when=lambda answer, expected, **_: _close(answer, expected + 2)
                             or _close(answer, expected + 3) or _close(answer, expected + 4)),
        "no_self": Mistake("Prometheus scrapes its own `/metrics` too: it is a target like "
                           "the others.", when=lambda answer, expected, **_: _close(answer, expected - 1)),
    },
))

add(Exercise(
    id="0.2", module="00-setup", kind="query", answer_type="promql",
    question="Write the PromQL for the **number of requests to `api.list_todos` counted since "
             "the web processes started** (one number: add up every method and status).",
    hint="The request counter is `http_request_duration_seconds_count`; select the endpoint "
         "with `{endpoint=\"api.list_todos\"}` and add its series with `sum(...)`.",
    why="A counter's raw value is 'everything since the process started': handy for a tour, "
        "useless for a trend, because it depends on when the process started. Module 1 turns "
        "it into a rate. `sum` adds the series of each method and status into one number.",
    mistakes={
        "no_filter": Mistake("Only api.list_todos: put `{endpoint=\"api.list_todos\"}` in the "
                             "selector.", pattern=r"^(?!.*api\.list_todos)"),
        "no_sum": Mistake("One number: add the series (one per status) with `sum(...)`.",
                          when=lambda got, expected, **_: len(got) > 1),
    },
))

add(Exercise(
    id="0.3", module="00-setup", kind="interpret", answer_type="choice",
    question="A user reports that **one particular page load took 4 seconds** this morning. "
             "Which signal can show *where inside that request* the time went?",
    options={"a": "the metric `http_request_duration_seconds` (its p95 over the last minute)",
             "b": "the request's access line in the log",
             "c": "the request's trace",
             "d": "Locust's report"},
    hint="Which signal keeps the *parts* of one request, each with its own start and duration?",
    why="A trace is one request broken into timed spans (the server span, each database "
        "query, the task it queued), so it shows where the 4 seconds went. The access line "
        "has only the total; the metric only aggregates; Locust only saw the outside.",
    mistakes=_choice_advice({
        "a": "The histogram adds requests together: it can show that slow requests exist, "
             "never which one, nor where its time went.",
        "b": "The access line has the request's total duration and its trace id, not its parts: "
             "follow the trace id to the trace.",
        "d": "Locust measures requests from the outside, and only its own synthetic users.",
    }),
))

# --- 01-metrics (more) ----------------------------------------------------------------------

add(Exercise(
    id="1.3", module="01-metrics", kind="predict", answer_type="choice",
    question="The next chart draws the faulty endpoint's error share with `rate(...[10s])`, "
             "`[20s]`, `[1m]` and `[3m]`, scraped every 5 s. What will the **`[10s]`** line look "
             "like?",
    options={"a": "the same as [1m], only a little noisier",
             "b": "jumpy, with points missing where fewer than two samples fell in the window",
             "c": "zero everywhere: 10 s is too short to see any request",
             "d": "smoother than the others, because it averages less"},
    hint="How many scrapes fit into 10 seconds at a 5 s interval? What does `rate` need at "
         "least, and what happens when one scrape is a moment late?",
    why="`rate` needs two samples in its window. At 5 s, a 10 s window holds two, or one when "
        "a scrape lands a moment late: then there is no point at all. With two samples, each "
        "point is one scrape-to-scrape step, which jumps with every handful of requests. Four "
        "scrapes per window is the minimum that survives a missed scrape.",
    mistakes=_choice_advice({
        "a": "A 10 s window holds only two samples at a 5 s scrape: the line is far noisier than "
             "[1m], and has gaps.",
        "c": "There are requests every second; the problem is the number of *samples* per "
             "window, not requests.",
        "d": "Averaging over less time makes a line jumpier, not smoother.",
    }),
))

add(Exercise(
    id="1.4", module="01-metrics", kind="interpret", answer_type="choice",
    question="`sum(increase(...[Ns]))` over the run is **not a whole number**, and it differs "
             "from the raw counter difference. Why?",
    options={"a": "`increase` extrapolates the increase it saw between its first and last "
                  "samples to the edges of the window",
             "b": "some requests were counted half, when they were in flight during a scrape",
             "c": "floating-point rounding in Prometheus",
             "d": "the counter was reset during the run"},
    hint="Where inside the window do the first and last samples fall, and what does "
         "Prometheus assume about the time before the first and after the last?",
    why="The samples are a few seconds inside the window's edges; `increase` (and `rate`) "
        "assume the counter kept growing at the same pace to the edges and scale the "
        "observed increase up. Right on average, almost never a whole number. For an exact "
        "count, subtract the raw counter at two moments (`@`), as module 4 does.",
    mistakes=_choice_advice({
        "b": "A counter is an integer in the app; a request is counted once, when it ends.",
        "c": "Rounding errors are around 1e-12, not fractions of a request.",
        "d": "A reset is handled by `increase` (it adds the post-reset value); it would not "
             "make the count fractional.",
    }),
))

add(Exercise(
    id="1.5", module="01-metrics", kind="interpret", answer_type="choice",
    question="The chart shows the two lines. Which is **the share of requests that failed**, "
             "and why does the other one differ?",
    options={"a": "the average of per-endpoint ratios: each endpoint counts equally, which is "
                  "fairer",
             "b": "the ratio of sums: the other gives a quiet endpoint as much weight as a busy "
                  "one, so one endpoint's failures count as if it had all the traffic",
             "c": "both: they differ only by rate extrapolation",
             "d": "neither: an error share needs `increase`, not `rate`"},
    hint="Suppose one endpoint had 1000 requests and no errors, and another had 10 requests "
         "of which 5 failed. What share of all requests failed? What is the average of the "
         "two shares?",
    why="5 of 1010 requests failed (0.5%), but the average of 0% and 50% is 25%. The share of "
        "failed requests is failed / all, each summed over everything aggregated. Averaging "
        "ratios answers 'how bad is a typical endpoint', a different question, dominated by "
        "quiet ones.",
    mistakes=_choice_advice({
        "a": "Counting each endpoint equally answers 'how bad is a typical endpoint', not 'what "
             "share of requests failed': 5 failures among 10 requests weigh as much as 0 among 1000.",
        "c": "Extrapolation is worked out per series, from each one's own first and last samples: "
             "in a ratio of series scraped together it nearly cancels, never by enough to turn "
             "0.5% into 25%.",
        "d": "`rate` and `increase` of one series differ by the window's length, the same for "
             "numerator and denominator: that factor cancels in a ratio.",
    }),
))

add(Exercise(
    id="1.6", module="01-metrics", kind="predict", answer_type="choice",
    question="What does Prometheus answer to "
             "`histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[1m])))`, "
             "where `le` is summed away with everything else?",
    options={"a": "the same p95 as with `sum by (le)`",
             "b": "an error message about the missing label",
             "c": "nothing: an empty result, without an error",
             "d": "the mean duration instead of the p95"},
    hint="`histogram_quantile` looks for series with an `le` label and groups them by their "
         "other labels. What is left of `le` after `sum(...)` without `by`?",
    why="`sum` without `by (le)` adds all buckets into one series with no `le` label; "
        "`histogram_quantile` ignores series without `le`, so the result is empty. No error, "
        "no warning: an empty panel. When a latency graph is empty and the request rate is "
        "not, look for the missing `le` first.",
    mistakes=_choice_advice({
        "a": "The buckets are added together across all bounds: nothing is left to interpolate.",
        "b": "PromQL does not complain: series without `le` are silently ignored.",
        "d": "The mean would need `_sum / _count`; `histogram_quantile` never computes it.",
    }),
))

add(Exercise(
    id="1.7", module="01-metrics", kind="query", answer_type="promql",
    question="The **share of requests answered within the 0.25 s objective** over the last "
             "minute, all endpoints together (one number between 0 and 1).",
    hint="The bucket `le=\"0.25\"` counts requests that took at most 0.25 s. Divide its summed "
         "rate by the summed rate of `_count`.",
    why="Because 0.25 s is a bucket boundary, this share is a plain ratio of two counters, "
        "exact, with no interpolation. It is the SLI behind the lab's latency objective: "
        "'95% of requests within 0.25 s' means this ratio stays at or above 0.95 (module 5).",
    mistakes={
        "quantile": Mistake("The question asks for a share of requests, not a duration: "
                            "divide the `le=\"0.25\"` bucket's rate by the `_count` rate.",
                            pattern=r"histogram_quantile"),
        "wrong_bucket": Mistake("Use the bucket at the objective, `le=\"0.25\"`.",
                                pattern=r"^(?!.*le\s*=~?\s*\"0?\.25\")"),
    },
))

add(Exercise(
    id="1.8", module="01-metrics", kind="query", answer_type="promql",
    question="Each endpoint's **share of all requests** over the last minute: one series per "
             "`endpoint`, the shares adding up to 1.",
    hint="The two sides of your division keep different labels: one series per endpoint on one "
         "side, a single series on the other. Say which labels the match uses, and which side "
         "holds the many.",
    why="A binary operator pairs series by their labels. One series per endpoint against one "
        "total is many-to-one: `ignoring (endpoint) group_left` (or `on () group_left`) says "
        "so; `scalar(...)` turns the total into a plain number, which needs no matching. The "
        "lab's burn-rate alerts compare each SLI with its budget the same way "
        "(`on (slo) group_left`, stack/prometheus/rules/todo-slo.yml).",
    mistakes={
        "many_to_one": Mistake(
            "One series on the right matches several on the left: Prometheus refuses that "
            "unless you say which side has the many (`group_left`), or make the total a number "
            "with `scalar(...)`.",
            pattern=r"^(?!.*(group_left|group_right|scalar\()).*by\s*\(\s*endpoint\s*\).*/"),
        "divided_by_itself": Mistake(
            "Grouped by endpoint on both sides, each endpoint is divided by itself (1 "
            "everywhere): the denominator is the total over all endpoints.",
            pattern=r"/\s*sum\s*by\s*\(\s*endpoint\s*\)|/\s*sum\s*\(.*\)\s*by\s*\(\s*endpoint"),
    },
))

# --- 02-logs (more) -------------------------------------------------------------------------

add(Exercise(
    id="2.3", module="02-logs", kind="query", answer_type="number",
    question="How many **seconds did the export wait in the queue**: from the web's access "
             "line of your `POST /export` to the worker's first line of its task? Compute it "
             "from `frame` and `export_request`.",
    hint="Select `frame[frame.request_id == export_request]`; take the `timestamp` of the "
         "line with `logger == \"app.access\"` and the earliest `timestamp` of the lines with "
         "`service == \"todo-worker\"`; subtract and use `.total_seconds()`.",
    why="The web answered 202 and logged its access line; the worker logged its first line "
        "when it picked the task up. In between, the task was a message in the broker "
        "waiting for a free worker process. No single process measures this queue time; two "
        "logs joined by one `request_id` do.",
    tolerance=Tolerance(abs=0.002, reason="timestamps are logged to the microsecond; allow "
                                          "for rounding in your own arithmetic"),
    mistakes={
        "last_line": Mistake("From the access line to the worker's *first* line of the task "
                             "(`.min()`), not its last: the last includes the task's own work.",
                             when=lambda answer, expected, frame, request_id: _close_to(
                                 answer, _worker_gap(frame, request_id, last=True))),
        "milliseconds": Mistake("In seconds, not milliseconds: `.total_seconds()`.",
                                when=lambda answer, expected, **_: _close_to(answer, expected * 1000)),
    },
))

add(Exercise(
    id="2.4", module="02-logs", kind="interpret", answer_type="choice",
    question="Look at the ERROR lines of the run grouped by service and logger. What are "
             "they, and where would you look next for the *cause*?",
    options={"a": "access lines reporting 5xx answers; they say *which* requests failed, not "
                  "why: look at the trace (its attributes) or the app's other lines for an "
                  "exception",
             "b": "exceptions with tracebacks: the cause is in the lines themselves",
             "c": "worker failures: the exports broke",
             "d": "Caddy's proxy errors: the app was unreachable"},
    hint="Which `logger` wrote them, and what does each line's `message` look like? Does any "
         "line carry a traceback?",
    why="Every 5xx answer is logged at level ERROR by the access logger: a *report*. An "
        "exception raised by the code would leave a line of its own with the traceback; an "
        "injected fault leaves none, because the code did exactly what the switchboard told "
        "it. The trace of a failed request carries `fault.injected` and the fault's name.",
    mistakes=_choice_advice({
        "b": "Read the `logger` column: these are `app.access` lines, one per failed request, "
             "with no traceback.",
        "c": "Look at the `service` column: the lines come from the web app.",
        "d": "Caddy's errors would be in Caddy's log (`lab logs caddy`), not in the app's; "
             "the app itself answered these requests.",
    }),
))

add(Exercise(
    id="2.5", module="02-logs", kind="query", answer_type="jq",
    question="With **jq** on the web log: print the `request_id` of every **access line answered "
             "5xx** (one id per line). ANSWER is the jq filter, as you would type it between the "
             "quotes of `jq -c '...' var/log/web.jsonl`.",
    hint="`select(...)` keeps the lines for which its condition is true: test `.logger == "
         "\"app.access\"` and `.status_code >= 500` with `and`, then pipe into `.request_id`.",
    why="jq reads one JSON object per line and filters line by line, with no need to load the "
        "file first: the shell's way to ask a log a question, and the same question as "
        "`access[access.status_code >= 500].request_id` in pandas.",
    mistakes={
        "client_errors": Mistake("5xx means `.status_code >= 500`: 4xx answers are the client's "
                                 "mistakes, not failures of the app.",
                                 pattern=r"status_code\s*(>=?\s*4\d\d|>\s*399)"),
        "whole_line": Mistake("Print only the id: end the filter with `| .request_id`.",
                              pattern=r"^(?!.*\.request_id).*$"),
    },
))

# --- 03-traces (more) -----------------------------------------------------------------------

add(Exercise(
    id="3.2", module="03-traces", kind="interpret", answer_type="choice",
    question="Where did the slowest request of the run spend most of its time? Compare the "
             "root span with its children in the tree and the waterfall above.",
    options={"a": "in the database: its query spans cover most of the root span",
             "b": "in the app's own code (or something not instrumented): the root is long and "
                  "its children short",
             "c": "in the worker: the request waited for a Celery task",
             "d": "in Caddy, before the request reached the app"},
    hint="Add up the durations of the root's direct children and compare with the root's "
         "duration. What is left is the root's *own* time.",
    why="A span's own time is its duration minus its children's. Long database spans under "
        "the root point at the database (a slow query, a `slow_db` fault); a long root with "
        "short children points at the app's own code, a lock, or an injected delay "
        "(`fault.delay_ms` on the root span). The trace answers it for one request; module 7 "
        "asks it of many.",
    mistakes=_choice_advice({
        "a": "Add up the durations of the root's direct children: if they cover less than half "
             "of the root, most of the time is the root's own (app code, or something not "
             "instrumented).",
        "b": "Add up the durations of the root's direct children: they cover most of the root, "
             "so the time is in them (database and broker calls), not in the app's own code.",
        "c": "The request's spans are all in todo-web; a web request never waits for the worker.",
        "d": "The root span is the app's server span: it starts when the app got the request, "
             "after Caddy.",
    }),
))

add(Exercise(
    id="3.3", module="03-traces", kind="query", answer_type="number",
    question="From `export_spans`, how many **milliseconds did the export's message wait in the "
             "queue**: from the end of the producer span (`apply_async/...`, in todo-web) to "
             "the start of the consumer span (`run/...`, in todo-worker)?",
    hint="Find the two spans by `kind` (`\"PRODUCER\"`, `\"CONSUMER\"`) or by name; each has "
         "`start_ns` and `end_ns` (nanoseconds since the epoch). Divide the difference by 1e6.",
    why="The producer span ends when the message is in the broker; the consumer span starts "
        "when a worker process takes it. The gap is queue time, white space in the waterfall, "
        "and invisible in the job duration metric, which times the task only. It agrees with "
        "the gap between the two services' log lines in module 2.",
    tolerance=Tolerance(abs=0.01, reason="the spans' times are nanoseconds; allow rounding"),
    mistakes={
        "from_start": Mistake("From the *end* of the producer span (the message was then in "
                              "the broker), not its start.",
                              when=lambda answer, expected, spans: _close_to(
                                  answer, _queue_ms(spans, from_start=True))),
        "seconds": Mistake("In milliseconds: divide nanoseconds by 1e6.",
                           when=lambda answer, expected, **_: _close_to(answer, expected / 1000)),
    },
))

add(Exercise(
    id="3.4", module="03-traces", kind="interpret", answer_type="choice",
    question="Why is the worker's `run/exports.export_todos` span **not** on the critical path "
             "of `POST /export`?",
    options={"a": "the request did not wait for it: the task started after the request had "
                  "answered, so shortening it would not make the request faster",
             "b": "because it ran in another service, and critical paths stop at service "
                  "boundaries",
             "c": "because it was faster than the database spans of the request",
             "d": "because its span is not a child of the request's spans"},
    hint="When did `POST /export` send its answer, and when did the task start? What would "
         "speeding up the task change for the user who clicked Export?",
    why="A critical path contains only what the request waited for. The web request queued the "
        "task and answered 202; the task began later, in another process. Jaeger drops "
        "children that start after their parent ended and cuts those that outlive it. A span "
        "in another service *is* on the path when the caller waits for it (a synchronous "
        "HTTP call), so it is about waiting, not about services.",
    mistakes=_choice_advice({
        "b": "A synchronous call to another service is on the caller's critical path: what "
             "matters is whether the caller waited.",
        "c": "Its duration does not matter: it started after the request had answered.",
        "d": "It is in the same trace, a child of the producer span: the Celery headers carried "
             "the context.",
    }),
))

add(Exercise(
    id="3.5", module="03-traces", kind="predict", answer_type="choice",
    question="You call `GET /api/todos` with your own header "
             "`traceparent: 00-<your trace id>-<a span id>-01`. Which trace id will the app's "
             "response header (and its access line) carry?",
    options={"a": "your trace id: the app's server span joins your trace",
             "b": "a new trace id: the app always starts its own trace",
             "c": "no trace id at all",
             "d": "your trace id, but only if the request is sampled"},
    hint="What is `traceparent` for? Which component of the app reads incoming headers?",
    why="The OpenTelemetry middleware extracts the incoming context and makes the server span "
        "a child of the caller's span: one trace across client and server. That is "
        "propagation. A malformed header is ignored and a new trace begins: propagation "
        "fails silently.",
    mistakes=_choice_advice({
        "b": "The middleware reads `traceparent` exactly so that the server's spans can join "
             "the caller's trace.",
        "c": "Every request handled by a traced app has a trace id, adopted or new.",
        "d": "The trace id is adopted either way; sampling (the flags) only decides whether "
             "spans are recorded.",
    }),
))

# --- 04-verification ------------------------------------------------------------------------

add(Exercise(
    id="4.1", module="04-verification", kind="predict", answer_type="choice",
    question="The request count from Prometheus (counter difference between the run's edges) "
             "is compared with the number of access lines with **tolerance 0**. Which event "
             "would make this check fail although the query is right?",
    options={"a": "a request still in flight at the run's end, counted by one witness and not "
                  "the other",
             "b": "a slow request that took 2 seconds",
             "c": "a 5xx answer",
             "d": "Prometheus scraping every 5 s instead of every second"},
    hint="What does 'quiet edge' promise, and which witness would see a request that ended "
         "between the end moment and the next scrape?",
    why="An exact comparison assumes both witnesses saw the same requests. A request that ends "
        "after the last scrape before the edge but is logged before the edge (or the other way "
        "round) is in one count and not the other. `lab load` makes the edges quiet for this "
        "reason; a restart during the run (a counter reset) would break it too.",
    mistakes=_choice_advice({
        "b": "A slow request is counted once by both, when it ends.",
        "c": "5xx answers are requests like any other, in both counts.",
        "d": "The scrape interval does not matter for a raw counter difference between quiet "
             "edges: the counter holds every request whenever it is read.",
    }),
))

add(Exercise(
    id="4.2", module="04-verification", kind="query", answer_type="number",
    question="The p95 check compares `histogram_quantile`'s estimate with the log's exact p95 "
             "(`exact_p95_s`, printed above). What **tolerance, in seconds**, does it allow?",
    hint="Find the two consecutive bounds of `names.HTTP_BUCKETS` between which `exact_p95_s` "
         "lies (the lower bound of the first bucket is 0). The tolerance is that bucket's width.",
    why="`histogram_quantile` knows only how many requests fell in each bucket and assumes they "
        "are spread evenly inside it, so its estimate can be anywhere in the bucket that holds "
        "the true value. The bucket's width is the honest error bar; narrower buckets around "
        "the latencies you care about buy precision with series.",
    tolerance=Tolerance(abs=1e-6, reason="bucket bounds are exact"),
    mistakes={
        "upper_bound": Mistake("The width of the bucket (upper minus lower bound), not its "
                               "upper bound.",
                               when=lambda answer, expected, p95_s: _close_to(
                                   answer, _bucket(p95_s)[1])),
        "milliseconds": Mistake("In seconds, as the bounds are.",
                                when=lambda answer, expected, **_: _close_to(answer, expected * 1000)),
    },
))

add(Exercise(
    id="4.3", module="04-verification", kind="interpret", answer_type="choice",
    question="On a busy machine, Locust's **median** agrees with the log's within the "
             "tolerance, but Locust's **p95** is far above the log's p95. The most likely "
             "cause?",
    options={"a": "the app under-reports its durations in the tail",
             "b": "waiting outside the app (Caddy, the client's own event loop, the OS) grows in "
                  "the tail on a loaded machine; the app's `duration_ms` does not include it",
             "c": "Locust's rounding to 10 ms",
             "d": "the histogram's bucket error"},
    hint="What does Locust time that the app does not? Is that extra time the same for every "
         "request when two cores are shared by everything?",
    why="The client-side overhead is measured as a difference of averages, which holds near "
        "the middle of the distribution. In the tail, requests that queued in Caddy or waited "
        "for the client's own CPU add far more than the average. That is why the lab checks "
        "Locust's median, and why a client-side p95 and a server-side p95 answer different "
        "questions.",
    mistakes=_choice_advice({
        "a": "The app's duration and the histogram come from the same hook and agree (the "
             "Prometheus checks pass): the extra time is outside the app.",
        "c": "Rounding moves a value by at most one step (10 ms here), and applies to the median "
             "as much as to the p95.",
        "d": "Locust's and the log's percentiles use no histogram buckets.",
    }),
))

add(Exercise(
    id="4.4", module="04-verification", kind="query", answer_type="number",
    question="An error rate `rate` was injected; `n` requests of the endpoint fell inside the "
             "window (both printed above). What tolerance (a share) does a **4-standard-"
             "deviation** binomial check allow around `rate`?",
    hint="The observed share of n independent requests failing with probability p has "
         "standard deviation `sqrt(p * (1 - p) / n)`; multiply by 4.",
    why="Each request fails independently, so the observed share scatters around the injected "
        "one with a binomial spread that shrinks as √n grows. Four standard deviations fail a "
        "correct injector about once in 16,000 runs and still catch a wrong rate over a few "
        "hundred requests. The tolerance is derived, not chosen to pass.",
    tolerance=Tolerance(rel=0.01, reason="rounding of your arithmetic"),
    mistakes={
        "one_sigma": Mistake("Four standard deviations: multiply by 4.",
                             when=lambda answer, expected, **_: _close_to(answer, expected / 4)),
        "no_sqrt": Mistake("The standard deviation is the square root of p(1-p)/n.",
                           when=lambda answer, expected, n, rate: _close_to(
                               answer, 4 * rate * (1 - rate) / n)),
    },
))

# --- 06-cardinality-sampling-cost -----------------------------------------------------------

add(Exercise(
    id="6.1", module="06-cardinality-sampling-cost", kind="query", answer_type="promql",
    question="How many **series** does `http_request_duration_seconds_bucket` of the `web` job "
             "have in Prometheus right now? Write the PromQL.",
    hint="`count(...)` counts the series a selector returns.",
    why="`count` counts series, whatever their values. Every combination of method, endpoint "
        "and status that ever occurred, times 12 bucket bounds (11 and `+Inf`). It only grows "
        "while the server runs: a combination seen once stays until the process restarts.",
    mistakes={
        "sum": Mistake("`sum` adds the values (requests); `count` counts the series.",
                       pattern=r"^\s*sum\b"),
        "rate": Mistake("Count the series themselves; no `rate` is needed to count them.",
                        pattern=r"\brate\("),
    },
))

add(Exercise(
    id="6.2", module="06-cardinality-sampling-cost", kind="predict", answer_type="number",
    question="Predict: labelled by **`http.path` alone**, how many series would the request "
             "histogram expose for the run's access lines? (The distinct values are in the "
             "table above; the histogram has 11 bucket bounds.)",
    hint="Per label combination a histogram exposes one series per bucket bound, one for "
         "`+Inf`, one `_count` and one `_sum`.",
    why="11 bounds + `+Inf` + `_count` + `_sum` = 14 series per distinct path. Paths with ids "
        "grow with the data (`/api/todos/17`, `/api/todos/18`, ...): the metric's series grow "
        "with them, without bound. Label by the route or endpoint instead.",
    tolerance=Tolerance(abs=0, reason="a count of series"),
    mistakes={
        "buckets_only": Mistake("Count `+Inf`, `_count` and `_sum` too: 14 series per path.",
                                when=lambda answer, expected, **_: _close_to(answer, expected / 14 * 11)
                                or _close_to(answer, expected / 14 * 12)),
        "paths_only": Mistake("Each path is a whole histogram, not one series: multiply by 14.",
                              when=lambda answer, expected, **_: _close_to(answer, expected / 14)),
    },
))

add(Exercise(
    id="6.3", module="06-cardinality-sampling-cost", kind="predict", answer_type="choice",
    question="At 10% head sampling you take the `trace_id` of an access line and look it up in "
             "the trace store. What do you usually find?",
    options={"a": "its trace: every request has one",
             "b": "nothing, about 9 times in 10: the id exists, but no span was recorded under it",
             "c": "an error: unsampled requests have no trace id",
             "d": "a trace with only the root span"},
    hint="Is the trace id created before or after the sampling decision? What does the "
         "sampler decide about?",
    why="The trace id is created first (the sampler decides from it), so every request has "
        "one, in its log line and its `traceparent` header. The sampler decides whether spans "
        "are recorded: for an unsampled request nothing is exported, so the lookup finds "
        "nothing. The id still ties the request's log lines together across services.",
    mistakes=_choice_advice({
        "a": "Only sampled requests have spans; the rest have an id that leads nowhere.",
        "c": "Every request gets a trace id, sampled or not; only its spans are dropped.",
        "d": "Parent-based sampling decides for the whole trace at its root: all or nothing.",
    }),
))

add(Exercise(
    id="6.4", module="06-cardinality-sampling-cost", kind="interpret", answer_type="choice",
    question="With traces sampled at 10%, you need **the number of requests per endpoint and "
             "their error share** over the last hour. What do you use?",
    options={"a": "the spans, multiplied by 10",
             "b": "the metrics (or the access log): they count every request, sampled or not",
             "c": "the spans as they are: sampling keeps the proportions",
             "d": "the sampled traces' root spans, by their `http.route` attribute"},
    hint="Which signals are written for *every* request?",
    why="A ratio sampler (parent-based or not) decides when a trace starts, before its outcome "
        "is known: its sample is unbiased, but multiplying by 10 gives an estimate with binomial "
        "noise. A tail sampler decides after the trace ended and keeps errors and slow requests "
        "preferentially: its shares are biased. Counts come from metrics, which see every "
        "request at a fixed cost; traces explain individual requests.",
    mistakes=_choice_advice({
        "a": "Multiplying gives an estimate with sampling noise (and bias under tail sampling); "
             "the metric has the exact count.",
        "c": "A sample's proportions are only estimates, and tail samplers keep errors "
             "preferentially.",
        "d": "Only sampled requests have root spans; count from metrics.",
    }),
))

add(Exercise(
    id="6.5", module="06-cardinality-sampling-cost", kind="interpret", answer_type="choice",
    question="Which **process role** used the most CPU time during the run, according to "
             "`process_cpu_seconds_total`?",
    options={"a": "the gunicorn workers (`job=\"web\", role=\"worker\"`)",
             "b": "the gunicorn master (`role=\"master\"`)",
             "c": "the Celery worker's main process (`role=\"worker-main\"`)",
             "d": "the Celery pool children (`role=\"pool-child\"`)"},
    hint="Sum the CPU seconds per `job` and `role` over the run: "
         "`sum by (job, role) (increase(process_cpu_seconds_total[...]))`, or read the chart.",
    why="The web workers serve every request: parsing, templates, the database driver, the "
        "JSON log line, the metrics and the spans. The master only supervises; the Celery "
        "processes run the few exports. Compare their CPU rate with 1.0 (one core): a "
        "Python worker cannot use much more, whatever the machine has.",
    mistakes=_choice_advice({
        "b": "The master forks and watches the workers; it serves no request.",
        "c": "The Celery main process consumes messages and hands them to its pool; it does "
             "little work per export, and exports are rare.",
        "d": "The pool children run the exports, a small share of the traffic.",
    }),
))

add(Exercise(
    id="6.6", module="06-cardinality-sampling-cost", kind="interpret", answer_type="number",
    question="From the benchmark table: how many **milliseconds of CPU per request** does "
             "tracing every request (configuration c) add to `POST /api/todos` over logs and "
             "metrics alone (configuration b)?",
    hint="Read the `CPU ms/request` column for `POST /api/todos` in rows (b) and (c), and "
         "subtract.",
    why="Tracing adds span creation, context handling and export to every request, more than "
        "the access log and the metrics together; sampling at 10% (row e) removes the export "
        "of 9 spans in 10 but not the per-request instrumentation work before the decision. "
        "Budget for it before copying the instrumentation into a busy service.",
    tolerance=Tolerance(abs=0.05, reason="the difference read to two significant figures, as a "
                                         "person reads two cells of a table"),
    mistakes={
        "vs_off": Mistake("Compare (c) with (b), logs and metrics, not with (a), everything off.",
                          when=lambda answer, expected, **_: _close_to(answer, _bench_cost("a"))),
        "ratio": Mistake("In milliseconds per request (a difference), not a ratio.",
                         when=lambda answer, expected, **_: 1.0 < float(answer) < 3.0
                         and not _close_to(answer, expected)),
    },
))

add(Exercise(
    id="6.7", module="06-cardinality-sampling-cost", kind="interpret", answer_type="choice",
    question="After a deploy, Prometheus's memory grows all day, and `count by (__name__)` shows "
             "`http_request_duration_seconds_bucket` went from a few hundred series to 50,000 and "
             "climbing, while traffic is unchanged. The most likely cause?",
    options={"a": "a label with unbounded values was added to the histogram (a raw path, a user "
                  "id, a request id)",
             "b": "more traffic: each request adds series",
             "c": "the scrape interval was shortened",
             "d": "the histogram got two more buckets"},
    hint="What multiplies series, and which of these grows *without bound* while the traffic "
         "stays the same?",
    why="Series are label combinations, not requests: a new label multiplies them by its "
        "distinct values. Two more buckets add a fixed 2 per combination; a shorter scrape adds "
        "samples, not series. Only a label whose values keep appearing (ids, raw paths) grows "
        "all day. Find it with `count by (label) (...)` per label, remove it, and put the id in "
        "the logs.",
    mistakes=_choice_advice({
        "b": "Requests add to existing counters; only new label combinations add series.",
        "c": "A shorter scrape interval stores more samples per series, not more series.",
        "d": "Two more buckets add two series per label combination: a fixed, small growth.",
    }),
))

# --- 07-incident ----------------------------------------------------------------------------

add(Exercise(
    id="7.1", module="07-incident", kind="query", answer_type="promql",
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

add(Exercise(
    id="7.2", module="07-incident", kind="interpret", answer_type="choice",
    question="Half of the requests were made to fail (`rate` injected), the client saw a "
             "somewhat different share, and Prometheus's 1-minute share is **lower than both**. "
             "Why is Prometheus's number the lowest?",
    options={"a": "the 1-minute window also holds requests from before the fault was switched "
                  "on, which all succeeded: they dilute the share",
             "b": "Prometheus missed some failed requests between scrapes",
             "c": "`rate` extrapolates the 5xx series more than the total",
             "d": "the client counted some failures twice"},
    hint="Over which stretch of time does `rate(...[1m])` at the moment `after` count requests? "
         "When was the fault switched on, and did the endpoint serve requests before that?",
    why="The injected rate is a probability; the client's share is one binomial draw of it "
        "(tens of requests, so a few points off). Prometheus's share covers the whole minute "
        "before `after`, including the endpoint's requests before the fault, which all "
        "succeeded. A window longer than the fault always dilutes it: detection and alerting "
        "(module 5) live with that.",
    mistakes=_choice_advice({
        "b": "A counter keeps counting between scrapes, so a request shows at the next scrape. "
             "A series born inside the window (the endpoint's first 500 creates its 5xx series: "
             "the lab does not create it ahead) has no sample before its first; `rate` "
             "extrapolates it back towards zero, an estimate at its average pace. That is off "
             "by a request or two at most, not the gap between the shares here.",
        "c": "Each side is extrapolated from its own samples: the factors are close, not equal "
             "(a series born inside the window is extended back to where it would be zero, the "
             "others to the window's edges), a small effect next to this gap.",
        "d": "The client counted each answer once; it matches the access log exactly.",
    }),
))

add(Exercise(
    id="7.3", module="07-incident", kind="interpret", answer_type="choice",
    question="Your diagnosis of the blind incident, part 1: **what kind of fault** was it?",
    options={"error_rate": "one endpoint answered some requests with 500",
             "latency": "one endpoint became slow but kept answering",
             "slow_db": "every endpoint that reads the database became slow at once"},
    hint="Errors or latency? Look at the error share by endpoint and the p95 by endpoint over "
         "the incident's minutes. One endpoint or all of them? In a slow request's trace, is "
         "the database span long, or the server span itself?",
    why="Each kind leaves its own fingerprint: 5xx answers on one endpoint (error_rate); one "
        "endpoint slower with short child spans (latency, an injected delay in the app); "
        "every database-reading endpoint slower at once with a long database span (slow_db). "
        "Form a hypothesis from the metric, then confirm it in the logs and a trace.",
    mistakes=_choice_advice({
        "error_rate": "Were there really 5xx answers? Compare the error share with the minutes "
                      "before the incident: a latency fault answers 200, only slowly.",
        "latency": "Were the errors or the slowness on one endpoint only? If several endpoints "
                   "slowed together, the cause is shared; if there were 5xx, it is errors.",
        "slow_db": "Did every database-reading endpoint slow down, and is the database span "
                   "the long one in their traces? If only one endpoint changed, the fault is "
                   "local to it.",
    }),
))

add(Exercise(
    id="7.4", module="07-incident", kind="interpret", answer_type="choice",
    question="Part 2: **which endpoint** did the fault hit? (`*` if it hit every endpoint that "
             "reads the database.)",
    options={"todos.index": "the HTML list page (`GET /`)",
             "todos.add": "adding a todo from the page (`POST /add`)",
             "api.list_todos": "the JSON list (`GET /api/todos`)",
             "api.create_todo": "creating a todo through the API (`POST /api/todos`)",
             "todos.toggle": "toggling a todo from the page",
             "*": "every endpoint that reads the database"},
    hint="Break the symptom down `by (endpoint)` and compare each endpoint with the minutes "
         "before the incident. In the log, group the incident's access lines by endpoint.",
    why="A symptom summed over all endpoints says *that* something broke; the same query "
        "`by (endpoint)` says *where*. Compare each endpoint with its own normal, not with the "
        "others: a page that is always slower than the API is not the culprit unless it changed.",
    mistakes=_choice_advice({key: "Compare this endpoint's error share and p95 during the "
                             "incident with its own minutes before: did it change? Then check "
                             "the others `by (endpoint)`." for key in (
                                 "todos.index", "todos.add", "api.list_todos", "api.create_todo",
                                 "todos.toggle", "*")}),
))

# --- 05-alerting ----------------------------------------------------------------------------

add(Exercise(
    id="5.1", module="05-alerting", kind="query", answer_type="number",
    question="Over the load run, `total` requests were answered and `bad` of them were 5xx "
             "(both printed above); the availability objective is `objective`. What **share of "
             "the error budget** did the run use? (1 = all of it.)",
    hint="The budget is the number of bad requests the objective allows: `(1 - objective) * "
         "total`. Divide the bad requests by it.",
    why="An SLO of 99% allows 1% of requests to fail: that 1% is the error budget. A run with "
        "a 5xx share above 1% uses more than its budget (a value above 1), which over a whole "
        "SLO period would breach the objective. Budgets make 'how bad was it' a number you "
        "can compare across incidents.",
    tolerance=Tolerance(rel=0.01, reason="rounding of your arithmetic"),
    mistakes={
        "bad_share": Mistake("That is the share of requests that failed; divide it by the "
                             "budget share `1 - objective` to get the share of the budget.",
                             when=lambda answer, expected, total, bad, objective: _close_to(
                                 answer, bad / total)),
        "remaining": Mistake("That is what is left of the budget; the question asks what was "
                             "used: `bad / ((1 - objective) * total)`.",
                             when=lambda answer, expected, **_: _close_to(answer, 1 - expected)),
    },
))

add(Exercise(
    id="5.2", module="05-alerting", kind="query", answer_type="number",
    question="A fault makes **half of all requests fail**. What is its **burn rate** against "
             "the 99% availability objective?",
    hint="A burn rate compares how fast the budget goes with the pace that would spend it "
         "exactly over the SLO period. What share of requests may fail under the objective, "
         "and what share fails now?",
    why="A burn rate of 1 spends the budget in exactly the SLO period; 50 spends a 30-day "
        "budget in 14.4 hours. The SRE Workbook pages at 14.4 (2% of the budget in an hour) "
        "and 6 (5% in six hours), each over a long and a short window.",
    tolerance=Tolerance(rel=0.01, reason="rounding"),
    mistakes={
        "share": Mistake("That is the bad share itself; the burn rate says how many times faster "
                         "than the budget allows it is spent: compare it with the budget's share.",
                         when=lambda answer, expected, **_: _close_to(answer, 0.5)),
        "percent": Mistake("You divided by the objective itself: the budget is the share of "
                           "requests the objective lets fail, written as a fraction.",
                           when=lambda answer, expected, **_: _close_to(answer, 0.5 / 0.99)),
    },
))

add(Exercise(
    id="5.3", module="05-alerting", kind="predict", answer_type="choice",
    question="`HighErrorRate` fires when the 5xx share over 1 minute is above 5% `for: 1m`. A "
             "fault makes half of all requests fail. Which part of the delay from the fault's "
             "start to the notification is **the largest**?",
    options={"a": "the 1-minute window filling with failures until the share crosses 5%",
             "b": "`for: 1m`: the condition must hold for a whole minute",
             "c": "the scrape and evaluation intervals (5 s each)",
             "d": "Alertmanager's `group_wait` before the first notification"},
    hint="At a 50% bad share, how much of the 1-minute window must the fault fill before the "
         "share passes 5%?",
    why="The share passes 5% once the fault fills a tenth of the window (6 s at 50%); a scrape "
        "and an evaluation add up to 10 s each; `group_wait` is 10 s. `for: 1m` adds a full "
        "minute: it buys precision (no page for a blip) with detection time. Strong faults are "
        "detected in about `for` plus tens of seconds; weak ones mostly wait for the window.",
    mistakes=_choice_advice({
        "a": "At 50% failures the 5% threshold is reached after a tenth of the window: about 6 s.",
        "c": "A scrape and an evaluation add at most 5 s each (10 s with a new series): less "
             "than `for`.",
        "d": "The lab's `group_wait` is 10 s (stack/alertmanager/alertmanager.yml).",
    }),
))

add(Exercise(
    id="5.4", module="05-alerting", kind="predict", answer_type="choice",
    question="A fault makes half of all requests fail for **30 seconds**, then stops. Does "
             "`HighErrorRate` (1-minute window, above 5%, `for: 1m`) fire?",
    options={"a": "no: the fault is shorter than `for: 1m`",
             "b": "yes: the 1-minute window keeps counting the failures for almost a minute "
                  "after the fault ended, so the condition holds for over a minute",
             "c": "only if the fault lasts more than two minutes",
             "d": "no: 30 s of failures in a 1-minute window is diluted below 5%"},
    hint="The condition starts once the failures fill a tenth of the window. When does the "
         "share fall back under 5% after the fault stops, with the window still holding them?",
    why="The condition holds from about 6 s after the fault starts until the window no longer "
        "holds enough failures: about 54 s after it ends (the window minus a tenth). 24 + 54 s "
        "is more than `for: 1m`, so it fires, after the fault is already over. The window, "
        "not the fault, decides how long a condition lasts: an alert's reset time follows "
        "its window too.",
    mistakes=_choice_advice({
        "a": "`for:` counts how long the *condition* holds, and the 1-minute window keeps it "
             "true well after the fault ends.",
        "c": "Two minutes is more than needed: the condition outlives the fault by almost a minute.",
        "d": "30 s of 50% failures in a 60 s window is a 25% share: far above 5%.",
    }),
))


def _rule_advice(scenario: str, outcome: str) -> Callable[..., bool]:
    """A `when` test: the graded rule's outcome for a scenario starting with `scenario`."""
    def matches(answer: Any, expected: Any, **_: Any) -> bool:
        if not isinstance(answer, Mapping):
            return False
        return any(name.startswith(scenario) and value == outcome for name, value in answer.items())
    return matches


add(Exercise(
    id="5.5", module="05-alerting", kind="query", answer_type="value",
    question="Write an **alert expression** that pages when **more than 10% of `api.list_todos` "
             "requests fail over the last 2 minutes** (the rule adds `for: 1m`). "
             "`promtool test rules` runs it on thirteen scenarios (just above and just under the "
             "threshold, quiet and busy traffic, another endpoint failing, traffic that stops...); "
             "it is right when it fires exactly where it should.",
    hint="Build the condition in two steps: first a query for the endpoint's *share* of failed "
         "requests over the question's window, run in the Prometheus UI (it lies between 0 and 1 "
         "and rises in the lab's fault window); then compare it with the threshold. Ask yourself "
         "what labels the two sides of your division keep.",
    why="An alert is a PromQL condition plus time: the window decides what 'recently' means "
        "(a longer one still fires after traffic stopped), the filter decides what is "
        "watched, the threshold how bad is bad, and `for:` how long it must last. Testing it "
        "on scenarios with `promtool test rules` (as `stack/prometheus/tests/` does for every "
        "lab rule) catches all four mistakes before a real page does.",
    mistakes={
        "endpoint": Mistake("Filter on `endpoint=\"api.list_todos\"` on both sides: your rule "
                            "fired for another endpoint's failures.",
                            when=_rule_advice("30% of todos.index", "fired, but should not")),
        "endpoint_one_side": Mistake("Put the endpoint filter on both sides of the division: with "
                                     "it on the 5xx side only, a busy other endpoint's requests "
                                     "dilute the share (your rule missed 15% on the list).",
                                     when=_rule_advice("15% of api.list_todos", "did not fire, but should")),
        "threshold": Mistake("Compare with the threshold the question gives, 10% (your rule "
                             "fired under it).",
                             when=_rule_advice("9% of api.list_todos", "fired, but should not")),
        "threshold_high": Mistake("Compare with the threshold the question gives, 10% (your rule "
                                  "stayed silent just above it).",
                                  when=_rule_advice("11% of api.list_todos", "did not fire, but should")),
        "raw_rate": Mistake("A raw rate of 5xx answers changes with the traffic: the same share "
                            "fires at busy times and not at quiet ones. Divide by the rate of all "
                            "the endpoint's requests: a share between 0 and 1.",
                            when=_rule_advice("8% of api.list_todos", "fired, but should not")),
        "raw_rate_quiet": Mistake("Your rule missed a high share at quiet traffic: compare a share "
                                  "(5xx rate divided by all requests' rate), not a count or a rate "
                                  "of failures.",
                                  when=_rule_advice("20% of api.list_todos", "did not fire, but should")),
        "window": Mistake("Use the 2-minute window the question gives: a longer one keeps firing "
                          "after the failures or the traffic have stopped.",
                          when=_rule_advice("30% failed, but", "fired, but should not")),
        "window_short": Mistake("Use the 2-minute window the question gives: a shorter one forgets "
                                "failures the last 2 minutes still hold.",
                                when=_rule_advice("30% failed for five minutes", "did not fire, but should")),
        "silent": Mistake("It did not fire at 30% failures: divide the 5xx rate by the rate of "
                          "all requests (a share between 0 and 1) and compare it with the threshold.",
                          when=_rule_advice("30% of api.list_todos", "did not fire, but should")),
        "load": Mistake("promtool could not load the rule: run `rule_grader.grade(ANSWER)` to "
                        "read its message (often a parenthesis or a quote).",
                        when=_rule_advice("", "rule did not load")),
    },
))
