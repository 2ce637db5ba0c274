"""The analysis the workshop modules teach with: counter resets, cardinality in a sandbox
registry, head sampling replayed in a sandbox app, and the benchmark page read as a table."""

from __future__ import annotations

import math
import shutil
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from analysis import alert_rules, alerting, benchmarks, cardinality, counters, logs, sampling
from analysis.lab_context import FaultWindow
from app.observability import names
from curriculum import exercises, rule_grader
from curriculum.exercise_bank import EXERCISES
from tests.support.promdata import RecordedPrometheus

DATA = Path(__file__).parent / "data" / "analysis"


def test_a_drop_in_one_counter_is_a_restart_and_counts_what_came_after() -> None:
    # 0 -> 5 -> 10, restart, 3 -> 8: 5 + 5 + 3 + 5 requests were counted.
    assert counters.increase_with_resets([0, 5, 10, 3, 8]) == 18
    assert counters.increase_with_resets([4]) == 0


def test_rate_then_sum_survives_a_restart_and_sum_then_rate_counts_a_phantom_burst() -> None:
    index = pd.RangeIndex(6)
    steady = pd.DataFrame({"a": [100.0, 110, 120, 130, 140, 150],
                           "b": [500.0, 520, 540, 560, 580, 600]}, index=index)
    restarted = steady.assign(b=counters.restart(steady["b"], 3))
    assert restarted["b"].tolist() == [500, 520, 540, 20, 40, 60]

    table = counters.reset_comparison(restarted)["increase"]
    # a: 50; b: 40 before the restart, then 20 + 20 + 20 after it.
    assert table["true"] == 150
    assert table["rate then sum"] == 150
    # The sum goes 600, 630, 660, 150, 180, 210: the drop is read as a reset of everything
    # and the 150 after it counted as new, 30 + 30 + 150 + 30 + 30.
    assert table["sum then rate"] == 270
    # Without a restart both orders agree.
    assert counters.reset_comparison(steady)["increase"].nunique() == 1


def test_restart_refuses_a_position_outside_the_samples() -> None:
    with pytest.raises(ValueError, match="inside"):
        counters.restart(pd.Series([1.0, 2.0]), 0)


def test_a_label_multiplies_the_series_by_its_distinct_values_and_ids_explode_them() -> None:
    access = logs.access_lines(logs.load_logs(DATA / "web.jsonl").frame)
    table = cardinality.explosion_table(access, [[], ["endpoint"], ["http.path"], ["request_id"]])
    per_histogram = len(names.HTTP_BUCKETS) + 3  # buckets, +Inf, _count, _sum
    rows = table.set_index("labels")
    assert rows.loc["(none)", "series"] == per_histogram
    for labels, field in (("endpoint", "endpoint"), ("http.path", "http.path"), ("request_id", "request_id")):
        assert rows.loc[labels, "combinations"] == access[field].nunique()
        assert rows.loc[labels, "series"] == per_histogram * access[field].nunique()
    # One request id per request: the explosion grows with the traffic itself.
    assert rows.loc["request_id", "combinations"] == len(access)
    assert rows.loc["request_id", "series"] > rows.loc["endpoint", "series"]


def test_the_benchmark_page_reads_as_the_overhead_table_with_medians() -> None:
    table = benchmarks.overhead()
    assert {"endpoint", "configuration", "CPU ms/request", "CPU vs (a)"} <= set(table.columns)
    assert set(table["endpoint"]) >= {"GET /", "POST /api/todos", "GET /healthz"}
    # Each endpoint has the five configurations (a)..(e), and (a) is the baseline of the ratios.
    for _, rows in table.groupby("endpoint"):
        assert sorted(c[:3] for c in rows["configuration"]) == ["(a)", "(b)", "(c)", "(d)", "(e)"]
        baseline = rows[rows["configuration"].str.startswith("(a)")]
        assert baseline["CPU vs (a)"].iloc[0] == 1
    assert table["CPU ms/request"].gt(0).all()


def test_a_markdown_table_is_found_under_its_heading_only() -> None:
    page = "## One\n\n| a | b |\n|---|---|\n| 1 (0..2) | - |\n\n## Two\n\ntext\n"
    table = benchmarks.markdown_table(page, "One")
    assert table.to_dict("records") == [{"a": "1 (0..2)", "b": "-"}]
    assert benchmarks.median("1 (0..2)") == 1 and math.isnan(benchmarks.median("-"))
    with pytest.raises(KeyError):
        benchmarks.markdown_table(page, "Two")


@pytest.mark.parametrize(("flags", "sampled"), [("01", True), ("03", True), ("00", False),
                                                ("02", False), (None, False)])
def test_the_sampled_flag_is_the_lowest_bit_of_the_trace_flags(flags: str | None, sampled: bool) -> None:
    assert sampling.sampled_flag(flags) is sampled


@pytest.mark.embedded
def test_at_ten_percent_every_request_has_a_trace_id_and_only_sampled_ones_lead_to_spans(
        tmp_path: Path) -> None:
    requests = 200
    run = sampling.run_sampled(0.1, requests, tmp_path / "sandbox")
    lookups = run.lookups()
    assert len(lookups) == requests
    assert lookups[names.F_TRACE_ID].str.fullmatch(r"[0-9a-f]{32}").all()
    assert lookups[names.F_TRACE_ID].nunique() == requests  # each request its own trace
    # A lookup succeeds exactly for the requests whose traceparent says "sampled".
    assert (lookups["in_trace"] == lookups["sampled_flag"]).all()
    sampled = int(lookups["sampled_flag"].sum())
    # Binomial(200, 0.1): 20 expected, 4.2 standard deviations; 4 sigmas either side.
    assert abs(sampled - 20) <= 4 * math.sqrt(requests * 0.1 * 0.9)
    assert sampled > 0 and {s.service for s in run.spans} == {"todo-web-sandbox"}


LIST_ALERT = ('sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos",status=~"5.."}[2m])) '
              '/ sum(rate(http_request_duration_seconds_count{endpoint="api.list_todos"}[2m])) > 0.1')


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian package prometheus) is needed")
def test_promtool_grades_an_alert_rule_by_where_it_fires_not_by_how_it_is_written() -> None:
    assert rule_grader.grade(LIST_ALERT).right
    # The same rule written with increase(), a grouping and seconds: right too.
    rewritten = (LIST_ALERT.replace("sum(rate(", "sum by (job) (increase(").replace("[2m]", "[120s]"))
    assert rule_grader.grade(rewritten).right

    unfiltered = rule_grader.grade(LIST_ALERT.replace('endpoint="api.list_todos",', "")
                                   .replace('{endpoint="api.list_todos"}', ""))
    assert not unfiltered.right
    assert unfiltered.outcomes()["30% of todos.index fail (another endpoint)"] == "fired, but should not"
    assert unfiltered.outcomes()["30% of api.list_todos fail for ten minutes"] == "as it should"

    too_long = rule_grader.grade(LIST_ALERT.replace("[2m]", "[10m]"))
    assert [k for k, v in too_long.outcomes().items() if v != "as it should"] == [
        "30% failed, but the last 2.5 minutes had no traffic at all",
        "30% failed, but the last five minutes had no traffic at all"]
    low = rule_grader.grade(LIST_ALERT.replace("> 0.1", "> 0.01"))
    assert low.outcomes()["5% of api.list_todos fail (under the threshold)"] == "fired, but should not"

    broken = rule_grader.grade("sum(rate(x[2m]) >")
    assert not broken.right and "parse error" in broken.error
    assert set(broken.outcomes().values()) == {"rule did not load"}


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian package prometheus) is needed")
def test_a_wrong_alert_rule_is_never_told_the_answer() -> None:
    """5.5's bank of wrong rules (curriculum/modules/m05_alerting.py; every answer of it is graded
    by tests/test_exercises.py) is refused without the verdict showing the reference's filter."""
    bank = EXERCISES["5.5"].answers
    assert bank is not None and len(bank.wrong) >= 10 and len(bank.right) >= 4
    for wrong in bank.wrong:
        verdict = exercises.check("5.5", wrong.answer({}))
        assert not verdict.right and "status=~" not in str(verdict)


@pytest.mark.stack
def test_an_alert_that_may_never_fire_is_drawn_to_the_plots_edge(synthetic: RecordedPrometheus,
                                                                  tmp_path: Path) -> None:
    """A bad share near its threshold is predicted as 'may never fire' (latest_s = inf): the
    timeline still draws (lab demo's report and notebook 05 call it on every run)."""
    start, end = synthetic.end - timedelta(minutes=5), synthetic.end
    fault = FaultWindow("error_rate.api.list_todos", 0.3, start + timedelta(minutes=1),
                        start + timedelta(minutes=3))
    never = alert_rules.Prediction("HighErrorRate", 0.05, alert_rules.Delay(70.0, math.inf, {}), None)
    figure = alerting.plot_alert_timeline(synthetic.client, alerting.load_alerts(tmp_path / "none.jsonl"),
                                          start, end, [fault], {"HighErrorRate": (fault, never)})
    assert [ax.get_yticklabels()[0].get_text() for ax in figure.axes[1:2]] == ["HighErrorRate"]
