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


def _steady(failed_per_step: int, endpoint: str = "api.list_todos",
            per_step: int = REQUESTS_PER_STEP) -> dict[str, str]:
    """Ten minutes of per_step requests each 5 s on endpoint (10/s by default), failed_per_step of
    them answered 500."""
    ok = per_step - failed_per_step
    series = {f'{COUNT}{{job="web",endpoint="{endpoint}",status="200"}}': f"0+{ok}x{STEPS}"}
    if failed_per_step:
        series[f'{COUNT}{{job="web",endpoint="{endpoint}",status="500"}}'] = f"0+{failed_per_step}x{STEPS}"
    return series


def _phases(*phases: tuple[int, int, int], endpoint: str = "api.list_todos") -> dict[str, str]:
    """Counters through phases of (steps of 5 s, requests answered 200 per step, answered 500
    per step), one after the other (0 and 0: no traffic, the counters stay where they are)."""
    values: dict[str, list[str]] = {"200": [], "500": []}
    totals = {"200": 0, "500": 0}
    for index, (steps, ok, failed) in enumerate(phases):
        for status, step in (("200", ok), ("500", failed)):
            first = totals[status] if index == 0 else totals[status] + step
            count = steps if index == 0 else steps - 1
            values[status].append(f"{first}+{step}x{count}")
            totals[status] = first + step * count
    return {f'{COUNT}{{job="web",endpoint="{endpoint}",status="{status}"}}': " ".join(parts)
            for status, parts in values.items()}


# Each scenario tells a right rule from one kind of wrong one: the threshold (just above and
# just below 10%), the window (a longer one fires after the failures or the traffic stopped,
# a shorter one misses a share the 2 minutes still hold), the filter (another endpoint
# failing; a busy endpoint diluting a filter put on one side only) and the share against a raw
# rate (the same share at low and at high traffic).
SCENARIOS = (
    Scenario("30% of api.list_todos fail for ten minutes", _steady(15), "10m", True),
    Scenario("11% of api.list_todos fail (just above the threshold)",
             _steady(11, per_step=100), "10m", True),
    Scenario("9% of api.list_todos fail (just under the threshold)",
             _steady(9, per_step=100), "10m", False),
    Scenario("5% of api.list_todos fail (under the threshold)", _steady(2), "10m", False),
    Scenario("no failure at all", _steady(0), "10m", False),
    Scenario("30% of todos.index fail (another endpoint)",
             {**_steady(0), **_steady(15, "todos.index")}, "10m", False),
    Scenario("15% of api.list_todos fail while todos.index serves nine times as much without failing",
             {**_steady(3, per_step=20), **_steady(0, "todos.index", per_step=180)}, "10m", True),
    Scenario("20% of api.list_todos fail at 2 requests per second (quiet traffic)",
             _steady(2, per_step=10), "10m", True),
    Scenario("8% of api.list_todos fail at 100 requests per second (busy traffic)",
             _steady(40, per_step=500), "10m", False),
    Scenario("a 10-second burst of failures, then none (diluted by the 2-minute window)",
             {f'{COUNT}{{job="web",endpoint="api.list_todos",status="200"}}': "0+50x60 3000+0x1 3050+50x59",
              f'{COUNT}{{job="web",endpoint="api.list_todos",status="500"}}': "0+0x60 50+50x1 100+0x59"},
             "5m30s", False),
    Scenario("30% failed for five minutes, none in the last 50 seconds (the 2 minutes still hold 17%)",
             _phases((60, 35, 15), (10, 50, 0)), "5m45s", True),
    Scenario("30% failed, but the last 2.5 minutes had no traffic at all",
             _phases((60, 35, 15), (30, 0, 0)), "7m30s", False),
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


class RuleError(RuntimeError):
    """promtool failed for another reason than the alert firing (its own words)."""


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        raise FileNotFoundError("promtool is needed (Debian package prometheus; "
                                "stack/install-system-deps.sh installs it)")
    return found


class RuleRun:
    """One alerting rule written to a rules file, asked whether it fires on scenario after scenario.

    The one place the workshop runs promtool on a learner's rule: `grade` below and the
    exercise engine's answer_type "alert" (curriculum.exercises) both ask through it.
    """

    def __init__(self, workdir: Path, expr: str, for_: str = FOR, alert: str = ALERT) -> None:
        """Write the rule (alert name, expr, for) into workdir/rules.yml."""
        self.workdir, self.alert, self.promtool = workdir, alert, _promtool()
        rule: dict[str, str] = {"alert": alert, "expr": expr}
        if for_:
            rule["for"] = for_
        rules = {"groups": [{"name": "workshop", "interval": EVALUATION_INTERVAL, "rules": [rule]}]}
        (workdir / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
        self.runs = 0

    def problem(self) -> str:
        """promtool check rules' complaint about the rule, or "" when it loads."""
        checked = subprocess.run([self.promtool, "check", "rules", "rules.yml"], cwd=self.workdir,
                                 capture_output=True, text=True, timeout=60, check=False)
        return "" if checked.returncode == 0 else (checked.stdout + checked.stderr).strip()

    def fires(self, series: dict[str, str], eval_time: str) -> bool:
        """True when the alert is firing at eval_time on series (promtool notation, 5 s apart).

        promtool is told to expect no alert: a failure that shows what it got means the alert
        fired, whatever labels the expression gave it.
        """
        self.runs += 1
        test = {"rule_files": ["rules.yml"], "evaluation_interval": EVALUATION_INTERVAL,
                "tests": [{"interval": "5s",
                           "input_series": [{"series": k, "values": v} for k, v in series.items()],
                           "alert_rule_test": [{"eval_time": eval_time, "alertname": self.alert,
                                                "exp_alerts": []}]}]}
        path = self.workdir / f"test-{self.runs}.yml"
        path.write_text(yaml.safe_dump(test), encoding="utf-8")
        done = subprocess.run([self.promtool, "test", "rules", path.name], cwd=self.workdir,
                              capture_output=True, text=True, timeout=60, check=False)
        output = done.stdout + done.stderr
        if done.returncode != 0 and "exp:" not in output:
            raise RuleError(output.strip())
        return done.returncode != 0


def grade(expr: str, for_: str = FOR) -> RuleGrade:
    """Run the alert `expr` (with `for_`) through promtool on every scenario."""
    with tempfile.TemporaryDirectory(prefix="rule-grader-") as tmp:
        run = RuleRun(Path(tmp), expr, for_)
        error = run.problem()
        if error:
            return RuleGrade({}, error)
        try:
            return RuleGrade({s.name: run.fires(s.series, s.eval_time) for s in SCENARIOS})
        except RuleError as exc:
            return RuleGrade({}, str(exc))
