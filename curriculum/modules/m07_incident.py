"""Exercises of notebooks/07-incident.ipynb: from an alert to its cause, then the blind incident."""

from __future__ import annotations

from typing import Any

from curriculum.exercise_model import (
    OPEN_HINT,
    OVER_RANGE,
    Answers,
    Exercise,
    Mistake,
    Wrong,
    add,
    add_reference,
    answers,
    choice_advice,
    pinned,
)

LIST = 'http_request_duration_seconds_count{endpoint="api.list_todos"'

def _labelled(frame: Any) -> bool:
    """True when a PromQL result has labels (a constant such as `vector(1)` has none)."""
    return any(column not in ("timestamp", "value") for column in frame.columns)


# 7.1 (was 5.1) Share of api.list_todos requests answered 5xx over the last minute.

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
                                     pattern=r"^(?!.*(rate|increase)\().*_count\b"),
        "unmatched_labels": Mistake("A division matches series label by label: unsummed, each "
                                    "5xx series finds itself on the other side (a share of 1) "
                                    "or no partner at all (an empty result). Sum (or "
                                    "`sum by (endpoint)`) both sides so the labels agree.",
                                    when=lambda got, expected, **_: got.empty or (
                                        _labelled(got) and bool((got["value"] == 1).all()))),
    },
    solution='sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos",status=~"5.."}[1m])) '
    '/ sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos"}[1m]))',
    # Compared over the last 5 minutes of the synthetic traffic (tests/support/promdata.py),
    # where api.list_todos's share is a steady 0.2: `vector(0.2)`, a ratio of summed raw
    # counters, `irate` or another window would pass there (not on a run with a fault), so
    # they are not in the bank.
    answers=Answers(
        right=(f'sum(rate({LIST},status=~"5.."}}[1m])) / sum(rate({LIST}}}[1m]))',
               # The example: `sum by (endpoint)` on both sides (a constant label).
               f'sum by (endpoint) (rate({LIST},status=~"5.."}}[1m])) '
               f"/ sum by (endpoint) (rate({LIST}}}[1m]))",
               f'sum(increase({LIST},status=~"5.."}}[60s])) / sum(increase({LIST}}}[60s]))'),
        wrong=(Wrong(f'rate({LIST},status=~"5.."}}[1m]) / rate({LIST}}}[1m])',
                     "Sum (or `sum by (endpoint)`) both sides"),
               Wrong(f'{LIST},status=~"5.."}} / {LIST}}}', "Divide rates, not raw counters"),
               Wrong("vector(1)", OPEN_HINT),
               # The share at the end (0.2), typed in: wrong where the share moved.
               Wrong("vector(0.2)", OPEN_HINT),
               Wrong(f'sum({LIST},status=~"5.."}}) / sum({LIST}}})', "Divide rates, not raw counters"),
               Wrong(f'sum(rate({LIST},status=~"5.."}}[5m])) / sum(rate({LIST}}}[5m]))', OPEN_HINT),
               # Every endpoint's share: the filter forgotten (todos.toggle's fault moves it).
               Wrong('sum(rate(http_request_duration_seconds_count{status=~"5.."}[1m])) '
                     '/ sum(rate(http_request_duration_seconds_count[1m]))', OPEN_HINT)),
        context=("prometheus", "start", "at")),
))

add(Exercise(
    id="7.2", module="07-incident", kind="predict", answer_type="choice",
    question="Before the next cell prints them: of the three numbers (the injected rate, the "
             "client's share over its own requests, Prometheus's share over the last minute at "
             "`after`), which will be the **lowest**, and why?",
    options={"a": "Prometheus's: its 1-minute window also holds the endpoint's requests from "
                  "before the fault was switched on, which all succeeded and dilute the share",
             "b": "Prometheus's: it misses failed requests that happen between two scrapes",
             "c": "Prometheus's: `rate` extrapolates the 5xx series more than the total",
             "d": "none: all three are the injected rate, the fault fails exactly that share"},
    hint="Over which stretch of time does `rate(...[1m])` at the moment `after` count requests? "
         "When was the fault switched on, and did the endpoint serve requests before that?",
    why="The injected rate is a probability; the client's share is one binomial draw of it "
        "(tens of requests, so a few points off). Prometheus's share covers the whole minute "
        "before `after`, including the endpoint's requests before the fault, which all "
        "succeeded. A window longer than the fault always dilutes it: detection and alerting "
        "(module 5) live with that.",
    mistakes=choice_advice({
        "b": "A counter keeps counting between scrapes, so a request shows at the next scrape. "
             "A series born inside the window (the endpoint's first 500 creates its 5xx series: "
             "the lab does not create it ahead) has no sample before its first; `rate` "
             "extrapolates it back towards zero, an estimate at its average pace. That is off "
             "by a request or two at most, not the gap between the shares here.",
        "c": "Each side is extrapolated from its own samples: the factors are close, not equal "
             "(a series born inside the window is extended back to where it would be zero, the "
             "others to the window's edges), a small effect next to this gap.",
        "d": "The injected rate is a probability: the client's share is one draw of it over a few "
             "tens of requests, and Prometheus's share covers a whole minute, whatever happened "
             "in it.",
    }),
    solution="a",
))


# 7.3, 7.4 The blind incident of a seed: its fault kind and endpoint (derived from the seed).
def blind_kind(seed: int, duration: float) -> str:
    """The fault kind the seed draws."""
    from curriculum import blind_incident

    return blind_incident.plan(seed, duration).kind


def blind_endpoint(seed: int, duration: float) -> str:
    """The endpoint the seed's fault hits ('*' for slow_db)."""
    from curriculum import blind_incident

    return blind_incident.plan(seed, duration).endpoint or blind_incident.ALL_ENDPOINTS

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
    mistakes=choice_advice({
        "error_rate": "Were there really 5xx answers? Compare the error share with the minutes "
                      "before the incident: a latency fault answers 200, only slowly.",
        "latency": "Were the errors or the slowness on one endpoint only? If several endpoints "
                   "slowed together, the cause is shared; if there were 5xx, it is errors.",
        "slow_db": "Did every database-reading endpoint slow down, and is the database span "
                   "the long one in their traces? If only one endpoint changed, the fault is "
                   "local to it.",
    }),
    solution=blind_kind,
    # Seed 7 draws a slow_db fault (curriculum.blind_incident.plan): every endpoint, `*`.
    answers=answers("slow_db", "SLOW_DB", "latency", advice="the cause is shared",
                    context=("seed", "duration"), given={"seed": 7, "duration": 300}),
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
    mistakes=choice_advice({key: "Compare this endpoint's error share and p95 during the "
                             "incident with its own minutes before: did it change? Then check "
                             "the others `by (endpoint)`." for key in (
                                 "todos.index", "todos.add", "api.list_todos", "api.create_todo",
                                 "todos.toggle", "*")}),
    solution=blind_endpoint,
    answers=answers("*", " * ", "api.list_todos", advice="by (endpoint)",
                    context=("seed", "duration"), given={"seed": 7, "duration": 300}),
))


# The blind incident's window (not an exercise of the bank: graded by
# curriculum.blind_incident.answer with its own tolerance): when the fault went on and off.
def blind_window(run: Any) -> tuple[str, str]:
    """(start, end) of the run's fault, ISO 8601."""
    return run.fault_on.isoformat(), run.fault_off.isoformat()


add_reference("blind-window", blind_window)


# 7.5 The breakdown an incident needs: the p95 of each endpoint, `endpoint` kept beside `le`.

BUCKET = "http_request_duration_seconds_bucket"
P95_BY_ENDPOINT = f"histogram_quantile(0.95, sum by (le, endpoint) (rate({BUCKET}[1m])))"

add(Exercise(
    id="7.5", module="07-incident", kind="query", answer_type="promql",
    question="Before the charts: write the PromQL for the **p95 latency of each endpoint** over "
             "the last minute (one series per `endpoint`), the breakdown that tells a slow "
             "endpoint from a slow database.",
    hint="The quantile of a histogram comes from its `_bucket` counters, rated, then added per "
         "bucket boundary. Which labels must survive the sum for one quantile per endpoint?",
    why="`histogram_quantile` needs the buckets of every process and status added per `le`, and "
        "one quantile per endpoint needs `endpoint` kept beside `le`. Without the sum, each "
        "status and method of an endpoint gets its own quantile; without `le`, nothing is left to "
        "interpolate and the answer is empty. One endpoint rising alone points at that endpoint; "
        "all the endpoints that read the database rising together point at what they share.",
    mistakes={
        "no_sum": Mistake("Add the buckets first: `sum by (le, endpoint) (rate(...))`. Without the "
                          "sum, every status and method of an endpoint gets a quantile of its own.",
                          pattern=r"histogram_quantile\(\s*0?\.95\s*,\s*rate"),
        "no_endpoint": Mistake("One series per endpoint: keep `endpoint` in the `by (...)` beside "
                               "`le`.", pattern=r"by\s*\(\s*le\s*\)(?!.*endpoint)|^(?!.*endpoint).*sum"),
    },
    solution=P95_BY_ENDPOINT,
    answers=Answers(
        right=(P95_BY_ENDPOINT,
               f"histogram_quantile(.95, sum(rate({BUCKET}[60s])) by (endpoint, le))",
               f"histogram_quantile(0.95, sum without (method, status, instance, job, environment) "
               f"(rate({BUCKET}[1m])))"),
        wrong=(Wrong(f"histogram_quantile(0.95, rate({BUCKET}[1m]))", "Add the buckets first"),
               Wrong(f"histogram_quantile(0.95, sum by (le) (rate({BUCKET}[1m])))", "keep `endpoint`"),
               Wrong(f"histogram_quantile(0.95, sum by (endpoint) (rate({BUCKET}[1m])))", "`le`"),
               Wrong("vector(0.25)", OPEN_HINT),
               Wrong(pinned(P95_BY_ENDPOINT), OPEN_HINT)),
        context=OVER_RANGE,
    ),
))


# 7.6 Which endpoint breaks the latency objective: the slow share, per endpoint.

SLOW_SHARE = (f'1 - sum by (endpoint) (rate({BUCKET}{{le="0.25"}}[1m])) '
              "/ sum by (endpoint) (rate(http_request_duration_seconds_count[1m]))")

add(Exercise(
    id="7.6", module="07-incident", kind="query", answer_type="promql",
    question="The latency objective is \"95% of requests within 0.25 s\". Write the PromQL for the "
             "**share of each endpoint's requests slower than 0.25 s** over the last minute (one "
             "series per `endpoint`, 0 for an endpoint that is always fast).",
    hint="The bucket with `le=\"0.25\"` counts the requests at or under 0.25 s. Rate it and the "
         "request counter, add each up per endpoint, and turn the share of fast requests into "
         "the share of slow ones.",
    why="`le=\"0.25\"` is a bucket boundary, so the share of requests within the objective is an "
        "exact ratio of two counters (no quantile, no interpolation); one minus it is the slow "
        "share, the latency SLI's bad events. Above 5% an endpoint breaks the objective on its "
        "own; a p95 chart says the same less directly, through an interpolated estimate.",
    mistakes={
        "fast_share": Mistake("That is the share of requests *within* 0.25 s; the question asks "
                              "for the slow ones: one minus it.",
                              pattern=r"^(?!\s*1\s*-)(?!.*-\s*sum).*le\s*=\s*\"0\.25\""),
        "no_endpoint": Mistake("One series per endpoint: `sum by (endpoint)` on both sides.",
                               pattern=r"^(?!.*endpoint).*sum"),
        "quantile": Mistake("A quantile answers \"how slow is the 95th percentile\"; the question "
                            "asks what share is slower than 0.25 s: a ratio of the `le=\"0.25\"` "
                            "bucket and the count.", pattern=r"histogram_quantile"),
    },
    solution=SLOW_SHARE,
    answers=Answers(
        right=(SLOW_SHARE,
               f'(sum by (endpoint) (rate(http_request_duration_seconds_count[60s])) - sum by (endpoint) '
               f'(rate({BUCKET}{{le="0.25"}}[60s]))) / sum by (endpoint) '
               "(rate(http_request_duration_seconds_count[60s]))",
               f'1 - sum(rate({BUCKET}{{le="0.25"}}[1m])) by (endpoint) / '
               f'sum(rate({BUCKET}{{le="+Inf"}}[1m])) by (endpoint)'),
        wrong=(Wrong(f'sum by (endpoint) (rate({BUCKET}{{le="0.25"}}[1m])) / sum by (endpoint) '
                     "(rate(http_request_duration_seconds_count[1m]))", "one minus it"),
               Wrong(f'1 - sum(rate({BUCKET}{{le="0.25"}}[1m])) / '
                     "sum(rate(http_request_duration_seconds_count[1m]))", "`sum by (endpoint)`"),
               Wrong(P95_BY_ENDPOINT, "share is slower than 0.25 s"),
               Wrong("vector(0.2)", OPEN_HINT),
               Wrong(pinned(SLOW_SHARE), OPEN_HINT)),
        context=OVER_RANGE,
    ),
))
