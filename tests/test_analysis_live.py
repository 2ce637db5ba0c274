"""The verification table against a live run: real gunicorn, real Prometheus, known traffic.

Prometheus scrapes gunicorn every second. The test sends a known plan (200s, 201s, 404s and
slow 503s), then checks that every verdict passes, and that a wrong expectation fails.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis import logs, prom, traces, verify
from tests.data.analysis.record import PLAN, plan_counts, quiet_edge, recording_stack, send_plan

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_verification_table_passes_on_a_live_run_and_catches_a_wrong_expectation(
        tmp_path: Path) -> None:
    known = plan_counts(PLAN)
    with recording_stack(tmp_path) as stack:
        start = quiet_edge(stack.prometheus.url)
        seen = send_plan(stack.web.url)
        end = quiet_edge(stack.prometheus.url)
        prometheus = prom.Prometheus(stack.prometheus.url, scrape_interval_s=1.0)
        log_load = logs.load_logs(stack.web.log_path)
        checks = [
            *verify.known_truth(prometheus, start, end, known["requests"], known["errors_5xx"]),
            *verify.prometheus_vs_logs(prometheus, log_load.frame, start, end),
        ]
        wrong = verify.known_truth(prometheus, start, end, known["requests"],
                                   known["errors_5xx"] + 1)
        red = prom.red_summary(prometheus, at=end, window="1m").set_index("name")
    # After gunicorn stopped: its workers flush their buffered spans on exit.
    spans = traces.read_span_file(stack.config.layout.span_file).spans
    joined = verify.correlate(log_load.frame, spans, pd.DataFrame(seen))
    checks += verify.correlation_checks(joined)

    table = verify.verdict_table(checks)
    assert log_load.malformed == 0
    assert (table["verdict"] == "pass").all(), table.to_string()
    assert len(table) == 8
    assert [c.passed for c in wrong] == [True, False]
    # The README's error-rate query sees the injected 503s; no job ran, so no job success rate.
    assert red.loc["error rate", "value"] > 0
    assert red.loc["job success rate", "no_traffic"]
    assert red.loc["job success rate", "note"] == prom.NO_TRAFFIC_NOTE
    # Every response carried headers that lead to its log line and its trace.
    assert int(joined["header_matches"].sum()) == known["requests"] == len(seen)
