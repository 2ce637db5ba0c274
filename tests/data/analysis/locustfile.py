"""A scripted Locust user: one pass over a known request plan, then the run stops.

Used by record.py so that Locust's statistics describe a run whose counts are known.
"""

from __future__ import annotations

import gevent
from locust import HttpUser, constant, stats, task

from tests.data.analysis.record import PLAN


class ScriptedUser(HttpUser):
    """Sends PLAN once, in order, then asks the runner to quit."""

    wait_time = constant(0)

    @task
    def run_plan(self) -> None:
        """Every request of the plan; 4xx/5xx count as Locust failures (its default)."""
        for step in PLAN:
            for _ in range(step.count):
                self.client.request(step.method, step.path, json=step.json, name=step.name)
        # Locust writes --csv files from a loop every CSV_STATS_INTERVAL_SEC and not again at
        # quit: wait for one more pass or the last requests are missing from _stats.csv.
        gevent.sleep(2 * stats.CSV_STATS_INTERVAL_SEC)
        self.environment.runner.quit()  # type: ignore[union-attr]
