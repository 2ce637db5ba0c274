"""Notebook 07's question: why does the 1-minute error share differ from what the client saw?
Both ways computed on a real Prometheus with a known fault (tests/support/promdata.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from analysis import prom
from curriculum import incident
from tests.support.promdata import FAULT, LIST_CHANGES, RecordedPrometheus, requests_between

pytestmark = pytest.mark.stack


def test_the_window_share_is_diluted_by_earlier_traffic_and_the_edges_give_the_clients_share(
        synthetic: RecordedPrometheus) -> None:
    on = synthetic.end + timedelta(seconds=FAULT[0])
    off = synthetic.end + timedelta(seconds=FAULT[1])
    errors = requests_between(*FAULT, endpoint="todos.toggle", status="5")
    sent = requests_between(*FAULT, endpoint="todos.toggle")
    shares = incident.error_shares(synthetic.client, "todos.toggle", on, off, window="1m",
                                   client_errors=int(errors), client_sent=int(sent), injected=0.5)
    # Between the edges: exactly the client's requests, half of them failed.
    assert (shares.fault_errors, shares.fault_requests) == (errors, sent) == (30, 60)
    assert shares.fault_share == shares.client_share == 0.5
    # Over the trailing minute: 30 more requests from before the fault, all fine.
    window_requests = requests_between(FAULT[1] - 60, FAULT[1], endpoint="todos.toggle")
    assert shares.window_requests == pytest.approx(window_requests) == 90
    assert shares.window_share == pytest.approx(errors / window_requests) == pytest.approx(1 / 3)
    assert shares.earlier_requests == pytest.approx(30)
    assert shares.diluted_share == pytest.approx(shares.window_share)
    text = shares.explanation()
    assert "30 requests made before the fault" in text and "30 errors / 90 requests = 0.33" in text
    assert "the client saw 0.50" in text


def test_a_fault_longer_than_the_window_is_not_diluted(synthetic: RecordedPrometheus) -> None:
    # api.list_todos fails a steady fifth of its requests once its last change is over.
    on = synthetic.end + timedelta(seconds=LIST_CHANGES[-1][1] + 5)
    shares = incident.error_shares(synthetic.client, "api.list_todos", on, synthetic.end)
    assert shares.earlier_requests == 0
    assert shares.window_share == pytest.approx(shares.fault_share) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="4 x the 5s scrape interval"):
        incident.error_shares(synthetic.client, "api.list_todos", on, synthetic.end, window="10s")


def test_or_zero_keeps_every_grouped_series_where_or_vector0_loses_them(
        synthetic: RecordedPrometheus) -> None:
    """Why the code and the recording rules write `or 0 * total`, never `or vector(0)`."""
    total = "sum by (endpoint) (rate(http_request_duration_seconds_count[1m]))"
    failed = 'sum by (endpoint) (rate(http_request_duration_seconds_count{status=~"5.."}[1m]))'
    at = synthetic.end - timedelta(minutes=2)  # before todos.toggle's fault: one endpoint fails
    kept = synthetic.client.instant(f"{prom.or_zero(failed, total)} / {total}", at)
    lost = synthetic.client.instant(f"({failed} or vector(0)) / {total}", at)
    assert dict(zip(kept["endpoint"], kept["value"], strict=True)) == pytest.approx(
        {"api.create_todo": 0, "api.list_todos": 0.2, "todos.index": 0, "todos.toggle": 0})
    assert list(lost["endpoint"]) == ["api.list_todos"]  # the unlabelled 0 matched nothing
    # Ungrouped, both give the same number: the red query's form changes no recorded value.
    assert synthetic.client.scalar(prom.error_rate_query().promql, at) == pytest.approx(
        synthetic.client.scalar(prom.error_rate_query().promql.replace(
            " or 0 * sum(rate(http_request_duration_seconds_count[1m]))", " or vector(0)"), at))


def test_no_query_of_ours_or_rule_uses_or_vector0() -> None:
    root = Path(__file__).resolve().parents[1]
    sources = [*root.glob("analysis/*.py"), *root.glob("stack/prometheus/rules/*.yml")]
    using = [str(p.relative_to(root)) for p in sources if "or vector(0)" in p.read_text(encoding="utf-8")]
    assert using == [], "write `(x or 0 * total)` (analysis.prom.or_zero), as the recording rules do"
