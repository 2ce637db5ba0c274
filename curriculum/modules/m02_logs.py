"""Exercises of notebooks/02-logs.ipynb: the JSON access lines, request ids and jq."""

from __future__ import annotations

import numpy as np
import pandas as pd

from curriculum.exercise_model import (
    OPEN_HINT,
    Exercise,
    Mistake,
    Tolerance,
    Wrong,
    add,
    answers,
    choice_advice,
    close,
    close_to,
    more_right,
    same_series,
    worker_gap,
)


# 2.1 Number of 5xx answers per endpoint (only endpoints that had any).
def errors_per_endpoint(access: pd.DataFrame) -> pd.Series:
    """5xx access lines counted per endpoint."""
    return access[access["status_code"] >= 500].groupby("endpoint").size()

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
                              when=lambda answer, expected, access: same_series(
                                  answer, access.groupby("endpoint").size())),
        "count_columns": Mistake("`.count()` counts non-empty cells per column and gives a "
                                 "table; `.size()` counts rows and gives one Series.",
                                 when=lambda answer, expected, **_: hasattr(answer, "columns")),
    },
    solution=errors_per_endpoint,
    answers=more_right(answers(
            lambda d: d["access"][d["access"]["status_code"] >= 500].groupby("endpoint").size(),
            lambda d: d["access"].query("status_code >= 500")["endpoint"].value_counts(),
            lambda d: d["access"].groupby("endpoint").size(),
            advice="filter `status_code >= 500`", context=("access",), more_wrong=(
                Wrong(4, OPEN_HINT),  # a count, not per endpoint
                # A table copied from another run; and a filter right only on a run whose
                # 5xx were all 500s (this one's are 503s).
                Wrong(pd.Series({"api.list_todos": 5, "todos.toggle": 12}),
                      OPEN_HINT),
                Wrong(lambda d: d["access"][d["access"]["status_code"] == 500].groupby("endpoint").size(),
                      OPEN_HINT),
                Wrong(lambda d: d["access"][d["access"]["status_code"] >= 500].groupby("endpoint").count(),
                      "`.size()` counts rows"),
            )),
            # The app logs a 5xx answer's access line, and only that, at level ERROR.
            lambda d: d["access"][d["access"]["level"] == "ERROR"].groupby("endpoint").size(),
            lambda d: d["access"][d["access"]["status_code"].between(500, 599)].groupby("endpoint").size()),
))


# 2.2 The p95 of duration_ms of api.list_todos, from the logs alone.
def list_p95_ms(access: pd.DataFrame) -> float:
    """95th percentile (linear interpolation) of the list endpoint's durations."""
    return float(access.loc[access["endpoint"] == "api.list_todos", "duration_ms"].quantile(0.95))

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
                                 when=lambda answer, expected, access: close(
                                     answer, access["duration_ms"].quantile(0.95))),
        "mean": Mistake("That is the mean of the endpoint's durations; the p95 is "
                        "`.quantile(0.95)`, the duration 95% of requests stay under.",
                        when=lambda answer, expected, access: close(answer, access.loc[
                            access["endpoint"] == "api.list_todos", "duration_ms"].mean())),
    },
    solution=list_p95_ms,
    answers=more_right(answers(
            lambda d: d["access"].loc[d["access"]["endpoint"] == "api.list_todos", "duration_ms"]
            .quantile(0.95),
            lambda d: round(float(d["access"].query("endpoint == 'api.list_todos'")["duration_ms"]
                                  .quantile(0.95)), 4),
            lambda d: d["access"].loc[d["access"]["endpoint"] == "api.list_todos", "duration_ms"].mean(),
            advice="mean", context=("access",), more_wrong=(
                Wrong(250.0, OPEN_HINT),  # the objective, in ms
                # Right only on a run where the 95% rank falls on a sample.
                Wrong(lambda d: d["access"].loc[d["access"]["endpoint"] == "api.list_todos", "duration_ms"]
                      .quantile(0.95, interpolation="nearest"), OPEN_HINT),
                Wrong(lambda d: d["access"]["duration_ms"].quantile(0.95), "p95 of every endpoint"),
            )),
            lambda d: d["access"].groupby("endpoint")["duration_ms"].quantile(0.95)["api.list_todos"],
            # numpy's default is pandas' linear interpolation; three decimals are within 0.001.
            lambda d: round(float(np.percentile(
                d["access"].loc[d["access"]["endpoint"] == "api.list_todos", "duration_ms"], 95)), 3)),
))


# 2.3 Queue time of an export from the logs: access line of the POST to the worker's first line.
def export_queue_seconds(frame: pd.DataFrame, request_id: str) -> float:
    """Seconds between the web's access line and the worker's first line of the same request."""
    mine = frame[frame["request_id"] == request_id]
    sent = mine.loc[mine["logger"] == "app.access", "timestamp"].min()
    picked = mine.loc[mine["service"] == "todo-worker", "timestamp"].min()
    return float((picked - sent).total_seconds())


def queue_in_timedeltas(frame: pd.DataFrame, request_id: str) -> float:
    """2.3 written differently: a Timedelta divided by one second is a number of seconds."""
    mine = frame.query("request_id == @request_id")
    sent = mine.loc[mine["logger"] == "app.access", "timestamp"].iloc[0]
    return float((mine.loc[mine["service"] == "todo-worker", "timestamp"].min() - sent)
                 / pd.Timedelta(seconds=1))


def gap_to_first_task(frame: pd.DataFrame, request_id: str) -> float:
    """A wrong 2.3: to the worker's first line of any task, not of this request's."""
    sent = frame.loc[(frame["request_id"] == request_id) & (frame["logger"] == "app.access"), "timestamp"]
    picked = frame.loc[frame["service"] == "todo-worker", "timestamp"].min()
    return float((picked - sent.min()).total_seconds())

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
                             when=lambda answer, expected, frame, request_id: close_to(
                                 answer, worker_gap(frame, request_id, last=True))),
        "milliseconds": Mistake("In seconds, not milliseconds: `.total_seconds()`.",
                                when=lambda answer, expected, **_: close_to(answer, expected * 1000)),
    },
    solution=export_queue_seconds,
    answers=more_right(answers(
            lambda d: worker_gap(d["frame"], d["request_id"]),
            lambda d: round(worker_gap(d["frame"], d["request_id"]), 3),
            lambda d: worker_gap(d["frame"], d["request_id"], last=True),
            advice="*first* line", context=("frame", "request_id"),
            given={"frame": lambda d: d["log_frame"], "request_id": lambda d: d["export_request"]},
            more_wrong=(
                Wrong(0.5, OPEN_HINT),
                # The worker's first line of any task: right only on a run with one export.
                Wrong(lambda d: gap_to_first_task(d["frame"], d["request_id"]),
                      OPEN_HINT),
                Wrong(lambda d: worker_gap(d["frame"], d["request_id"]) * 1000, "not milliseconds"),
            )),
            lambda d: queue_in_timedeltas(d["frame"], d["request_id"])),
))


# 2.4 What the ERROR lines are: reports of 5xx answers (access lines) unless an exception's
#     own line is among them.
def error_lines_kind(frame: pd.DataFrame) -> str:
    """'a' when every ERROR line is an access line of a 5xx answer, else 'b'."""
    access = frame["logger"] == "app.access"
    return "a" if bool(access.all()) and bool((frame.loc[access, "status_code"] >= 500).all()) else "b"

add(Exercise(
    id="2.4", module="02-logs", kind="predict", answer_type="choice",
    question="Before the next cell shows them: what will most of the run's ERROR lines in the "
             "web log (`error_lines`) be, and where would you look next for the *cause* of "
             "the failures?",
    options={"a": "access lines reporting 5xx answers; they say *which* requests failed, not "
                  "why: look at the trace (its attributes) or the app's other lines for an "
                  "exception",
             "b": "exceptions with tracebacks: the cause is in the lines themselves",
             "c": "worker failures: the exports broke",
             "d": "Caddy's proxy errors: the app was unreachable"},
    hint="Which part of the app writes one line for every request, whatever its outcome, and "
         "at which level for a 5xx? Does a fault the lab injects make the code raise an "
         "exception?",
    why="Every 5xx answer is logged at level ERROR by the access logger: a *report*. An "
        "exception raised by the code would leave a line of its own with the traceback; an "
        "injected fault leaves none, because the code did exactly what the switchboard told "
        "it. The trace of a failed request carries `fault.injected` and the fault's name (not "
        "during a blind incident, whose faults are quiet).",
    mistakes=choice_advice({
        "b": "Read the `logger` column: these are `app.access` lines, one per failed request, "
             "with no traceback.",
        "c": "Look at the `service` column: the lines come from the web app.",
        "d": "Caddy's errors would be in Caddy's log (`lab logs caddy`), not in the app's; "
             "the app itself answered these requests.",
    }),
    solution=error_lines_kind,
    answers=answers("a", "A", "b", advice="`logger` column", context=("frame",),
                    given={"frame": lambda d: d["log_frame"][(d["log_frame"]["level"] == "ERROR")
                                                             & (d["log_frame"]["logger"] == "app.access")]}),
))


# 2.5 jq: the request ids of the access lines answered 5xx.

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
    solution='select(.logger == "app.access" and .status_code >= 500) | .request_id',
    answers=more_right(answers(
                    'select(.logger == "app.access" and .status_code >= 500) | .request_id',
                    '-s .[] | select(.status_code >= 500 and .logger == "app.access") | .request_id',
                    'select(.logger == "app.access" and .status_code >= 400) | .request_id',
                    advice="`.status_code >= 500`", context=("log",), given={"log": lambda d: d["web_log"]},
                    more_wrong=(
                        Wrong("1", "Print only the id"),
                        # Right only on a run whose 5xx were all 500s (this one's are 503s).
                        Wrong("select(.status_code == 500) | .request_id",
                              OPEN_HINT),
                        Wrong('select(.logger == "app.access" and .status_code >= 500)',
                              "Print only the id"),
                    )),
                    'select(.logger == "app.access") | select(.status_code > 499) | .request_id'),
))


# 2.6 Which witness answers an exact high percentile: the log keeps each value, at a price.

add(Exercise(
    id="2.6", module="02-logs", kind="interpret", answer_type="choice",
    question="Someone asks for the **exact p99.9 latency** of `api.list_todos` over last Tuesday. "
             "The lab has the request histogram in Prometheus, the access log, the traces and "
             "Locust's reports. Which can answer exactly, and at what price?",
    options={"a": "the access log: it keeps every request's `duration_ms`, so any percentile is "
                  "exact, for as long as the lines are kept and at the cost of a line per request",
             "b": "the histogram: Prometheus keeps every observation, so `histogram_quantile(0.999, "
                  "...)` is exact",
             "c": "the traces: every request has a trace with its duration",
             "d": "Locust's report: it measured every request"},
    hint="For each witness, ask what it stores per request: the value itself, a count in a "
         "bucket, a sample of the requests, or only the requests it sent itself?",
    why="Only a record per request keeps each value: the access log has every `duration_ms`, so a "
        "percentile is a sort away, exact, while the log is retained. The histogram keeps counts "
        "per bucket (a p99.9 is interpolated inside one bucket, module 4); traces are sampled in "
        "production and kept for days (module 6); Locust saw only its own requests, rounded. The "
        "price of exactness is a line per request, stored and shipped.",
    mistakes=choice_advice({
        "b": "A histogram stores how many observations fell under each bound, not the values: "
             "the quantile is interpolated inside a bucket, only as exact as the bucket is narrow.",
        "c": "Traces are usually sampled (one request in ten, a hundred) and kept for a short "
             "time: they explain single requests, they do not count all of them.",
        "d": "Locust measured the requests it sent during a load test, from the client side and "
             "rounded; last Tuesday's users were not Locust.",
    }),
    solution="a",
))
