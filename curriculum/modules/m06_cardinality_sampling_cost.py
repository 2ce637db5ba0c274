"""Exercises of notebooks/06-cardinality-sampling-cost.ipynb: cardinality, sampling, cost."""

from __future__ import annotations

from typing import Any

import pandas as pd

from curriculum.exercise_model import (
    OPEN_HINT,
    Answers,
    Exercise,
    Mistake,
    Tolerance,
    Wrong,
    add,
    answers,
    bench_cost,
    choice_advice,
    close_to,
)

BUCKETS = 'http_request_duration_seconds_bucket{job="web"}'

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
        # Shadows the common mistake of that name (curriculum.exercises), which would tell every
        # wrong count of this `_bucket` counter to take its rate: counting series needs none.
        "counter_without_rate": Mistake("Counting series needs no `rate`: `count(...)` of the "
                                        "selector itself."),
    },
    solution='count(http_request_duration_seconds_bucket{job="web"})',
    # Compared over the last 5 minutes of the synthetic traffic (tests/support/promdata.py):
    # 60 series, then 72 once todos.toggle's first 500 creates its series 40 s before the end.
    answers=Answers(
        right=(f"count({BUCKETS})",
               f"sum(count by (endpoint) ({BUCKETS}))",
               f"count by () ({BUCKETS})",
               'count({__name__="http_request_duration_seconds_bucket", job="web"})'),
        wrong=(Wrong(f"sum({BUCKETS})", "`count` counts the series"),
               Wrong(f"sum(rate({BUCKETS}[1m]))", "no `rate` is needed"),
               Wrong("vector(1)", OPEN_HINT),
               # The count read at the range's end, hard-coded: right at that instant only.
               Wrong("vector(72)", OPEN_HINT),
               # A minute late: right along the range except in the minute after a series is born.
               Wrong(f"count({BUCKETS} offset 1m)", OPEN_HINT)),
        context=("prometheus", "start", "at")),
))


# 6.2 Series of the request histogram labelled by the raw path: 14 per distinct path.
def series_by_path(access: pd.DataFrame) -> int:
    """(11 bounds + +Inf + _count + _sum) x distinct paths."""
    return 14 * int(access["http.path"].nunique())

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
                                when=lambda answer, expected, **_: close_to(answer, expected / 14 * 11)
                                or close_to(answer, expected / 14 * 12)),
        "paths_only": Mistake("Each path is a whole histogram, not one series: multiply by 14.",
                              when=lambda answer, expected, **_: close_to(answer, expected / 14)),
    },
    solution=series_by_path,
    # The recorded run has 8 distinct paths (7 endpoints): 112 series.
    answers=Answers(
        right=(lambda d: 14 * d["access"]["http.path"].nunique(),
               lambda d: float(14 * d["access"]["http.path"].nunique()),
               lambda d: d["access"].groupby("http.path").ngroups * (11 + 1 + 2)),
        wrong=(Wrong(lambda d: d["access"]["http.path"].nunique(), "multiply by 14"),
               Wrong(lambda d: 12 * d["access"]["http.path"].nunique(), "Count `+Inf`, `_count` and `_sum`"),
               Wrong(14, OPEN_HINT),  # a constant: one histogram
               # By endpoint: right only on a run whose paths carry no ids.
               Wrong(lambda d: 14 * d["access"]["endpoint"].nunique(), OPEN_HINT)),
        context=("access",)),
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
    mistakes=choice_advice({
        "a": "Only sampled requests have spans; the rest have an id that leads nowhere.",
        "c": "Every request gets a trace id, sampled or not; only its spans are dropped.",
        "d": "Parent-based sampling decides for the whole trace at its root: all or nothing.",
    }),
    solution="b",
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
    mistakes=choice_advice({
        "a": "Multiplying gives an estimate with sampling noise (and bias under tail sampling); "
             "the metric has the exact count.",
        "c": "A sample's proportions are only estimates, and tail samplers keep errors "
             "preferentially.",
        "d": "Only sampled requests have root spans; count from metrics.",
    }),
    solution="b",
))


# 6.5 The busiest process role during the run, from process_cpu_seconds_total.
def busiest_role(prometheus: Any, start: Any, end: Any) -> str:
    """The option key of the job/role with the largest CPU-seconds increase between start and end."""
    keys = {("web", "worker"): "a", ("web", "master"): "b", ("worker", "worker-main"): "c",
            ("worker", "pool-child"): "d"}
    seconds = max(1, int((end - start).total_seconds()))
    frame = prometheus.instant('sum by (job, role) (increase(process_cpu_seconds_total'
                               f'{{job=~"web|worker"}}[{seconds}s]))', end)
    best = frame.sort_values("value").iloc[-1]
    return keys[(best["job"], best["role"])]

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
    mistakes=choice_advice({
        "b": "The master forks and watches the workers; it serves no request.",
        "c": "The Celery main process consumes messages and hands them to its pool; it does "
             "little work per export, and exports are rare.",
        "d": "The pool children run the exports, a small share of the traffic.",
    }),
    solution=busiest_role,
    answers=answers(lambda d: d["busiest"], lambda d: d["busiest"].upper(), "b",
                    advice="serves no request", context=("prometheus", "start", "end")),
))


# 6.6 CPU ms/request that tracing (c) adds over logs + metrics (b) on POST /api/todos.
def tracing_cost_ms() -> float:
    """From docs/benchmarks.md's overhead table."""
    from analysis import benchmarks

    table = benchmarks.overhead()
    mine = table[table["endpoint"] == "POST /api/todos"].set_index("configuration")["CPU ms/request"]
    row = {str(k)[1]: float(v) for k, v in mine.items()}
    return row["c"] - row["b"]


def _cpu_cells(endpoint: str = "POST /api/todos", column: str = "CPU ms/request") -> dict[str, float]:
    """Configuration key ("a".."e") -> its cell of docs/benchmarks.md's overhead table."""
    from analysis import benchmarks

    table = benchmarks.overhead()
    mine = table[table["endpoint"] == endpoint].set_index("configuration")[column]
    return {str(k)[1]: float(v) for k, v in mine.items()}


def bench_ratios() -> tuple[float, ...]:
    """The ratios a learner may give instead of 6.6's difference: (c)/(b), (c)/(a) and (c)'s
    `CPU vs (a)` cell."""
    cpu = _cpu_cells()
    return cpu["c"] / cpu["b"], cpu["c"] / cpu["a"], _cpu_cells(column="CPU vs (a)")["c"]


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
                          when=lambda answer, expected, **_: close_to(answer, bench_cost("a"))),
        "ratio": Mistake("In milliseconds per request (a difference), not a ratio.",
                         when=lambda answer, expected, **_: not close_to(answer, expected) and any(
                             close_to(answer, ratio, rel=0.02) for ratio in bench_ratios())),
    },
    solution=tracing_cost_ms,
    # docs/benchmarks.md: POST /api/todos, (c) 5.224 - (b) 3.330 ms of CPU per request.
    # Rounded as a person writes it (two significant figures) is right too.
    answers=Answers(
        right=(lambda d: bench_cost("b", "c"), lambda d: float(f"{bench_cost('b', 'c'):.2g}"),
               lambda d: round(float(_cpu_cells()["c"] - _cpu_cells()["b"]), 2)),
        wrong=(Wrong(lambda d: bench_cost("a", "c"), "Compare (c) with (b)"),
               Wrong(lambda d: _cpu_cells()["c"] / _cpu_cells()["b"], "not a ratio"),
               Wrong(1, OPEN_HINT),  # a constant: "about a millisecond"
               # The ranges' low ends (4.735 - 3.215: the fastest runs), not the table's figures.
               Wrong(1.52, OPEN_HINT)),
    ),
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
    mistakes=choice_advice({
        "b": "Requests add to existing counters; only new label combinations add series.",
        "c": "A shorter scrape interval stores more samples per series, not more series.",
        "d": "Two more buckets add two series per label combination: a fixed, small growth.",
    }),
    solution="a",
))


# 6.8 Which endpoint holds the series: count by the label you break down by.

add(Exercise(
    id="6.8", module="06-cardinality-sampling-cost", kind="query", answer_type="promql",
    question="Where do those series come from? Write the PromQL for the **number of series of "
             "`http_request_duration_seconds_bucket` (job `web`) per endpoint**: one series per "
             "`endpoint`, its value the count.",
    hint="The same count as 6.1, broken down: the aggregation keeps the label you name in "
         "`by (...)`.",
    why="`count by (endpoint)` counts the series of each endpoint: 12 bucket bounds for every "
        "method and status the endpoint has answered with. An endpoint that answers several "
        "statuses holds several times the series of one that always succeeds; a label whose "
        "values are unbounded (a raw path, a user id) would make one endpoint hold thousands.",
    mistakes={
        "sum": Mistake("`sum` adds the values (requests); `count` counts the series.",
                       pattern=r"^\s*sum\b"),
        "no_by": Mistake("One series per endpoint: `count by (endpoint) (...)`.",
                         pattern=r"^(?!.*\bby\b)(?!.*without).*count"),
        "rate": Mistake("Count the series themselves; no `rate` is needed to count them.",
                        pattern=r"\brate\("),
        # Counting series needs no rate (the common advice for a raw counter does not apply).
        "counter_without_rate": Mistake("Counting series needs no `rate`: `count by (...)` of the "
                                        "selector itself."),
    },
    solution=f"count by (endpoint) ({BUCKETS})",
    answers=Answers(
        right=(f"count by (endpoint) ({BUCKETS})",
               f"count({BUCKETS}) by (endpoint)",
               'count by (endpoint) ({__name__="http_request_duration_seconds_bucket", job="web"})'),
        wrong=(Wrong(f"count({BUCKETS})", "One series per endpoint"),
               Wrong(f"sum by (endpoint) ({BUCKETS})", "`count` counts the series"),
               Wrong(f"count by (endpoint, status) ({BUCKETS})", OPEN_HINT),
               Wrong("vector(12)", OPEN_HINT),
               Wrong(f"count by (endpoint) ({BUCKETS} offset 1m)", OPEN_HINT)),
        context=("prometheus", "start", "at")),
))
