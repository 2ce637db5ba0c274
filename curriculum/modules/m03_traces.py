"""Exercises of notebooks/03-traces.ipynb: spans, the critical path and the broker between web and worker."""

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
    choice_advice,
    close_to,
    queue_ms,
)


def trace_of_slowest(access: pd.DataFrame, spans: list[Any]) -> list[Any]:
    """The spans of the trace of the slowest access line (the answers' data for 3.2)."""
    trace_id = access.nlargest(1, "duration_ms")["trace_id"].iloc[0]
    return [s for s in spans if s.trace_id == trace_id]


def children_cover(spans: list[Any]) -> float:
    """The share of the root span its direct children cover."""
    from analysis import traces

    root = traces.root_of(spans).span
    return sum(s.duration_ms for s in spans if s.parent_id == root.span_id) / root.duration_ms


# 3.1 The trace id of the slowest request of the run: the log line leads to the trace.
def slowest_trace_id(access: pd.DataFrame) -> str:
    """trace_id of the access line with the largest duration_ms."""
    return str(access.nlargest(1, "duration_ms")["trace_id"].iloc[0])

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
                           # Among traced lines: probes (/healthz) carry no trace id.
                           when=lambda answer, expected, access: answer == str(access.dropna(
                               subset=["trace_id"]).nsmallest(1, "duration_ms")["trace_id"].iloc[0])),
    },
    solution=slowest_trace_id,
    answers=Answers(
        right=(lambda d: d["access"].nlargest(1, "duration_ms")["trace_id"].iloc[0],
               lambda d: str(d["access"].sort_values("duration_ms").iloc[-1].trace_id),
               # idxmax, and the hex id in capitals (ids compare without case).
               lambda d: str(d["access"].loc[d["access"]["duration_ms"].idxmax(), "trace_id"]).upper()),
        wrong=(Wrong(lambda d: d["access"].nlargest(1, "duration_ms")["request_id"].iloc[0], "`trace_id`"),
               Wrong(lambda d: d["access"].dropna(subset=["trace_id"]).nsmallest(1, "duration_ms")[
                   "trace_id"].iloc[0], "*largest* `duration_ms`"),
               # A constant: the W3C specification's example trace id.
               Wrong("4bf92f3577b34da6a3ce929d0e0e4736", OPEN_HINT),
               # Right only on a run whose slowest request is among the lines `head()` shows.
               Wrong(lambda d: d["access"].head(10).nlargest(1, "duration_ms")["trace_id"].iloc[0],
                     OPEN_HINT)),
        context=("access",)),
))


# 3.2 Where the slowest request's time went: children cover most of the root, or not.
def where_time_went(spans: list[Any]) -> str:
    """'a' when the root's direct children cover more than half of it, else 'b'."""
    root = next(s for s in spans if s.parent_id is None)
    covered = sum(s.end_ns - s.start_ns for s in spans if s.parent_id == root.span_id)
    return "a" if covered > 0.5 * (root.end_ns - root.start_ns) else "b"

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
    mistakes=choice_advice({
        "a": "Add up the durations of the root's direct children: if they cover less than half "
             "of the root, most of the time is the root's own (app code, or something not "
             "instrumented).",
        "b": "Add up the durations of the root's direct children: they cover most of the root, "
             "so the time is in them (database and broker calls), not in the app's own code.",
        "c": "The request's spans are all in todo-web; a web request never waits for the worker.",
        "d": "The root span is the app's server span: it starts when the app got the request, "
             "after Caddy.",
    }),
    solution=where_time_went,
    answers=answers(
            lambda d: "a" if children_cover(d["spans"]) > 0.5 else "b",
            lambda d: ("a" if children_cover(d["spans"]) > 0.5 else "b").upper(),
            lambda d: "b" if children_cover(d["spans"]) > 0.5 else "a",
            advice="direct children", context=("spans",),
            given={"spans": lambda d: trace_of_slowest(d["access"], d["spans"])}),
))


# 3.3 Queue time of an export from its trace: producer span's end to consumer span's start.
def export_queue_ms(spans: list[Any]) -> float:
    """Milliseconds the export's message waited in the broker."""
    producer = next(s for s in spans if s.kind == "PRODUCER")
    consumer = next(s for s in spans if s.kind == "CONSUMER")
    return (consumer.start_ns - producer.end_ns) / 1e6

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
                              when=lambda answer, expected, spans: close_to(
                                  answer, queue_ms(spans, from_start=True))),
        "seconds": Mistake("In milliseconds: divide nanoseconds by 1e6.",
                           when=lambda answer, expected, **_: close_to(answer, expected / 1000)),
    },
    solution=export_queue_ms,
    # The recorded export (00c8c131...) waited 216.901 ms; the run's other exports 1160.776 and 196.298 ms.
    answers=Answers(
        right=(lambda d: queue_ms(d["spans"]),
               lambda d: round(queue_ms(d["spans"]), 2),
               lambda d: (next(s.start_ns for s in d["spans"] if s.name.startswith("run/"))
                          - next(s.end_ns for s in d["spans"] if s.name.startswith("apply_async/")))
               / 1_000_000),
        wrong=(Wrong(lambda d: queue_ms(d["spans"], from_start=True), "*end* of the producer"),
               Wrong(lambda d: queue_ms(d["spans"]) / 1000, "divide nanoseconds by 1e6"),
               Wrong(0, OPEN_HINT),  # a constant: "the worker took it at once"
               Wrong(775.35, OPEN_HINT)),  # hard-coded from another export's trace
        context=("spans",),
        given={"spans": lambda d: [s for s in d["spans"] if s.trace_id == d["export_trace"]]}),
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
    mistakes=choice_advice({
        "b": "A synchronous call to another service is on the caller's critical path: what "
             "matters is whether the caller waited.",
        "c": "Its duration does not matter: it started after the request had answered.",
        "d": "It is in the same trace, a child of the producer span: the Celery headers carried "
             "the context.",
    }),
    solution="a",
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
    mistakes=choice_advice({
        "b": "The middleware reads `traceparent` exactly so that the server's spans can join "
             "the caller's trace.",
        "c": "Every request handled by a traced app has a trace id, adopted or new.",
        "d": "The trace id is adopted either way; sampling (the flags) only decides whether "
             "spans are recorded.",
    }),
    solution="a",
))
