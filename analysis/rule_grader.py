"""A learner's alerting rule, graded by `promtool test rules` against known scenarios.

The exercise: page when more than 10% of `api.list_todos` requests fail over the last two
minutes, for at least a minute. Each scenario is a few minutes of synthetic counters (10
requests per second, scraped every 5 s) written in promtool's series notation, and says
whether a right rule fires on it. The learner's expression goes into a rules file with
`for: 1m`; for every scenario promtool evaluates it and we ask whether it fired, so the rule
is graded on what it does, not on how it is written: any grouping, any equivalent ratio,
`rate` or `increase`, is right when it fires exactly where it should.

promtool is asked to expect *no* alert; a failing test then means the alert fired, whatever
labels the learner's expression gives it (an expected alert would need its exact labels).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from app.observability import names

ALERT = "ListEndpointErrors"
FOR = "1m"
EVALUATION_INTERVAL = "5s"
COUNT = f"{names.HTTP_REQUEST_DURATION}_count"
REQUESTS_PER_STEP = 50  # 10 requests per second, one sample every 5 s
STEPS = 120  # ten minutes of samples; the rule is evaluated at the end (or where stated)


@dataclass(frozen=True)
class Scenario:
    """Synthetic counters (promtool notation), when to evaluate, and whether to fire."""

    name: str
    series: dict[str, str]  # selector -> values
    eval_time: str
    should_fire: bool


def _steady(failed_per_step: int, endpoint: str = "api.list_todos") -> dict[str, str]:
    """Ten minutes at 10 requests/s on endpoint, failed_per_step of each 50 answered 500."""
    ok = REQUESTS_PER_STEP - failed_per_step
    series = {f'{COUNT}{{job="web",endpoint="{endpoint}",status="200"}}': f"0+{ok}x{STEPS}"}
    if failed_per_step:
        series[f'{COUNT}{{job="web",endpoint="{endpoint}",status="500"}}'] = f"0+{failed_per_step}x{STEPS}"
    return series


SCENARIOS = (
    Scenario("30% of api.list_todos fail for ten minutes", _steady(15), "10m", True),
    Scenario("5% of api.list_todos fail (under the threshold)", _steady(2), "10m", False),
    Scenario("no failure at all", _steady(0), "10m", False),
    Scenario("30% of todos.index fail (another endpoint)",
             {**_steady(0), **_steady(15, "todos.index")}, "10m", False),
    Scenario("a 10-second burst of failures, then none (diluted by the 2-minute window)",
             {f'{COUNT}{{job="web",endpoint="api.list_todos",status="200"}}': "0+50x60 3000+0x1 3050+50x59",
              f'{COUNT}{{job="web",endpoint="api.list_todos",status="500"}}': "0+0x60 50+50x1 100+0x59"},
             "5m30s", False),
    Scenario("30% failed, but the last five minutes had no traffic at all",
             {f'{COUNT}{{job="web",endpoint="api.list_todos",status="200"}}': "0+35x60 2100+0x60",
              f'{COUNT}{{job="web",endpoint="api.list_todos",status="500"}}': "0+15x60 900+0x60"},
             "10m", False),
)


@dataclass(frozen=True)
class RuleGrade:
    """The outcome per scenario, and promtool's words when the rule did not even load."""

    fired: dict[str, bool]
    error: str = ""

    @property
    def right(self) -> bool:
        """True when the rule loaded and fired exactly in the scenarios that call for it."""
        return not self.error and all(self.fired[s.name] == s.should_fire for s in SCENARIOS)

    def outcomes(self) -> dict[str, str]:
        """scenario -> 'as it should' or what went wrong; the value an exercise compares."""
        if self.error:
            return {s.name: "rule did not load" for s in SCENARIOS}
        return {s.name: "as it should" if self.fired[s.name] == s.should_fire else
                ("fired, but should not" if self.fired[s.name] else "did not fire, but should")
                for s in SCENARIOS}

    def __str__(self) -> str:
        if self.error:
            return f"promtool refused the rule:\n{self.error}"
        return "\n".join(f"{'✔' if v == 'as it should' else '✘'} {k}: {v}"
                         for k, v in self.outcomes().items())


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        raise FileNotFoundError("promtool is needed (Debian package prometheus; "
                                "stack/install-system-deps.sh installs it)")
    return found


def grade(expr: str, for_: str = FOR) -> RuleGrade:
    """Run the alert `expr` (with `for_`) through promtool on every scenario."""
    promtool = _promtool()
    with tempfile.TemporaryDirectory(prefix="rule-grader-") as tmp:
        workdir = Path(tmp)
        rules = {"groups": [{"name": "workshop", "interval": EVALUATION_INTERVAL,
                             "rules": [{"alert": ALERT, "expr": expr, "for": for_}]}]}
        (workdir / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
        checked = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=workdir,
                                 capture_output=True, text=True, timeout=60, check=False)
        if checked.returncode != 0:
            return RuleGrade({}, (checked.stdout + checked.stderr).strip())
        fired = {}
        for index, scenario in enumerate(SCENARIOS):
            series = [{"series": k, "values": v} for k, v in scenario.series.items()]
            expect = [{"eval_time": scenario.eval_time, "alertname": ALERT, "exp_alerts": []}]
            test = {"rule_files": ["rules.yml"], "evaluation_interval": EVALUATION_INTERVAL,
                    "tests": [{"interval": "5s", "input_series": series, "alert_rule_test": expect}]}
            path = workdir / f"test-{index}.yml"
            path.write_text(yaml.safe_dump(test), encoding="utf-8")
            done = subprocess.run([promtool, "test", "rules", path.name], cwd=workdir,
                                  capture_output=True, text=True, timeout=60, check=False)
            output = done.stdout + done.stderr
            if done.returncode != 0 and "exp:" not in output:
                return RuleGrade({}, output.strip())  # a failure that is not "it fired"
            fired[scenario.name] = done.returncode != 0
    return RuleGrade(fired)
