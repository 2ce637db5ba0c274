"""Exercises of notebooks/05-alerting.ipynb: SLOs, error budgets and burn-rate alerts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from curriculum import rule_grader
from curriculum.exercise_model import (
    Answers,
    Exercise,
    Mistake,
    Tolerance,
    Wrong,
    add,
    answers,
    choice_advice,
    close_to,
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
    answers=answers(lambda d: 12 / (0.01 * 600), 2.0, 12 / 600, advice="divide it by the budget share",
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
    answers=answers(50, 50.0, 0.5, advice="compare it with the budget's share"),
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
