"""Exercises of notebooks/00-setup.ipynb: the lab's parts and where each signal comes from."""

from __future__ import annotations

from typing import Any

from curriculum.exercise_model import (
    OPEN_HINT,
    Answers,
    Exercise,
    Mistake,
    Tolerance,
    Wrong,
    add,
    choice_advice,
    close,
)

# --- the workshop's modules (00-07) ---------------------------------------------------------

LIST_COUNT = 'sum(http_request_duration_seconds_count{endpoint="api.list_todos"})'

def up_targets(prometheus: Any, at: Any = None) -> float:
    """0.1: scrape targets Prometheus has up (now, or at a moment)."""
    return float(prometheus.scalar("count(up == 1)", at))

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
                             "children.", when=lambda answer, expected, **_: close(answer, expected + 2)
                             or close(answer, expected + 3) or close(answer, expected + 4)),
        "no_self": Mistake("Prometheus scrapes its own `/metrics` too: it is a target like "
                           "the others.", when=lambda answer, expected, **_: close(answer, expected - 1)),
    },
    solution=up_targets,
    answers=Answers(
        right=(lambda d: d["targets"], lambda d: float(d["targets"]),
               # `up` is 0 or 1: its sum counts the targets that are up.
               lambda d: d["prometheus"].scalar("sum(up)", d["at"])),
        wrong=(Wrong(lambda d: d["targets"] - 1, "Prometheus scrapes its own"),
               Wrong(1, OPEN_HINT),  # "one Prometheus"
               # Copied from a run that also scraped another exporter.
               Wrong(lambda d: d["targets"] + 1, OPEN_HINT),
               Wrong(lambda d: d["targets"] + 3, "not processes")),
        context=("prometheus", "at")),
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
        "rated": Mistake("Everything counted since the processes started is the counter's raw "
                         "value: no `rate` or `increase` here (module 1 turns it into a rate).",
                         pattern=r"\b(rate|irate|increase)\("),
        # Replaces the common advice to rate a counter: this question wants the raw counter.
        "counter_without_rate": Mistake("(none: the question asks for the raw counter)"),
    },
    solution=LIST_COUNT,
    answers=Answers(
        right=(LIST_COUNT,
               'sum by (endpoint) (http_request_duration_seconds_count{endpoint=~"api.list_todos"})',
               # The +Inf bucket counts every request: it is the _count.
               'sum(http_request_duration_seconds_bucket{le="+Inf", endpoint="api.list_todos"})'),
        wrong=(Wrong("sum(http_request_duration_seconds_count)", "Only api.list_todos"),
               Wrong("vector(1)", "Only api.list_todos"),
               # The count read at the end, typed in: right at that moment only.
               Wrong(lambda d: f"vector({d['prometheus'].scalar(LIST_COUNT, d['at'])!r})",
                     "Only api.list_todos"),
               Wrong('http_request_duration_seconds_count{endpoint="api.list_todos"}', "One number"),
               Wrong('sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos"}[1m]))',
                     "no `rate` or `increase` here")),
        context=("prometheus", "start", "at")),
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
    mistakes=choice_advice({
        "a": "The histogram adds requests together: it can show that slow requests exist, "
             "never which one, nor where its time went.",
        "b": "The access line has the request's total duration and its trace id, not its parts: "
             "follow the trace id to the trace.",
        "d": "Locust measures requests from the outside, and only its own synthetic users.",
    }),
    solution="c",
))
