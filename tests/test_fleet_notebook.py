"""The fleet module on the fleet it is about: `lab up` with 3 web and 2 worker replicas,
`lab load --faults fleet` recorded, then notebooks/08-fleet.ipynb executed headless as `lab demo`
runs the notebooks (its exercises answered with their reference solutions). It must run top to
bottom, every check right, and what its worked cells find must be what the run did: the bad
replica found is the one the run made fail, the killed one went down, the slow worker was slow.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from analysis.lab_context import LabContext
from curriculum import exercises, notebook_run
from curriculum.modules import m08_fleet
from stack.databases import reserved_redis_db, temporary_pg_database
from tests.support.launcher import lab_env, lab_stack, run_lab
from tests.support.processes import wait_until

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "08-fleet.ipynb"
FLEET = {"WEB_REPLICAS": "3", "WORKER_REPLICAS": "2"}

needs_stack = pytest.mark.skipif(
    not (shutil.which("caddy") and shutil.which("prometheus")),
    reason="the Debian packages caddy and prometheus are needed (stack/install-system-deps.sh)",
)


@pytest.fixture
def own_postgres_and_redis() -> Iterator[dict[str, str]]:
    """A PostgreSQL database and a Redis database number of this test's own: the fleet's two
    workers must not take another test's export tasks (as tests/test_launcher.py)."""
    with temporary_pg_database("todolab_fleet_notebook", migrate=False) as url, reserved_redis_db() as broker:
        yield {"DATABASE_URL": url, "CELERY_BROKER_URL": broker}


def _remove_a_replica_from_discovery(config: Any, prometheus: Any) -> dict[str, int]:
    """The notebook's claim about a replica removed from discovery, on the lab's Prometheus:
    take the last web replica out of the file of targets and see what each query returns then
    (how many series). The replica's process keeps running; the file is restored after."""
    from stack import prometheus_config

    path = prometheus_config.targets_file(config, "web")
    before = path.read_text(encoding="utf-8")
    targets = json.loads(before)[0]["targets"]
    gone = targets[-1]
    prometheus_config.write_targets(config, {"web": targets[:-1]})
    try:
        wait_until(lambda: prometheus.instant(f'up{{instance="{gone}"}}').empty, 30,
                   "Prometheus dropping the removed target's up series")
        found = {query: len(prometheus.instant(query)) for query in (
            'up{job="web"} == 0', 'absent(up{job="web"})', f'absent(up{{job="web",instance="{gone}"}})')}
        return {**found, "count": int(prometheus.scalar('count(up{job="web"})'))}
    finally:
        path.write_text(before, encoding="utf-8")


def _outputs(book: Any) -> tuple[str, list[dict[str, Any]]]:
    """The text every code cell printed, and the verdict records of its exercise checks."""
    text, verdicts = [], []
    for cell in book.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            text.append(str(output.get("text", "")) + str(data.get("text/plain", "")))
            if exercises.VERDICT_MIME in data:
                verdicts.append(dict(data[exercises.VERDICT_MIME]))
    return "\n".join(text), verdicts


@pytest.mark.slow
@pytest.mark.stack
# lab up of seven processes, a 4-minute run with its quiet edges, a notebook: about 6 minutes.
@pytest.mark.timeout(900)
@needs_stack
def test_the_fleet_module_finds_on_a_recorded_fleet_run_what_the_run_did(
        tmp_path: Path, own_postgres_and_redis: dict[str, str]) -> None:
    from lab.notebook_env import notebook_env
    from stack.config import LabConfig

    reports = tmp_path / "reports"
    env = lab_env(tmp_path / "var", {**FLEET, **own_postgres_and_redis, "LAB_REPORTS_DIR": str(reports)})
    with lab_stack(env) as up:
        assert up.code == 0, up.stdout[-2000:] + up.stderr[-2000:]
        load = run_lab(env, "load", "--faults", "fleet", timeout=480)
        assert load.code == 0, load.stdout[-3000:] + load.stderr[-3000:]
        notebook_vars = {**env, **notebook_env(LabConfig.from_env(env)), exercises.FILL_VARIABLE: "1",
                         "LAB_OUTPUT_DIR": str(tmp_path / "executed")}
        outcome = notebook_run.execute(NOTEBOOK, tmp_path / "executed" / NOTEBOOK.name, notebook_vars)
        context = LabContext.from_env({"PROMETHEUS_URL": f"http://127.0.0.1:{env['PROMETHEUS_PORT']}",
                                       "LAB_VAR_DIR": env["VAR_DIR"], "LAB_REPORTS_DIR": str(reports)})
        run = context.last_run()
        prometheus = context.prometheus()
        # A learner who answers 8.2 with the lab's recording rule is right: the check compares
        # at the moments the rules were evaluated, where a rule equals its expression.
        moments = m08_fleet.rule_moments(prometheus, run.start, run.end)
        recorded = exercises.check("8.2", "instance:http_requests_errors:ratio_rate1m",
                                   prometheus=prometheus, **moments)
        the_job = f"sum(rate({m08_fleet.ERRORS}[1m])) / sum(rate({m08_fleet.WEB}[1m]))"
        fleet_wide = exercises.check("8.2", the_job, prometheus=prometheus, **moments)
        removed = _remove_a_replica_from_discovery(LabConfig.from_env(env), prometheus)
    assert outcome.ok, outcome.error
    # Removed from discovery: no `up` series to be 0; absent() of the job says nothing either,
    # absent() of the replica's own selector answers.
    assert removed == {'up{job="web"} == 0': 0, 'absent(up{job="web"})': 0,
                       next(q for q in removed if "instance" in q): 1, "count": 2}, removed
    assert recorded.right, str(recorded)
    assert fleet_wide.status == "wrong" and any("keep `instance`" in a for a in fleet_wide.advice)

    fleet = m08_fleet.FleetRun.of(run.faults)
    assert fleet.bad and fleet.slow and fleet.killed, run.faults
    assert len({fleet.bad.instance, fleet.killed.instance}) == 2

    text, verdicts = _outputs(nbformat.read(outcome.executed, as_version=4))
    assert "This run is not the fleet's run" not in text
    # Every exercise checked, right with its reference; 8.3's reference is found from the data.
    by_id = {v["id"]: v for v in verdicts}
    assert set(by_id) == {i.id for i in exercises.EXERCISES.values() if i.module == "08-fleet"}
    assert all(v["status"] == "right" for v in verdicts), verdicts
    assert by_id["8.3"]["answer"] == fleet.bad.instance
    # The worked cells: the replica topk names, the alert per replica, the check's figures.
    top = re.search(r"topk\(1, instance:http_requests_errors:ratio_rate1m\) at [\d:]+: (\S+) at ([\d.]+)",
                    text)
    assert top and top[1] == fleet.bad.instance, text
    assert 0.2 <= float(top[2]) <= 0.4  # 30% injected, over a minute of a few hundred requests
    assert f"WebReplicaErrorOutlier firing for {fleet.bad.instance}" in text
    assert f'{{instance="{fleet.killed.instance}", job="web"}} 0' in text  # up == 0 mid-crash
    assert f"bad replica {fleet.bad.instance}: ratio up to" in text
    assert f"{fleet.killed.instance} down; sum first" in text
