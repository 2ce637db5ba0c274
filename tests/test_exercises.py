"""Every exercise of the bank, checked with every answer of its banks: the right ones (the
reference's and others written differently) must be right, the wrong ones must be refused with
the advice they name.

PromQL answers run against a real Prometheus serving known synthetic traffic
(tests/support/promdata.py; the fleet module's against a synthetic fleet with the lab's fleet
recording rules); pandas answers against the recorded logs of tests/data/analysis.

The banks are the exercises' own (`answers=` beside each exercise in curriculum/modules/,
model in curriculum/exercise_model.py: `Answers`, whose docstring says what the data `d` an
answer function reads holds); this file provides that data and grades every answer of them.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis import logs, traces
from curriculum import exercises
from curriculum.exercise_bank import EXERCISES, Exercise, Mistake, Tolerance
from tests.support.promdata import (
    TARGETS,
    RecordedPrometheus,
    busiest_role,
    error_share,
)

DATA = Path(__file__).parent / "data" / "analysis"
LIST = 'http_request_duration_seconds_count{endpoint="api.list_todos"'


# The recorded run's exports (tests/data/analysis): a request id the worker's lines carry, and
# a trace with its producer (web) and consumer (worker) spans: data the banks' answers read.
EXPORT_REQUEST = "82757824-4ba3-4e3f-aacc-51a6f0684fa8"
EXPORT_TRACE = "00c8c1310563a7cc9a04a66163627fc6"
LIST_ALERT = ('sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos",status=~"5.."}[2m])) '
              '/ sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos"}[2m])) > 0.1')
BUSIEST = {("web", "worker"): "a", ("web", "master"): "b", ("worker", "worker-main"): "c",
           ("worker", "pool-child"): "d"}


def test_every_exercise_has_its_solution_and_banks_beside_it() -> None:
    """Each exercise carries its reference and at least one right answer besides it and one
    wrong one (add() refuses less); a choice's banks name each tempting option."""
    for item in EXERCISES.values():
        assert item.solution is not None and item.answers is not None, item.id
        assert len(item.answers.right) >= 2 and item.answers.wrong, item.id


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    """The recorded run's logs and spans, as the notebooks load them (the banks' data `d`)."""
    frame = logs.load_logs(DATA / "web.jsonl", DATA / "worker.jsonl").frame
    return {"log_frame": frame, "access": logs.access_lines(frame), "web_log": DATA / "web.jsonl",
            "spans": traces.read_span_file(DATA / "spans.jsonl").spans,
            "export_request": EXPORT_REQUEST, "export_trace": EXPORT_TRACE}


def _needs_prometheus(item: Exercise) -> bool:
    bank = item.answers
    return item.answer_type == "promql" or bool(bank and {"prometheus", "at", "start"} & set(bank.context))


# Modules whose answers read a fleet of replicas (tests/support/promdata.py: fleet_openmetrics).
FLEET_MODULES = frozenset({"08-fleet"})


def _data(item: Exercise, request: pytest.FixtureRequest,
          recorded: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(everything an answer function may read, the context the check is given)."""
    assert item.answers is not None
    data = dict(recorded)
    if _needs_prometheus(item):
        synthetic: RecordedPrometheus = request.getfixturevalue(
            "fleet_synthetic" if item.module in FLEET_MODULES else "synthetic")
        data |= {"prometheus": synthetic.client, "at": synthetic.end,
                 "start": synthetic.end - timedelta(minutes=5), "end": synthetic.end,
                 "targets": len(TARGETS), "busiest": BUSIEST[busiest_role()]}
    for name, value in item.answers.given.items():
        data[name] = value(data) if callable(value) else value
    names = item.answers.context or (("prometheus", "at") if item.answer_type == "promql" else ())
    return data, {name: data[name] for name in names}


def _answer(given: Any, data: dict[str, Any]) -> Any:
    return given(data) if callable(given) else given


def _params() -> list[object]:
    """One case per exercise; those that need the synthetic Prometheus are marked stack."""
    return [pytest.param(i, marks=[pytest.mark.stack] if _needs_prometheus(EXERCISES[i]) else [])
            for i in sorted(EXERCISES)]


@pytest.mark.parametrize("exercise_id", _params())
def test_every_right_answer_of_the_bank_is_right_and_every_wrong_one_says_how_to_fix_it(
        exercise_id: str, request: pytest.FixtureRequest, recorded: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(exercises.FILL_VARIABLE, raising=False)
    item = EXERCISES[exercise_id]
    assert item.answers is not None
    data, context = _data(item, request, recorded)

    for number, given in enumerate(item.answers.right):
        verdict = exercises.check(exercise_id, _answer(given, data), **context)
        assert verdict.status == "right", f"right answer {number}: {verdict}"
        assert item.why in str(verdict)

    for wrong in item.answers.wrong:
        verdict = exercises.check(exercise_id, _answer(wrong.answer, data), **context)
        assert verdict.status == "wrong", str(verdict)
        assert verdict.advice, f"a wrong answer to {exercise_id} got no advice: {verdict}"
        assert wrong.advice in " ".join(verdict.advice), str(verdict)
        assert item.why not in str(verdict)  # the explanation is the reward for a right answer

    unanswered = exercises.check(exercise_id, None, **context)
    assert unanswered.status == "unanswered"


@pytest.mark.stack
def test_headless_runs_fill_unanswered_exercises_and_fail_on_a_wrong_one(
        synthetic: RecordedPrometheus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(exercises.FILL_VARIABLE, "1")
    assert exercises.check("1.1", None, prometheus=synthetic.client, at=synthetic.end).right
    with pytest.raises(exercises.ExerciseFailed, match=r"1\.1"):
        exercises.check("1.1", "sum(rate(http_request_duration_seconds_count[1m]))",
                        prometheus=synthetic.client, at=synthetic.end)


@pytest.mark.stack
def test_the_first_versions_entry_points_still_work(synthetic: RecordedPrometheus,
                                                   recorded: dict[str, Any]) -> None:
    written_differently = EXERCISES["7.1"].answers.right[1]  # type: ignore[union-attr]
    verdict = exercises.check_promql(synthetic.client, written_differently, "7.1", at=synthetic.end)
    assert verdict.right
    share = synthetic.client.scalar(str(exercises.reference("7.1")), synthetic.end)
    assert share == pytest.approx(error_share("api.list_todos"))  # 0.5 / 2.5: the known truth
    access = recorded["access"]
    assert exercises.check_value(access.nlargest(1, "duration_ms")["trace_id"].iloc[0], "3.1",
                                 access=access).right


@pytest.mark.stack
def test_common_promql_mistakes_are_named_even_when_prometheus_refuses_the_query(
        synthetic: RecordedPrometheus) -> None:
    summed_first = exercises.check("1.1", "rate(sum by (endpoint) (http_request_duration_seconds_count)[1m])",
                                   prometheus=synthetic.client, at=synthetic.end)
    assert summed_first.status == "wrong" and "Prometheus refused it" in summed_first.message
    assert any("Rate first, then sum" in a for a in summed_first.advice)
    # Under a scrape interval: one sample in the window, no rate at all (the synthetic traffic
    # is steady, so a window of two samples would still give the right value).
    short = exercises.check("1.1", "sum by (endpoint) (rate(http_request_duration_seconds_count[4s]))",
                            prometheus=synthetic.client, at=synthetic.end)
    assert short.status == "wrong" and any("4 scrape intervals" in a for a in short.advice)


@pytest.mark.stack
def test_a_label_that_splits_series_is_not_an_equivalent_grouping(synthetic: RecordedPrometheus) -> None:
    # api.list_todos answers 200 and 500: by (endpoint, status) has more series than by (endpoint).
    query = "sum by (endpoint, status) (rate(http_request_duration_seconds_count[1m]))"
    verdict = exercises.check("1.1", query, prometheus=synthetic.client, at=synthetic.end)
    assert verdict.status == "wrong"
    assert "by (endpoint, status)" in verdict.message and "by (endpoint)" in verdict.message


def test_compare_vectors_ignores_only_redundant_labels() -> None:
    expected = pd.DataFrame({"endpoint": ["a", "b"], "value": [1.0, 2.0]})
    constant = pd.DataFrame({"endpoint": ["a", "b"], "job": ["web", "web"], "value": [1.0, 2.0]})
    assert exercises.compare_vectors(constant, expected) is None
    one = pd.DataFrame({"value": [3.0]})
    assert exercises.compare_vectors(pd.DataFrame({"endpoint": ["a"], "value": [3.0]}), one) is None
    assert exercises.compare_vectors(pd.DataFrame({"value": [3.0]}), expected) is not None
    split = pd.DataFrame({"endpoint": ["a", "a", "b"], "status": ["200", "500", "200"],
                          "value": [0.5, 0.5, 2.0]})
    assert "change your `by (...)`" in (exercises.compare_vectors(split, expected) or "")
    off = pd.DataFrame({"endpoint": ["a", "b"], "value": [1.0, 2.1]})
    assert "2.1" in (exercises.compare_vectors(off, expected) or "")
    assert exercises.compare_vectors(off, expected, Tolerance(abs=0.1)) is None


# --- choice and number answers (offline), with a bank entry made for the test ---------------

@pytest.fixture
def quiz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two throwaway exercises (a choice and a number) and their solutions."""
    choice = Exercise(
        id="9.1", module="09-test", kind="interpret", answer_type="choice",
        question="Why is the share over 1m lower than the client's?", hint="h", why="dilution",
        options={"a": "the window includes pre-fault traffic", "b": "Prometheus lost samples"},
        mistakes={"b": Mistake("Prometheus lost nothing: compare the counter difference.")})
    number = Exercise(
        id="9.2", module="09-test", kind="predict", answer_type="number",
        question="Error share?", hint="h", why="w",
        tolerance=Tolerance(abs=0.02, reason="two decimals"),
        mistakes={"diluted": Mistake("That is the diluted share.",
                                     when=lambda answer, expected, **_: abs(answer - 0.24) < 0.01)})
    monkeypatch.setitem(EXERCISES, "9.1", choice)
    monkeypatch.setitem(EXERCISES, "9.2", number)
    table = {"9.1": "a", "9.2": lambda client_500, sent: client_500 / sent}
    real: Callable[[str], Any] = exercises.reference
    monkeypatch.setattr(exercises, "reference", lambda i: table[i] if i in table else real(i))
    yield


@pytest.mark.usefixtures("quiz")
def test_choice_answers_ignore_case_and_explain_the_tempting_wrong_option() -> None:
    assert exercises.check("9.1", "a").right and exercises.check("9.1", " A ").right
    wrong = exercises.check("9.1", "b")
    assert wrong.status == "wrong"
    assert wrong.advice == ("Prometheus lost nothing: compare the counter difference.",)
    assert "not one of the options" in exercises.check("9.1", "z").message


@pytest.mark.usefixtures("quiz")
def test_number_answers_are_right_within_the_stated_tolerance() -> None:
    assert exercises.check("9.2", 0.43, client_500=26, sent=60).right  # 0.4333
    assert exercises.check("9.2", 13 / 30, client_500=26, sent=60).right
    wrong = exercises.check("9.2", 0.24, client_500=26, sent=60)
    assert wrong.status == "wrong" and "too low" in wrong.message
    assert wrong.advice == ("That is the diluted share.",)
    assert exercises.grade_offline(EXERCISES["9.1"], "A") == "right"
    assert exercises.grade_offline(EXERCISES["9.2"], 0.44, expected=26 / 60) == "right"
    assert exercises.grade_offline(EXERCISES["9.2"], 0.5, expected=26 / 60) == "wrong"


def test_an_inconsistent_exercise_is_refused_when_defined() -> None:
    with pytest.raises(ValueError, match="module"):
        Exercise(id="2.9", module="01-metrics", kind="query", answer_type="promql",
                 question="q", hint="h", why="w")
    with pytest.raises(ValueError, match="unknown options"):
        Exercise(id="1.9", module="01-metrics", kind="interpret", answer_type="choice",
                 question="q", hint="h", why="w", options={"a": "x", "b": "y"},
                 mistakes={"c": Mistake("no such option")})


def test_ask_folds_the_hint_and_never_shows_the_solution() -> None:
    shown = exercises.ask("1.2").markdown()
    assert "<details><summary>Hint</summary>" in shown and EXERCISES["1.2"].question in shown
    assert str(exercises.reference("1.2")) not in shown


def test_jq_answers_are_right_when_they_print_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    item = Exercise(id="2.9", module="02-logs", kind="query", answer_type="jq",
                    question="request_id of every 5xx access line", hint="h", why="w",
                    mistakes={"4xx": Mistake("Only 5xx: >= 500.", pattern=r">=?\s*4")})
    monkeypatch.setitem(EXERCISES, "2.9", item)
    real = exercises.reference
    monkeypatch.setattr(exercises, "reference", lambda i: (
        "select(.status_code >= 500) | .request_id" if i == "2.9" else real(i)))
    log = DATA / "web.jsonl"
    assert exercises.check("2.9", "select(.status_code >= 500) | .request_id", log=log).right
    # Slurped and written differently: the same values, in any order.
    equivalent = "-s map(select(.status_code > 499)) | sort_by(.duration_ms) | .[].request_id"
    assert exercises.check("2.9", equivalent, log=log).right
    wrong = exercises.check("2.9", "select(.status_code >= 400) | .request_id", log=log)
    assert wrong.status == "wrong" and wrong.advice == ("Only 5xx: >= 500.",)
    broken = exercises.check("2.9", "select(.status_code >= ", log=log)
    assert broken.status == "wrong" and "jq refused it" in broken.message


def test_a_string_answer_ignores_case_and_blanks(recorded: dict[str, Any]) -> None:
    access = recorded["access"]
    slowest = str(access.nlargest(1, "duration_ms")["trace_id"].iloc[0])
    assert exercises.check("3.1", f" {slowest.upper()} ", access=access).right


def test_a_table_answer_may_order_its_columns_differently() -> None:
    expected = pd.DataFrame({"endpoint": ["a", "b"], "p95": [1.0, 2.0]}).set_index("endpoint").sort_index()
    same = pd.DataFrame({"p95": [1.0, 2.0000000001]}, index=pd.Index(["a", "b"], name="endpoint"))
    assert exercises.compare_values(same, expected) is None
    other = pd.DataFrame({"p95": [1.0, 2.5]}, index=pd.Index(["a", "b"], name="endpoint"))
    assert "not the one the question asks for" in (exercises.compare_values(other, expected) or "")
    assert "expected a pandas DataFrame" in (exercises.compare_values([1, 2], expected) or "")


ALERT_TEST = """
- name: 10% errors for three minutes
  series:
    'http_request_duration_seconds_count{job="web", status="200", environment="t"}': '0+9x60'
    'http_request_duration_seconds_count{job="web", status="500", environment="t"}': '0+1x60'
  eval_time: 3m
  fires: true
- name: the first 30 s of it (for 1m not yet over)
  series:
    'http_request_duration_seconds_count{job="web", status="200", environment="t"}': '0+9x60'
    'http_request_duration_seconds_count{job="web", status="500", environment="t"}': '0+1x60'
  eval_time: 30s
  fires: false
- name: 1% errors
  series:
    'http_request_duration_seconds_count{job="web", status="200", environment="t"}': '0+99x60'
    'http_request_duration_seconds_count{job="web", status="500", environment="t"}': '0+1x60'
  eval_time: 3m
  fires: false
"""


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool comes with Debian's prometheus")
def test_an_alert_rule_is_graded_by_promtool_test_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    item = Exercise(id="5.9", module="05-alerting", kind="query", answer_type="alert",
                    question="Fire when more than 5% of requests fail for a minute", hint="h",
                    why="w", rule_test=ALERT_TEST)
    monkeypatch.setitem(EXERCISES, "5.9", item)
    real = exercises.reference
    reference = ('sum(rate(http_request_duration_seconds_count{status=~"5.."}[1m]))'
                 " / sum(rate(http_request_duration_seconds_count[1m])) > 0.05")
    monkeypatch.setattr(exercises, "reference", lambda i: (
        {"expr": reference, "for": "1m"} if i == "5.9" else real(i)))
    assert exercises.check("5.9", {"expr": reference, "for": "1m"}).right
    # Grouped, another label set on the alert: it fires at the same times, so it is right.
    written_out = ('sum by (job, environment) (rate(http_request_duration_seconds_count{status=~"5.."}[1m]))'
                   " / sum by (job, environment) (rate(http_request_duration_seconds_count[1m])) > 0.05")
    assert exercises.check("5.9", {"expr": written_out, "for": "1m"}).right
    too_soon = exercises.check("5.9", reference)  # no for: fires in the first 30 s
    assert too_soon.status == "wrong" and "fired on: the first 30 s of it" in too_soon.message
    summed_first = exercises.check("5.9", {"expr": "rate(sum(http_request_duration_seconds_count)[1m:]) > 0",
                                           "for": "1m"})
    assert summed_first.status == "wrong" and "fired on: 1% errors" in summed_first.message
    assert any("Rate first" in a for a in summed_first.advice)
    broken = exercises.check("5.9", "sum(rate(x[1m]) >")
    assert broken.status == "wrong" and "promtool refused the rule" in broken.message
    assert exercises.grade_offline(item, {"expr": written_out, "for": "1m"}) == "right"
    assert exercises.check("5.9", None).status == "unanswered"


def test_an_alert_exercise_needs_well_formed_scenarios() -> None:
    with pytest.raises(ValueError, match="list of scenarios"):
        Exercise(id="5.8", module="05-alerting", kind="query", answer_type="alert", question="q",
                 hint="h", why="w", rule_test="- {name: x, eval_time: 1m}")


@pytest.mark.stack
def test_an_answer_right_at_one_instant_only_is_wrong_over_the_range(synthetic: RecordedPrometheus) -> None:
    """A constant that copies the reference's values at the end (what `vector(1)` is on a run
    whose share is 1 at the end) is right at that instant and wrong over a range that holds the
    fault; the verdict says when, and not the reference's value."""
    at = synthetic.end
    frozen = synthetic.client.instant(str(exercises.reference("1.1")), at)
    constant = " or ".join(f'label_replace(vector({row.value!r}), "endpoint", "{row.endpoint}", "", "")'
                           for row in frozen.itertuples())
    assert exercises.check("1.1", constant, prometheus=synthetic.client, at=at).right
    over_range = exercises.check("1.1", constant, prometheus=synthetic.client,
                                 start=at - timedelta(minutes=5), at=at)
    assert not over_range.right
    assert "during the range checked" in over_range.message and "todos.toggle" in over_range.message
    # The end's 1m window holds the fault's 500s: before the fault, the constant is too high.
    assert "too high" in over_range.message
    (when,) = [m for m in exercises._moments(at - timedelta(minutes=5), at)
               if over_range.message.startswith(f"at {m:%H:%M:%S} UTC")]
    then = synthetic.client.instant(str(exercises.reference("1.1")), when).set_index("endpoint")
    number = re.escape(f"{then.loc['todos.toggle', 'value']:.6g}")
    assert not re.search(rf"(?<![\d.:]){number}(?![\d.:])", over_range.message), over_range.message
    right = exercises.check("1.1", EXERCISES["1.1"].answers.right[1], prometheus=synthetic.client,
                            start=at - timedelta(minutes=5), at=at)
    assert right.right and f"at {exercises.RANGE_MOMENTS} moments" in right.message


@pytest.mark.stack
@pytest.mark.parametrize(("answer", "right", "advice"), [
    # Right, written differently: on () instead of ignoring, the total as a scalar, increase.
    ("sum by (endpoint) (rate(http_request_duration_seconds_count[1m])) / on () group_left "
     "sum(rate(http_request_duration_seconds_count[1m]))", True, ""),
    ("sum by (endpoint) (increase(http_request_duration_seconds_count[1m])) / ignoring (endpoint) "
     "group_left sum(increase(http_request_duration_seconds_count[1m]))", True, ""),
    # Wrong: refused without group_left, each endpoint by itself, a constant, shares of one run.
    ("sum by (endpoint) (rate(http_request_duration_seconds_count[1m])) / ignoring (endpoint) "
     "sum(rate(http_request_duration_seconds_count[1m]))", False, "group_left"),
    ("sum by (endpoint) (rate(http_request_duration_seconds_count[1m])) / sum by (endpoint) "
     "(rate(http_request_duration_seconds_count[1m]))", False, "divided by itself"),
    ('label_replace(vector(0.2), "endpoint", "api.list_todos", "", "")', False, ""),
    ("sum by (endpoint) (rate(http_request_duration_seconds_count[5m])) / ignoring (endpoint) "
     "group_left sum(rate(http_request_duration_seconds_count[5m]))", False, ""),
], ids=["on-()", "increase", "no-group_left", "by-itself", "constant", "5m-window"])
def test_exercise_1_8_accepts_every_way_to_match_and_refuses_each_mistake(
        synthetic: RecordedPrometheus, answer: str, right: bool, advice: str) -> None:
    """Vector matching (1.8), compared over a range that holds the synthetic fault."""
    verdict = exercises.check("1.8", answer, prometheus=synthetic.client,
                              start=synthetic.end - timedelta(minutes=5), at=synthetic.end)
    assert verdict.right == right, str(verdict)
    if advice:
        assert any(advice in text for text in verdict.advice), verdict.advice


def test_the_facilitators_kit_counts_the_exercises_and_the_banks_as_they_are() -> None:
    """docs/workshop.md says how many exercises there are and how many answers test their
    graders; the numbers are the bank's, so a new exercise updates the page."""
    page = (Path(__file__).parents[1] / "docs" / "workshop.md").read_text(encoding="utf-8")
    said = re.search(r"There are (\d+) exercises, at least (\w+) per module", page)
    banks = re.search(r"(\d+) wrong and\s+(\d+) right answers", page)
    assert said and banks, "docs/workshop.md no longer says how many exercises and answers there are"
    per_module: dict[str, int] = {}
    for item in EXERCISES.values():
        per_module[item.module] = per_module.get(item.module, 0) + 1
    assert int(said[1]) == len(EXERCISES)
    assert said[2] == {3: "three", 4: "four", 5: "five"}[min(per_module.values())]
    assert int(banks[1]) == sum(len(i.answers.wrong) for i in EXERCISES.values() if i.answers)
    assert int(banks[2]) == sum(len(i.answers.right) for i in EXERCISES.values() if i.answers)


def test_every_module_asks_a_prediction_and_an_interpretation_and_twelve_ask_for_promql() -> None:
    """The workshop's shape: each module has a predict and an interpret (or diagnose) exercise,
    and learners write PromQL themselves in at least twelve."""
    kinds: dict[str, set[str]] = {}
    for item in EXERCISES.values():
        kinds.setdefault(item.module, set()).add(item.kind)
    assert all({"predict", "interpret"} <= found for found in kinds.values()), kinds
    assert sum(item.answer_type == "promql" for item in EXERCISES.values()) >= 12
