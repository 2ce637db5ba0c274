"""Exercises of notebooks/05-alerting.ipynb: SLOs, error budgets and burn-rate alerts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from curriculum import rule_grader
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


# 5.1 Share of the availability error budget the run used.
def budget_used(total: float, bad: float, objective: float) -> float:
    """bad / ((1 - objective) * total)."""
    return bad / ((1 - objective) * total)

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
                             when=lambda answer, expected, total, bad, objective: close_to(
                                 answer, bad / total)),
        "remaining": Mistake("That is what is left of the budget; the question asks what was "
                             "used: `bad / ((1 - objective) * total)`.",
                             when=lambda answer, expected, **_: close_to(answer, 1 - expected)),
    },
    solution=budget_used,
    # 12 bad of 600 at 99%: the budget is 6 requests, the run used it twice over.
    answers=Answers(
        right=(lambda d: 12 / (0.01 * 600), 2.0,
               lambda d: d["bad"] / d["total"] / (1 - d["objective"])),
        wrong=(Wrong(12 / 600, "divide it by the budget share"),
               Wrong(1 - 2.0, "what is left of the budget"),
               Wrong(1, OPEN_HINT),  # a constant: "all of it"
               Wrong(1.5, OPEN_HINT)),  # hard-coded from a run with 9 bad of 600
        context=("total", "bad", "objective"),
        given={"total": 600, "bad": 12, "objective": 0.99}),
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
                         when=lambda answer, expected, **_: close_to(answer, 0.5)),
        "percent": Mistake("You divided by the objective itself: the budget is the share of "
                           "requests the objective lets fail, written as a fraction.",
                           when=lambda answer, expected, **_: close_to(answer, 0.5 / 0.99)),
    },
    solution=0.5 / (1 - 0.99),
    answers=Answers(
        right=(50, 50.0, 0.5 / 0.01, 0.5 / (1 - 0.99)),
        wrong=(Wrong(0.5, "compare it with the budget's share"),
               Wrong(0.5 / 0.99, "You divided by the objective itself"),
               Wrong(14.4, OPEN_HINT),  # a constant: the SRE Workbook's paging threshold
               # Hard-coded from one run's diluted 1-minute share (24% bad): 0.24 / 0.01.
               Wrong(24, OPEN_HINT)),
    ),
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
    mistakes=choice_advice({
        "a": "At 50% failures the 5% threshold is reached after a tenth of the window: about 6 s.",
        "c": "A scrape and an evaluation add at most 5 s each (10 s with a new series): less "
             "than `for`.",
        "d": "The lab's `group_wait` is 10 s (stack/alertmanager/alertmanager.yml).",
    }),
    solution="b",
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
    mistakes=choice_advice({
        "a": "`for:` counts how long the *condition* holds, and the 1-minute window keeps it "
             "true well after the fault ends.",
        "c": "Two minutes is more than needed: the condition outlives the fault by almost a minute.",
        "d": "30 s of 50% failures in a 60 s window is a 25% share: far above 5%.",
    }),
    solution="b",
))


def _rule_advice(scenario: str, outcome: str) -> Callable[..., bool]:
    """A `when` test: the graded rule's outcome for a scenario starting with `scenario`."""
    def matches(answer: Any, expected: Any, **_: Any) -> bool:
        if not isinstance(answer, Mapping):
            return False
        return any(name.startswith(scenario) and value == outcome for name, value in answer.items())
    return matches

# 5.5 The alert, graded by promtool: the reference fires exactly where it should, so its
#     outcomes are "as it should" in every scenario.
LIST_ERRORS_ALERT = (
    'sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos",status=~"5.."}[2m])) '
    '/ sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos"}[2m])) > 0.1'
)


FIVE_XX = 'http_request_duration_seconds_count{endpoint="api.list_todos",status=~"5.."}'
ALL_LIST = 'http_request_duration_seconds_count{endpoint="api.list_todos"}'
GOOD = 'http_request_duration_seconds_count{endpoint="api.list_todos",status!~"5.."}'


def graded(expr: str) -> Callable[[Any], dict[str, str]]:
    """A bank answer of 5.5: what promtool's scenarios say of the rule expr, as the notebook
    passes it to the check (the data d is not needed)."""
    return lambda d: rule_grader.grade(expr).outcomes()


def rule_outcomes() -> dict[str, str]:
    """What every scenario of curriculum.rule_grader says about a right rule."""
    from curriculum import rule_grader

    return {scenario.name: "as it should" for scenario in rule_grader.SCENARIOS}


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
    solution=rule_outcomes,
    # Right rules written differently, and wrong ones of every kind (threshold, window,
    # filter, share against rate), each with the advice its verdict must give.
    answers=Answers(
        right=tuple(graded(expr) for expr in (
            LIST_ERRORS_ALERT,
            LIST_ERRORS_ALERT.replace("rate(", "increase(").replace("[2m]", "[120s]"),
            LIST_ERRORS_ALERT.replace("sum(rate(", "sum by (endpoint) (increase(").replace("[2m]", "[120s]"),
            f"1 - sum(rate({GOOD}[2m])) / sum(rate({ALL_LIST}[2m])) > 0.1",
            f"0.1 < sum by (endpoint) (rate({FIVE_XX}[2m])) / sum by (endpoint) (rate({ALL_LIST}[2m]))",
        )),
        wrong=(
            Wrong(graded(LIST_ERRORS_ALERT.replace("> 0.1", "> 0.2")), "stayed silent just above it"),
            Wrong(graded(LIST_ERRORS_ALERT.replace("> 0.1", "> 0.05")), "fired under it"),
            Wrong(graded(LIST_ERRORS_ALERT.replace("[2m]", "[1m]")), "a shorter one forgets"),
            Wrong(graded(LIST_ERRORS_ALERT.replace("[2m]", "[3m]")), "a longer one keeps firing"),
            Wrong(graded(LIST_ERRORS_ALERT.replace('endpoint="api.list_todos",', "")
                         .replace('{endpoint="api.list_todos"}', "")),
                  "fired for another endpoint's failures"),
            Wrong(graded(LIST_ERRORS_ALERT.replace(ALL_LIST, "http_request_duration_seconds_count")),
                  "on the 5xx side only"),
            Wrong(graded(f"sum(rate({FIVE_XX}[2m])) > 1"), "changes with the traffic"),
            Wrong(graded(f"sum(rate({FIVE_XX}[2m])) > 0.1"), "changes with the traffic"),
            Wrong(graded(f"sum({FIVE_XX}) > 10"), "fired under it"),
            Wrong(graded("vector(1)"), "fired under it"),
            Wrong(graded("sum(rate(x[2m]) >"), "could not load the rule"),
        ),
    ),
))


add(Exercise(
    id="5.7", module="05-alerting", kind="interpret", answer_type="choice",
    question="A login service gets about **5 requests an hour** at night. Its availability SLO is "
             "99%, alerted like the lab's fast burn (a burn rate above 14.4 over 1 hour *and* over "
             "5 minutes pages). At 3:00 one request fails, the others succeed. What happens, and "
             "what should the team change?",
    options={"a": "Nothing pages: a burn-rate alert is built to ignore a single failed request",
             "b": "It pages: one failure in about five requests is a 20% error share, a burn rate "
                  "of 20 over the hour and more over 5 minutes; give the SLI more events "
                  "(synthetic probes) or require a minimum request count before it may fire",
             "c": "It pages, and that is right: every failed login matters, keep the alert as it is",
             "d": "It opens a ticket, not a page: the budget is spent slowly at night"},
    hint="Compute the error share over the hour and over the 5 minutes around the failure, then "
         "the burn rate (share over budget share), and compare with 14.4. Then ask what a page "
         "at 3:00 for one request does to the next page's precision.",
    why="A burn rate is a share, and a share of five requests moves by 20% with each one: 1 of 5 "
        "in the hour is a burn rate of 20 for a 1% budget, and the 5-minute window holds at "
        "most a request or two. The alert, built for thousands of requests an hour, pages for "
        "one. The Workbook's remedies for low-traffic services: artificial traffic, combining "
        "services into one SLO, making one failure matter less, a lower objective or longer "
        "windows; and a minimum request rate as a guard, as the lab's threshold alerts have.",
    mistakes=choice_advice({
        "a": "Nothing in a burn-rate expression counts requests: with five an hour, one failure "
             "is 20% of them. Compute the burn rate.",
        "c": "One request in the night spent 1/5 of the hour's events, not much of a 30-day "
             "budget; a page for it lowers precision, and people learn to ignore pages.",
        "d": "The tier follows the burn rate and its windows, not the time of day: the ticket "
             "tier is a burn rate of 1 over 3 days, and this is about 20 over an hour.",
    }),
    solution="b",
))

add(Exercise(
    id="5.8", module="05-alerting", kind="predict", answer_type="choice",
    question="The web app hangs and stops answering Prometheus's scrapes for ten minutes (users "
             "get errors from Caddy meanwhile). What does the lab's `HighErrorRate` alert (the 5xx "
             "share of the app's own request counter, over 1 minute, above 5%) do during those ten "
             "minutes?",
    options={"a": "It fires: the app's counters have been counting the errors",
             "b": "After about a minute it has no series to evaluate, so it cannot fire: the web "
                  "target's series went stale at the first failed scrape; only a rule on `up` "
                  "or `absent(...)` notices",
             "c": "It keeps the last value for 5 minutes (the lookback), then resolves",
             "d": "It fires after 5 minutes, when the lookback runs out and the share becomes 0"},
    hint="Where do the app's counters get into Prometheus, and what does Prometheus write when a "
         "scrape fails? What does a `[1m]` range hold one minute later? Can an expression with "
         "no series fire?",
    why="The app's counters reach Prometheus only through scrapes. When a scrape fails, "
        "Prometheus sets `up` to 0 and marks the target's series stale: instant queries stop "
        "returning them at once, and `rate(...[1m])` has nothing left once its window has passed "
        "the last sample. An expression with no series has nothing to compare, so the alert is "
        "silent for exactly as long as the app is broken. Alert on the target itself too: "
        "`up == 0`, or `absent(...)` for a target that vanished, as the lab's WorkerDown does.",
    mistakes=choice_advice({
        "a": "The counters are in the hung app: Prometheus sees them only through scrapes, and "
             "the scrapes fail.",
        "c": "The 5-minute lookback applies to a series whose next sample has not come yet; a "
             "failed scrape writes a stale marker, which ends the series at once.",
        "d": "A missing series is not 0: there is nothing to compare with 5%, before or after 5 "
             "minutes.",
    }),
    solution="b",
))


# 5.6 The burn rate, written from the raw counters: the bad share over the budget share.

COUNT = "http_request_duration_seconds_count"
BURN_6M = (f'sum(rate({COUNT}{{status=~"5.."}}[6m])) / sum(rate({COUNT}[6m])) / (1 - 0.99)')

add(Exercise(
    id="5.6", module="05-alerting", kind="query", answer_type="promql",
    question="Write the PromQL for the availability SLO's **burn rate over the last 6 minutes** "
             "(objective 99%, a failure is a 5xx answer): one number, 1 when the budget burns "
             "exactly as fast as the objective allows.",
    hint="A burn rate compares two shares: the share of requests that failed over the window, "
         "and the share the objective allows to fail. Build the first from two `rate(...[6m])` "
         "sums; the second is a number.",
    why="The bad share over the window divided by the budget share (1 - 0.99 = 0.01): at a burn "
        "rate of 1 the budget lasts exactly the SLO period, at 14.4 a 30-day budget is gone in "
        "about two days. The lab's recording rule `slo:sli_error:ratio_rate6m` is the numerator, "
        "and the alerts compare it with `14.4 * slo:error_budget:ratio`: the same division, "
        "written as a comparison.",
    mistakes={
        "objective": Mistake("Divide by the share the objective allows to fail (1 - 0.99), not by "
                             "the objective itself.", pattern=r"/\s*\(?\s*0?\.99\s*\)?\s*$"),
        "share_only": Mistake("That is the share of requests that failed; a burn rate divides it "
                              "by the budget share (0.01).",
                              pattern=r"^(?=.*/)(?=.*(rate|increase)\()(?!.*(0?\.01|1\s*-\s*0?\.99|\*\s*100|100\s*\*)).*$"),
        "window": Mistake("Over the last 6 minutes: `[6m]` on both sides.",
                          pattern=r"\[(?!6m\]|360s\])\w+\]"),
    },
    solution=BURN_6M,
    answers=Answers(
        right=(BURN_6M,
               f'sum(increase({COUNT}{{status=~"5.."}}[6m])) / sum(increase({COUNT}[6m])) / 0.01',
               f'100 * sum(rate({COUNT}{{status=~"5.."}}[360s])) / sum(rate({COUNT}[360s]))'),
        wrong=(Wrong(f'sum(rate({COUNT}{{status=~"5.."}}[6m])) / sum(rate({COUNT}[6m])) / 0.99',
                     "not by the objective itself"),
               Wrong(f'sum(rate({COUNT}{{status=~"5.."}}[6m])) / sum(rate({COUNT}[6m]))',
                     "by the budget share"),
               Wrong(f'sum(rate({COUNT}{{status=~"5.."}}[1m])) / sum(rate({COUNT}[1m])) / 0.01',
                     "`[6m]` on both sides"),
               Wrong("vector(14.4)", OPEN_HINT),
               Wrong(pinned(BURN_6M), OPEN_HINT)),
        context=OVER_RANGE,
    ),
))
