"""Exercises of notebooks/04-verification.ipynb: each number checked against independent ground truth."""

from __future__ import annotations

import math
from datetime import timedelta

from curriculum.exercise_model import (
    OPEN_HINT,
    Answers,
    Exercise,
    Mistake,
    Tolerance,
    Wrong,
    add,
    bucket,
    choice_advice,
    close_to,
)

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
    mistakes=choice_advice({
        "b": "A slow request is counted once by both, when it ends.",
        "c": "5xx answers are requests like any other, in both counts.",
        "d": "The scrape interval does not matter for a raw counter difference between quiet "
             "edges: the counter holds every request whenever it is read.",
    }),
    solution="a",
))


# 4.2 The p95 check's tolerance: the width of the bucket that holds the true p95.
def p95_bucket_width(p95_s: float) -> float:
    """Width in seconds of the histogram bucket holding p95_s."""
    bounds = (0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
    upper = next(b for b in bounds[1:] if p95_s <= b)
    return upper - bounds[bounds.index(upper) - 1]

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
                               when=lambda answer, expected, p95_s: close_to(
                                   answer, bucket(p95_s)[1])),
        "milliseconds": Mistake("In seconds, as the bounds are.",
                                when=lambda answer, expected, **_: close_to(answer, expected * 1000)),
    },
    solution=p95_bucket_width,
    # 68 ms lies in the bucket (50 ms, 100 ms].
    answers=Answers(
        right=(0.05, 0.1 - 0.05, lambda d: bucket(d["p95_s"])[1] - bucket(d["p95_s"])[0]),
        wrong=(Wrong(0.1, "not its upper bound"),
               Wrong(50, "In seconds, as the bounds are"),  # the width in milliseconds
               Wrong(0.01, OPEN_HINT),  # a constant: "10 ms, a round number"
               # Hard-coded from a run whose p95 was 40 ms: the bucket (25 ms, 50 ms].
               Wrong(0.025, OPEN_HINT)),
        context=("p95_s",), given={"p95_s": 0.068}),
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
    mistakes=choice_advice({
        "a": "The app's duration and the histogram come from the same hook and agree (the "
             "Prometheus checks pass): the extra time is outside the app.",
        "c": "Rounding moves a value by at most one step (10 ms here), and applies to the median "
             "as much as to the p95.",
        "d": "Locust's and the log's percentiles use no histogram buckets.",
    }),
    solution="b",
))


# 4.4 Four binomial standard deviations of an observed share.
def binomial_4_sigma(n: int, rate: float) -> float:
    """4 * sqrt(p (1 - p) / n)."""
    return 4 * (rate * (1 - rate) / n) ** 0.5

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
                             when=lambda answer, expected, **_: close_to(answer, expected / 4)),
        "no_sqrt": Mistake("The standard deviation is the square root of p(1-p)/n.",
                           when=lambda answer, expected, n, rate: close_to(
                               answer, 4 * rate * (1 - rate) / n)),
    },
    solution=binomial_4_sigma,
    # 4 * sqrt(0.2 * 0.8 / 55) = 0.2157...
    answers=Answers(
        right=(4 * (0.2 * 0.8 / 55) ** 0.5, round(4 * (0.2 * 0.8 / 55) ** 0.5, 4), 0.216,
               lambda d: 4 * math.sqrt(d["rate"] * (1 - d["rate"]) / d["n"])),
        wrong=(Wrong((0.2 * 0.8 / 55) ** 0.5, "multiply by 4"),
               Wrong(4 * 0.2 * 0.8 / 55, "the square root of p(1-p)/n"),
               Wrong(0.05, OPEN_HINT),  # a constant: "5%, a usual tolerance"
               Wrong(0.16, OPEN_HINT)),  # hard-coded from a run with n = 100
        context=("n", "rate"), given={"n": 55, "rate": 0.2}),
))


# 4.5 The exact count of the last minute: the raw counter now minus the raw counter a minute
#     ago, summed on each side; no extrapolation, and a series born in the minute counted.

COUNT = "http_request_duration_seconds_count"

add(Exercise(
    id="4.5", module="04-verification", kind="query", answer_type="promql",
    question="Write the PromQL for the **exact number of requests** the app counted in the **minute "
             "before** the moment of evaluation: one number, a whole number, nothing estimated.",
    hint="A counter's value is a count of requests since its process started. Which two values "
         "of it, taken at which two moments, differ by exactly the requests of the minute? "
         "`offset` moves a selector back in time. Add up the series of each side.",
    why="The counter's values at two moments differ by exactly the requests counted between the "
        "samples they read, so `sum(x) - sum(x offset 1m)` is a whole number (as long as no "
        "process restarted in between: a reset makes it wrong, which is why 4.1's check wants "
        "quiet edges). `increase(x[1m])` estimates the same thing and extrapolates to the "
        "window's edges; `sum(x - x offset 1m)` drops every series that did not exist a minute "
        "ago, such as an endpoint's first 5xx.",
    mistakes={
        "increase": Mistake("`increase` extrapolates the increase it saw to the window's edges: an "
                            "estimate, rarely a whole number. Subtract two raw values of the counter.",
                            pattern=r"\b(increase|rate|irate)\s*\("),
        "born_in_window": Mistake(
            "Subtracting series by series drops every series that has no value a minute ago (an "
            "endpoint's first 5xx creates its series): sum each side first, then subtract.",
            pattern=r"^sum\s*\((?!.*\)\s*-\s*sum).*offset"),
        "since_start": Mistake("That counts everything since the processes started: subtract the "
                               "value of a minute ago (`offset 1m`).",
                               pattern=r"^(?!.*offset)(?!.*@).*_count"),
        "another_offset": Mistake("The minute before: move the second selector back by one "
                                  "minute (`offset 1m`).", pattern=r"offset\s+(?!1m\b|60s\b)"),
        # The common advice to rate a raw counter does not apply: the raw counter is the answer.
        "counter_without_rate": Mistake("(none: the question asks for the raw counter)"),
    },
    solution=f"sum({COUNT}) - sum({COUNT} offset 1m)",
    answers=Answers(
        right=(f"sum({COUNT}) - sum({COUNT} offset 1m)",
               f"-(sum({COUNT} offset 60s) - sum({COUNT}))",
               f"sum by () ({COUNT}) - sum by () ({COUNT} offset 1m)"),
        wrong=(Wrong(f"sum(increase({COUNT}[1m]))", "extrapolates"),
               Wrong(f"sum({COUNT} - {COUNT} offset 1m)", "sum each side first"),
               Wrong(f"sum({COUNT})", "since the processes started"),
               Wrong("vector(150)", OPEN_HINT),
               Wrong(f"sum({COUNT}) - sum({COUNT} offset 5m)", "one minute")),
        # Off the scrape grid, as a learner's moments are: the windows' edges fall between samples.
        context=("prometheus", "start", "at"),
        given={"at": lambda d: d["end"] - timedelta(seconds=2.5),
               "start": lambda d: d["end"] - timedelta(minutes=4, seconds=2.5)},
    ),
))
