"""Exercises of notebooks/01-metrics.ipynb: counters, rates, histograms and vector matching in PromQL."""

from __future__ import annotations

from curriculum.exercise_model import (
    OPEN_HINT,
    OVER_RANGE,
    Answers,
    Exercise,
    Mistake,
    Tolerance,
    Wrong,
    add,
    answers,
    choice_advice,
    close_to,
    more_right,
    pinned,
)

# 1.1 Requests per second per endpoint over the last minute: rate each series, then sum
#     by the label you want to keep.

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
    solution="sum by (endpoint) (rate(http_request_duration_seconds_count[1m]))",
    answers=more_right(answers(
            "sum by (endpoint) (rate(http_request_duration_seconds_count[1m]))",
            # Postfix grouping, and `method`, which each endpoint has only one of: same series.
            "sum(rate(http_request_duration_seconds_count{job='web'}[60s])) by (method, endpoint)",
            "sum by (status) (rate(http_request_duration_seconds_count[1m]))",
            advice="`endpoint`", context=OVER_RANGE, more_wrong=(
                Wrong("vector(1)", OPEN_HINT),
                Wrong(pinned("sum by (endpoint) (rate(http_request_duration_seconds_count[1m]))"),
                      OPEN_HINT),
                Wrong("sum(rate(http_request_duration_seconds_count[1m]))", "add `by (endpoint)`"),
            )),
            # increase over a minute is 60 times the per-second rate.
            "sum by (endpoint) (increase(http_request_duration_seconds_count[1m])) / 60"),
))


# 1.2 p95 latency of the JSON list endpoint alone: filter the buckets, keep `le` in the sum.

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
    solution="histogram_quantile(0.95, sum by (le) "
    '(rate(http_request_duration_seconds_bucket{endpoint="api.list_todos"}[1m])))',
    answers=more_right(answers(
            'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket'
            '{endpoint="api.list_todos"}[1m])))',
            # The example: `endpoint` kept in the sum is constant across the answer.
            'histogram_quantile(0.95, sum by (le, endpoint) (rate(http_request_duration_seconds_bucket'
            '{endpoint="api.list_todos"}[1m])))',
            'histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket'
            '{endpoint="api.list_todos"}[1m])))',
            advice="Keep `le`", context=OVER_RANGE, more_wrong=(
                Wrong("0.25", "Only api.list_todos"),  # the objective, not a measurement
                # Right only on a run where api.list_todos never failed.
                Wrong('histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket'
                      '{endpoint="api.list_todos", status="200"}[1m])))',
                      OPEN_HINT),
                Wrong("histogram_quantile(0.95, sum by (le) "
                      "(rate(http_request_duration_seconds_bucket[1m])))",
                      "without it you get the p95 of every endpoint"),
                Wrong('histogram_quantile(95, sum by (le) (rate(http_request_duration_seconds_bucket'
                      '{endpoint="api.list_todos"}[1m])))', "p95 is the 0.95 quantile"),
                # The p95 at the end, typed in: right at that moment, wrong where the latency moved.
                Wrong(lambda d: "vector({:.6g})".format(d["prometheus"].scalar(
                    'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket'
                    '{endpoint="api.list_todos"}[1m])))', d["at"])), "Only api.list_todos"),
            )),
            'histogram_quantile(.95, sum(rate(http_request_duration_seconds_bucket'
            '{endpoint="api.list_todos"}[60s])) by (le))'),
))

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
    mistakes=choice_advice({
        "a": "A 10 s window holds only two samples at a 5 s scrape: the line is far noisier than "
             "[1m], and has gaps.",
        "c": "There are requests every second; the problem is the number of *samples* per "
             "window, not requests.",
        "d": "Averaging over less time makes a line jumpier, not smoother.",
    }),
    solution="b",
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
    mistakes=choice_advice({
        "b": "A counter is an integer in the app; a request is counted once, when it ends.",
        "c": "Rounding errors are around 1e-12, not fractions of a request.",
        "d": "A reset is handled by `increase` (it adds the post-reset value); it would not "
             "make the count fractional.",
    }),
    solution="a",
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
    mistakes=choice_advice({
        "a": "Counting each endpoint equally answers 'how bad is a typical endpoint', not 'what "
             "share of requests failed': 5 failures among 10 requests weigh as much as 0 among 1000.",
        "c": "Extrapolation is worked out per series, from each one's own first and last samples: "
             "in a ratio of series scraped together it nearly cancels, never by enough to turn "
             "0.5% into 25%.",
        "d": "`rate` and `increase` of one series differ by the window's length, the same for "
             "numerator and denominator: that factor cancels in a ratio.",
    }),
    solution="b",
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
    mistakes=choice_advice({
        "a": "The buckets are added together across all bounds: nothing is left to interpolate.",
        "b": "PromQL does not complain: series without `le` are silently ignored.",
        "d": "The mean would need `_sum / _count`; `histogram_quantile` never computes it.",
    }),
    solution="c",
))

# 1.7 The SLI of the latency objective: requests within 0.25 s over all requests (exact: a
#     bucket boundary).
SLI = ('sum(rate(http_request_duration_seconds_bucket{le="0.25"}[1m])) '
       "/ sum(rate(http_request_duration_seconds_count[1m]))")

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
    solution=SLI,
    answers=more_right(answers(
            'sum(rate(http_request_duration_seconds_bucket{le="0.25"}[1m])) '
            "/ sum(rate(http_request_duration_seconds_count[1m]))",
            # `job` is the same on every series: a constant label.
            'sum by (job) (rate(http_request_duration_seconds_bucket{le="0.25",job="web"}[60s])) '
            "/ sum by (job) (rate(http_request_duration_seconds_count[60s]))",
            "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))",
            advice="a share of requests, not a duration", context=OVER_RANGE, more_wrong=(
                Wrong("vector(1)", "Use the bucket at the objective"),
                # The share before the fault, typed in; and the query pinned to its moment.
                Wrong("0.92", "Use the bucket at the objective"),
                Wrong(pinned(SLI), OPEN_HINT),
                Wrong('sum(rate(http_request_duration_seconds_bucket{le="0.5"}[1m])) '
                      "/ sum(rate(http_request_duration_seconds_count[1m]))",
                      "Use the bucket at the objective"),
            )),
            # The +Inf bucket counts every request (it is the _count); increase's factor cancels.
            'sum(increase(http_request_duration_seconds_bucket{le="0.25"}[1m])) '
            '/ sum(increase(http_request_duration_seconds_bucket{le="+Inf"}[1m]))'),
))


# 1.8 Each endpoint's share of all requests: many (endpoints) to one (the total).
SHARES = ("sum by (endpoint) (rate(http_request_duration_seconds_count[1m])) "
          "/ ignoring (endpoint) group_left sum(rate(http_request_duration_seconds_count[1m]))")

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
    solution=SHARES,
    answers=more_right(answers(
            "sum by (endpoint) (rate(http_request_duration_seconds_count[1m])) "
            "/ ignoring (endpoint) group_left sum(rate(http_request_duration_seconds_count[1m]))",
            # The total as a plain number: no matching at all.
            "sum(rate(http_request_duration_seconds_count[60s])) by (endpoint) "
            "/ scalar(sum(rate(http_request_duration_seconds_count[60s])))",
            "sum by (endpoint) (rate(http_request_duration_seconds_count[1m])) "
            "/ sum(rate(http_request_duration_seconds_count[1m]))",
            advice="group_left", context=OVER_RANGE, more_wrong=(
                Wrong("vector(1)", OPEN_HINT),
                Wrong(pinned(SHARES), OPEN_HINT),
                Wrong("sum by (endpoint) (rate(http_request_duration_seconds_count[1m])) "
                      "/ sum by (endpoint) (rate(http_request_duration_seconds_count[1m]))",
                      "divided by itself"),
            )),
            "sum by (endpoint) (increase(http_request_duration_seconds_count[1m])) "
            "/ on () group_left sum(increase(http_request_duration_seconds_count[1m]))"),
))


# 1.9 A window shorter than the step: each point sees only its window; added up, w/step.

add(Exercise(
    id="1.9", module="01-metrics", kind="predict", answer_type="number",
    question="A chart draws `sum(increase(http_request_duration_seconds_count[15s]))` with **one "
             "point every 60 s** over the run. Add up all its points: what **share of the "
             "requests** counted over those minutes does that sum hold? (a number from 0 to 1)",
    hint="Each point is computed from the samples of the window before it, and from nothing "
         "else. Draw one minute on a line, mark the point at its end, and shade what its window "
         "covers. What covers the rest of the minute?",
    why="Each point looks at the 15 s before it; the other 45 s of each minute fall between "
        "windows and no point ever reads them. With steady traffic the sum holds a quarter of "
        "the requests (15 s of every 60 s); uneven traffic moves it around that, and a burst that "
        "falls between windows is lost entirely. Window ≥ step, always (Grafana's "
        "`$__rate_interval` is built that way).",
    tolerance=Tolerance(abs=0.05, reason="a predicted share; uneven traffic moves the real one"),
    mistakes={
        "all": Mistake("Each point sees only its own window: what happens to the requests between "
                       "the end of one window and the start of the next point's window?",
                       when=lambda answer, expected, **_: close_to(answer, 1.0, rel=0.1)),
        "inverted": Mistake("A share is at most 1: compare the window's length with the step's, "
                            "the smaller over the larger.",
                            when=lambda answer, expected, **_: close_to(answer, 4.0, rel=0.125)),
        "window_in_minutes": Mistake("15 s is a quarter of a minute, not 15 hundredths of it.",
                                     when=lambda answer, expected, **_: close_to(answer, 0.15, rel=0.13)),
    },
    solution=0.25,
    answers=Answers(
        right=(0.25, 1 / 4, 0.27),
        wrong=(Wrong(1.0, "between the end of one window"), Wrong(4, "at most 1"),
               Wrong(0.15, "quarter of a minute"), Wrong(0.5, "Open the hint")),
    ),
))
