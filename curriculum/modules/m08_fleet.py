"""Exercises of notebooks/08-fleet.ipynb: one service run as several replicas. Aggregating
`instance` away and when not to, the bad replica the fleet's average hides, a replica that dies
(`up`, `absent()`), summing before `rate` across a restart, and workers that drain a queue.

Besides the exercises, the few helpers that notebook calls: the fleet run's windows in a run
record (FleetRun), the one line a run without them prints (lacks), the moments the lab's fleet
rules were evaluated at (rule_moments), and the replica a run's errors came from (worst_replica,
8.3's reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from analysis import prom
from analysis.lab_context import FaultWindow
from curriculum.exercise_model import (
    OPEN_HINT,
    OVER_RANGE,
    Answers,
    Exercise,
    Mistake,
    Tolerance,
    Wrong,
    add,
    choice_advice,
    close_to,
    pinned,
)

# The commands that record what this module reads (lab/loadrun.py: fleet_run).
FLEET_RUN = "`lab up --web 3 --workers 2`, then `lab load --faults fleet`"
# The window each of the fleet run's faults is recorded under (NAME@INSTANCE).
BAD, SLOW, KILLED = "error_rate", "worker_delay", "killed"
# A recording rule of stack/prometheus/rules/todo-fleet.yml: its samples' times are the moments
# the fleet's rules were evaluated.
RULE_CLOCK = "instance:http_requests:rate1m"


@dataclass(frozen=True)
class FleetRun:
    """The fleet run's three windows in a run record; None for each the run does not have."""

    bad: FaultWindow | None  # a web replica answering errors
    slow: FaultWindow | None  # a worker waiting before each task
    killed: FaultWindow | None  # a web replica killed and restarted

    @classmethod
    def of(cls, faults: Sequence[FaultWindow]) -> FleetRun:
        """The windows of one replica each (NAME@INSTANCE) among a run's faults."""

        def first(kind: str) -> FaultWindow | None:
            return next((f for f in faults if f.instance and f.name.partition("@")[0] == kind), None)

        return cls(first(BAD), first(SLOW), first(KILLED))

    def describe(self, window: FaultWindow) -> str:
        """One line about a window of the run; the replica that answered errors stays unnamed
        (exercise 8.3 asks for it)."""
        times = f"from {window.on:%H:%M:%S} to {window.off:%H:%M:%S} UTC"
        if window == self.bad:
            return f"{BAD}={window.value:g} on one web replica, {times}"
        if window == self.slow:
            return f"{SLOW}={window.value:g} s on worker {window.instance}, {times}"
        if window == self.killed:
            return f"web replica {window.instance} killed (SIGKILL), {times} (started again)"
        return f"{window.name}={window.value:g}, {times}"


def lacks(window: FaultWindow | None, what: str) -> bool:
    """True, after one line that says so and how to record the fleet's run, when window is None
    (the recorded run is not the fleet's); False otherwise."""
    if window is not None:
        return False
    print(f"This run is not the fleet's run, so {what} would show nothing here. Record one with "
          f"{FLEET_RUN} (4 minutes), then run this notebook again.")
    return True


def rule_moments(prometheus: prom.Prometheus, start: datetime, end: datetime) -> dict[str, datetime]:
    """A check's range (start, at) within [start, end] whose moments are times the lab's fleet
    rules were evaluated at: there an answer built on a recording rule equals the expression it
    records exactly (between two evaluations the rule's value is the last one's). The range as
    given when the rules have recorded nothing."""
    clock = prometheus.scalar(f"max(timestamp({RULE_CLOCK}))", end)
    every = timedelta(seconds=prometheus.scrape_interval_s)  # the lab evaluates at its scrape interval
    if clock != clock:  # NaN: no rule samples
        return {"start": start, "at": end}
    at = datetime.fromtimestamp(clock, end.tzinfo)
    # The check compares at 12 moments evenly spread after start: 12 evaluations apart or a
    # multiple of that, the first of them no earlier than a step before start.
    steps = math.ceil((at - start) / (12 * every))
    return {"start": at - steps * 12 * every, "at": at} if steps > 0 else {"start": start, "at": end}


COUNT = "http_request_duration_seconds_count"
WEB = f'{COUNT}{{job="web"}}'
ERRORS = f'{COUNT}{{job="web",status=~"5.."}}'


def worst_replica(prometheus: prom.Prometheus, start: datetime, at: datetime) -> str:
    """The web replica that answered the largest share of its requests with 5xx between start
    and at (exact counts: each series' own increase, restarts included); "none" when no replica
    answered one."""
    errors: dict[str, float] = {}
    total: dict[str, float] = {}
    for labels, value in prom.series_increases(prometheus, WEB, start, at):
        instance = labels.get("instance", "")
        total[instance] = total.get(instance, 0.0) + value
        if labels.get("status", "").startswith("5"):
            errors[instance] = errors.get(instance, 0.0) + value
    shares = {i: errors.get(i, 0.0) / n for i, n in total.items() if n}
    return max(shares, key=lambda i: shares[i]) if any(shares.values()) else "none"


def _instances(prometheus: prom.Prometheus, query: str, at: datetime) -> set[str]:
    """The `instance` values of a query's result at a moment."""
    frame = prometheus.instant(query, at)
    return set(frame["instance"]) if "instance" in frame else set()


def _went_down(answer: Any, prometheus: prom.Prometheus, start: datetime, at: datetime) -> bool:
    """True when answer names a web replica whose scrapes failed between start and at."""
    seconds = max(1, round((at - start).total_seconds()))
    down = _instances(prometheus, f'min_over_time(up{{job="web"}}[{seconds}s]) == 0', at)
    return str(answer).strip() in down


def _a_worker(answer: Any, expected: Any, prometheus: prom.Prometheus, at: datetime, **_: Any) -> bool:
    """True when answer names a worker replica."""
    return str(answer).strip() in _instances(prometheus, 'up{job="worker"}', at)


# 8.1 One bad replica of three: the fleet's share is the bad replica's divided by three.

add(Exercise(
    id="8.1", module="08-fleet", kind="predict", answer_type="number",
    question="For 90 s, one of the **three** web replicas answers **30% of its requests** with a "
             "500; the other two answer all of theirs. Caddy hands the requests to the replicas in "
             "turn. Predict the **share of the fleet's requests** that fail meanwhile: the ratio "
             "of the job's 5xx to all its requests (a number from 0 to 1).",
    hint="Take 300 requests of the fleet inside the window. How many of them reach the bad "
         "replica, how many of those fail, and what share of the 300 is that?",
    why="Each replica gets about a third of the requests, so 30% of a third is 10% of the fleet. "
        "The job's ratio divides one replica's trouble by the number of replicas: a replica failing "
        "10% would show as 3% of a fleet of three, under a 5% threshold, and as 1% of a fleet of "
        "ten. Caddy's health check asks `/metrics`, which a replica with an error fault still "
        "answers, so the bad replica stays in the rotation and its users meet the 500s.",
    tolerance=Tolerance(abs=0.03, reason="a prediction; the replicas' shares of the traffic are "
                                         "not exactly a third"),
    mistakes={
        "own_share": Mistake("That is the bad replica's own share. The fleet's share divides its "
                             "failures by the requests of every replica.",
                             when=lambda answer, expected, **_: close_to(answer, 0.3, rel=0.1)),
        "added_up": Mistake("A share of the fleet is smaller than the bad replica's own, not "
                            "larger: its failures over everyone's requests.",
                            when=lambda answer, expected, **_: close_to(answer, 0.9, rel=0.05)),
        "two_replicas": Mistake("Three replicas share the traffic, not two.",
                                when=lambda answer, expected, **_: close_to(answer, 0.15, rel=0.05)),
        "health_check": Mistake("Caddy's health check asks `/metrics`, which an error fault never "
                                "touches: the bad replica stays in the rotation, and its requests "
                                "fail.", when=lambda answer, expected, **_: close_to(answer, 0.0)),
    },
    solution=0.1,
    answers=Answers(
        right=(0.1, 0.3 / 3, 0.12),
        wrong=(Wrong(0.3, "the bad replica's own share"), Wrong(0.9, "smaller than the bad"),
               Wrong(0.15, "Three replicas"), Wrong(0, "health check"),
               Wrong(1.0, OPEN_HINT),  # a constant: "everything fails"
               Wrong(0.5, OPEN_HINT)),
    ),
))


# 8.2 Each replica's error ratio, 0 for a replica without a 5xx series: the lab's recording rule.
PER_REPLICA = (f"(sum by (instance) (rate({ERRORS}[1m])) or 0 * sum by (instance) (rate({WEB}[1m]))) "
               f"/ sum by (instance) (rate({WEB}[1m]))")

add(Exercise(
    id="8.2", module="08-fleet", kind="query", answer_type="promql",
    question="Write the PromQL for **each web replica's share of requests answered 5xx** over the "
             "last minute: one series per `instance`, and 0 (not nothing) for a replica that "
             "answered no 5xx.",
    hint="Start from the fleet's ratio above and keep `instance` on both sides of the division. "
         "A replica that never failed has no 5xx series to sum: give it its zero as module 1 did "
         "for endpoints, with a fallback that carries the denominator's labels.",
    why="Summed by `instance` on both sides, each replica's failures are divided by its own "
        "requests: the bad replica stands at its own share, about three times what the fleet "
        "shows, and the others at 0. The lab records exactly this as "
        "`instance:http_requests_errors:ratio_rate1m` (stack/prometheus/rules/todo-fleet.yml); its "
        "alert `WebReplicaErrorOutlier` fires for a replica above 5% and above 1.5 times the "
        "job's ratio, which finds one bad replica in a fleet of any size.",
    mistakes={
        "no_instance": Mistake("One series per replica: keep `instance` (`sum by (instance)`) on "
                               "both sides of the division.", pattern=r"^(?!.*\binstance\b)"),
        "vector_zero": Mistake("`vector(0)` has no `instance` label, so it matches no series of the "
                               "denominator and the replicas without 5xx still vanish: the "
                               "fallback must carry the denominator's labels (`or 0 * ...`).",
                               pattern=r"\bor\s+vector\s*\("),
        "no_fallback": Mistake("A replica that answered no 5xx has no 5xx series, so it gets no "
                               "ratio at all: add a fallback to the numerator, `or 0 * (its "
                               "total)`, as module 1 did per endpoint.",
                               pattern=r"^(?=.*\binstance\b)(?!.*\bor\b)(?!.*instance:)(?!.*!~)"),
    },
    solution=PER_REPLICA,
    answers=Answers(
        right=(PER_REPLICA,
               # The lab's recording rule (its job and environment labels are constant).
               "instance:http_requests_errors:ratio_rate1m",
               "max by (instance) (instance:http_requests_errors:ratio_rate1m)",
               # One minus the share that did not fail: no fallback needed.
               f' 1 - sum by (instance) (rate({COUNT}{{job="web",status!~"5.."}}[1m])) '
               f"/ sum by (instance) (rate({WEB}[1m]))",
               f"(sum by (job, instance) (increase({ERRORS}[60s])) or 0 * sum by (job, instance) "
               f"(increase({WEB}[60s]))) / sum by (job, instance) (increase({WEB}[60s]))"),
        wrong=(Wrong(f"sum(rate({ERRORS}[1m])) / sum(rate({WEB}[1m]))", "keep `instance`"),
               Wrong(f"sum by (instance) (rate({ERRORS}[1m])) / sum by (instance) (rate({WEB}[1m]))",
                     "`or 0 * (its total)`"),
               Wrong(f"(sum by (instance) (rate({ERRORS}[1m])) or vector(0)) / sum by (instance) "
                     f"(rate({WEB}[1m]))", "`vector(0)` has no `instance` label"),
               Wrong("vector(1)", "keep `instance`"),
               Wrong(pinned(PER_REPLICA), OPEN_HINT),  # right at the moment it was copied
               Wrong(PER_REPLICA.replace("[1m]", "[5m]"), OPEN_HINT)),
        context=OVER_RANGE,
    ),
))


# 8.3 Diagnose: which replica answered the errors (from the data, not the run record).

add(Exercise(
    id="8.3", module="08-fleet", kind="interpret", answer_type="value",
    question="Which web replica answered errors during the run? Give its **`instance`** as "
             "Prometheus labels it (a string such as `\"127.0.0.1:NNNN\"`).",
    hint="Evaluate your query of 8.2 over the run, `p.range(query, run.start, run.end)`, and look "
         "for the `instance` whose ratio rises; or ask Prometheus for the highest one at a moment "
         "inside the error window (`topk(1, ...)`).",
    why="One replica's ratio rose to about the injected 30% while the others stayed at 0: the "
        "fault lives in that replica (its host, its configuration, its version of the code), not "
        "in what every replica shares, and the next step is its own logs (each line names its "
        "`instance`). The replica that was killed is another story: it answered nothing at all "
        "while it was down, which its `up` shows, not an error ratio.",
    mistakes={
        "crashed": Mistake("That replica was killed for a while (its `up` fell to 0): a dead "
                           "replica answers nothing, and Caddy sends its share to the others. "
                           "Which replica answered requests with 5xx?",
                           when=lambda answer, expected, prometheus, start, at: _went_down(
                               answer, prometheus, start, at)),
        "worker": Mistake("That is a worker replica (job `worker`); the requests are answered by "
                          "the web replicas (job `web`).", when=_a_worker),
        "name": Mistake("Give the `instance` label as Prometheus shows it, host and port "
                        "(e.g. \"127.0.0.1:NNNN\"), as your query's result labels it.",
                        when=lambda answer, expected, **_: ":" not in str(answer)),
    },
    solution=worst_replica,
    # The synthetic fleet (tests/support/promdata.py): 127.0.0.1:5003 answers 30% with 500,
    # 127.0.0.1:5002 is killed and restarted.
    answers=Answers(
        right=("127.0.0.1:5003", " 127.0.0.1:5003 ",
               lambda d: d["prometheus"].instant(
                   f"topk(1, max_over_time(({PER_REPLICA})[5m:5s]))", d["at"])["instance"].iloc[0]),
        wrong=(Wrong("127.0.0.1:5002", "That replica was killed"),
               Wrong("127.0.0.1:6002", "worker replica"),
               Wrong("web-3", "host and port"),
               # The lab's bad replica on one recorded run: right there only.
               Wrong("127.0.0.1:25002", OPEN_HINT),
               Wrong("127.0.0.1:5001", OPEN_HINT)),
        context=OVER_RANGE,
    ),
))


# 8.4 absent() during a crash: the dead replica still has its `up` series, at 0.

add(Exercise(
    id="8.4", module="08-fleet", kind="predict", answer_type="choice",
    question="One web replica is dead but still among Prometheus's targets: its scrapes fail. "
             "What does `absent(up{job=\"web\"})` return meanwhile?",
    options={"a": "nothing (an empty result)",
             "b": "one series `{job=\"web\"}` with the value 1",
             "c": "one series per dead replica, `{job=\"web\", instance=\"...\"}` 1",
             "d": "one series with the value 0"},
    hint="`absent(v)` is the opposite of \"v has at least one series\". During the crash, which "
         "`up{job=\"web\"}` series exist, and with which values?",
    why="`absent` answers 1 only when its selector matches no series at all, whatever their "
        "values. A dead replica that is still a target keeps its `up` series, at 0, and the live "
        "ones keep theirs at 1: the job is not absent. `up == 0` finds the dead replica "
        "(WebReplicaDown); `absent(up{job=\"web\"})` finds only the whole job gone. A replica "
        "removed from discovery has no `up` series at all: only a selector that names it "
        "(`absent(up{instance=\"...\"})`) or a count of the targets against the number you "
        "expect notices it.",
    mistakes=choice_advice({
        "b": "`absent` does not look at values: a series at 0 is a series. It answers only when "
             "nothing matches.",
        "c": "`absent` never answers per series: it returns one series or nothing for the whole "
             "selector, and only when nothing matches.",
        "d": "`absent` never returns 0: one series with the value 1 when nothing matches, "
             "otherwise nothing.",
    }),
    solution="a",
))


# 8.5 How many web replicas are down: a count that is 0, not nothing, when all answer.
DOWN = 'count(up{job="web"} == 0) or vector(0)'

add(Exercise(
    id="8.5", module="08-fleet", kind="query", answer_type="promql",
    question="Write the PromQL for **how many web replicas are down** (their last scrape failed): "
             "one number, 0 when all of them answer.",
    hint="`up` is 1 for a target whose last scrape succeeded and 0 for one whose scrape failed. "
         "Either keep the down ones with a filter and count them (what does counting nothing "
         "give?), or turn each `up` into 1 for down and 0 for up, and add.",
    why="`count(up{job=\"web\"} == 0)` counts the targets whose scrape failed, but when all are up "
        "`== 0` keeps no series, and the count of nothing is nothing: `or vector(0)` supplies the "
        "0 (one unlabelled number, the case where `vector(0)` is right). `sum(1 - up{job=\"web\"})` "
        "needs no fallback. Both count the targets Prometheus knows: a replica removed from "
        "discovery is in neither.",
    mistakes={
        "no_zero": Mistake("When every replica answers, `== 0` keeps no series and `count` of "
                           "nothing is nothing, not 0: add `or vector(0)`.",
                           pattern=r"^count\s*\(.*==\s*0\s*\)\s*$"),
        "summed_zeros": Mistake("`== 0` keeps the series whose value is 0, and adding zeros gives "
                                "0: count them, or add up `1 - up`.",
                                pattern=r"sum\s*\(\s*up\s*\{[^}]*\}\s*==\s*0\s*\)"),
        "absent": Mistake("`absent` answers only when no series matches at all; a dead replica "
                          "still has its `up` series, at 0.", pattern=r"\babsent\s*\("),
        "fleet_size": Mistake("Do not write the fleet's size in: it changes when replicas are "
                              "added or removed. Count the targets (`count(up{job=\"web\"})`) or "
                              "the failed ones.", pattern=r"^\s*\d+\s*-"),
        "listed": Mistake("That lists the replicas that are down (nothing when none is); the "
                          "question wants their number: count them, 0 when none.",
                          pattern=r"^up\s*\{[^}]*\}\s*==\s*0$"),
        "labelled_or": Mistake("`or` keeps every series of its right side whose labels the left "
                               "side lacks: `vector(0)` has none, so beside a `count by (...)` "
                               "series it stays, and a down replica gives two series. Count "
                               "without `by`, as module 1's fallback for one unlabelled number.",
                               pattern=r"\bby\s*\(.*\bor\s+vector\s*\("),
        "up_ones": Mistake("That counts the replicas that are up; the question wants the ones "
                           "whose scrape failed.", pattern=r"^sum\s*\(\s*up\s*\{[^}]*\}\s*\)$"),
    },
    solution=DOWN,
    answers=Answers(
        right=(DOWN, 'sum(1 - up{job="web"})', 'count(up{job="web"}) - sum(up{job="web"})',
               'sum(up{job="web"} == bool 0)',
               'sum without (instance) (1 - up{job="web"})'),
        wrong=(Wrong('count(up{job="web"} == 0)', "`or vector(0)`"),
               Wrong('sum(up{job="web"} == 0)', "adding zeros gives 0"),
               Wrong('absent(up{job="web"})', "`absent` answers only when"),
               # Right on the lab's fleet of three only.
               Wrong('3 - sum(up{job="web"})', "the fleet's size"),
               Wrong('up{job="web"} == 0', "the question wants their number"),
               Wrong('count by (job) (up{job="web"} == 0) or vector(0)', "a down replica gives two series"),
               Wrong('sum(up{job="web"})', "counts the replicas that are up"),
               Wrong("vector(1)", OPEN_HINT)),
        context=OVER_RANGE,
    ),
))


# 8.6 The phantom requests of rate(sum(...)): a drop of the sum read as a counter reset.

add(Exercise(
    id="8.6", module="08-fleet", kind="interpret", answer_type="choice",
    question="Around the crash, `rate(sum(...)[1m:5s])` jumps far above the fleet's real rate "
             "for about a minute, while `sum(rate(...[1m]))` hardly moves. Where do the extra "
             "requests per second come from?",
    options={"a": "the sum lost everything the killed replica had counted when its series "
                  "stopped (and again when its counter started from 0); `rate` reads any drop as a "
                  "counter reset and counts the whole new sum as increase",
             "b": "Caddy retried the killed replica's requests on the others, and they were "
                  "counted twice",
             "c": "the restarted replica counted its requests since its first start again",
             "d": "the subquery samples the sum every 5 s, faster than the scrapes, and `rate` "
                  "extrapolates"},
    hint="Look at the summed counter's samples around the kill: what happens to the sum when one "
         "of its terms disappears? What does `rate` assume when a counter goes down?",
    why="A counter that goes down is, for `rate`, a process that restarted from 0: the new value "
        "is all increase. That is right for one replica's counter and wrong for a sum: when the "
        "killed replica's series went stale the sum dropped by its whole count, and `rate` "
        "counted the other replicas' entire history as new requests, spread over the window. "
        "`sum(rate(...))` sees the drop only in the series that had it. Rate each series, then "
        "sum: in a fleet, replicas restart all the time.",
    mistakes=choice_advice({
        "b": "A retried request is a new request to another replica: counted once there. The "
             "excess is far more than the requests that were in flight.",
        "c": "A restarted process starts its counters from 0: it forgets, it does not count again.",
        "d": "Sampling the sum more often than it changes adds no requests: without a crash the "
             "two orders agree (compare them before the kill).",
    }),
    solution="a",
))


# 8.7 Background jobs that succeeded per worker replica.
SUCCEEDED = 'background_jobs_total{job="worker",status="succeeded"}'
PER_WORKER = f"sum by (instance) (rate({SUCCEEDED}[1m]))"

add(Exercise(
    id="8.7", module="08-fleet", kind="query", answer_type="promql",
    question="Write the PromQL for the **background jobs that succeeded per second on each worker "
             "replica** over the last minute: one series per worker `instance`.",
    hint="The workers count their jobs in `background_jobs_total`, by `status`. Keep the "
         "successes, `rate` each series, then sum by the label that names the replica.",
    why="Summed by `instance`, each worker's successes per second: a worker that drains less of "
        "the queue shows as a lower line, which the job's total (and the recording rule "
        "`job_type:background_jobs:rate1m`, summed by job type) hides. The count says how much "
        "each worker did, not how long each job took there: read it beside the time per job, "
        "per worker.",
    mistakes={
        "no_instance": Mistake("One series per worker replica: keep `instance` in the sum.",
                               pattern=r"^(?!.*\binstance\b)(?=.*background_jobs)"),
        "every_status": Mistake("Only the jobs that succeeded: `status=\"succeeded\"` (the workers "
                                "count every job when it starts too).",
                                pattern=r"background_jobs_total(?![^}]*succeeded)"),
        "job_type_rule": Mistake("`job_type:background_jobs:...` rules sum the workers together "
                                 "(`by (job_type)`): one number for the fleet. Keep `instance`.",
                                 pattern=r"job_type:background_jobs"),
    },
    solution=PER_WORKER,
    answers=Answers(
        right=(PER_WORKER,
               'sum(rate(background_jobs_total{status="succeeded"}[60s])) by (instance)',
               'rate(background_jobs_total{status="succeeded"}[1m])',
               f"sum by (instance, job_type) (increase({SUCCEEDED}[1m])) / 60"),
        wrong=(Wrong(f"sum(rate({SUCCEEDED}[1m]))", "keep `instance`"),
               Wrong('sum by (instance) (rate(background_jobs_total{job="worker"}[1m]))',
                     "Only the jobs that succeeded"),
               Wrong(f"sum by (instance) ({SUCCEEDED})", "A counter only grows"),
               Wrong("job_type:background_jobs:rate1m", "sum the workers together"),
               Wrong("vector(1)", OPEN_HINT),
               Wrong(pinned(PER_WORKER), OPEN_HINT)),
        context=OVER_RANGE,
    ),
))
