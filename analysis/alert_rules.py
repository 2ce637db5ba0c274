"""Alerts and SLOs as configured: the rules, their timers and objectives, and when an alert
*should* fire (the prediction). What *did* fire, measured on a run, is analysis.alerting.

Everything here is read from the lab's real configuration, never retyped:

- ``stack/prometheus/prometheus.yml``: scrape and evaluation intervals;
- ``stack/prometheus/rules/*.yml``: each alert's expression, range windows, threshold and
  ``for:``; the SLO objectives (``slo:objective:ratio`` in ``todo-slo.yml``);
- ``stack/alertmanager/alertmanager.yml``: ``group_wait``, ``group_interval``,
  ``repeat_interval``.

**The detection-delay model** (:func:`predict`). A fault makes a share ``e`` of requests
"bad" (5xx for the availability alerts, slower than 0.25 s for the latency ones) from time
0 on, with steady traffic before and after. An alert condition "bad share over window W >
threshold θ" holds once the fault covers a fraction ``f = θ/e`` of the traffic in the window.
From fault start to the firing notification:

1. the fault must fill ``f`` of the window: ``f·W`` seconds, or less when traffic began only
   ``lead`` seconds before the fault (then ``f·lead/(1-f)``); with several windows joined by
   ``and`` (the burn-rate alerts), the slowest one counts;
2. the sample that shows it comes from the next scrape: up to one scrape interval, plus one
   more when the 5xx series is new (its first increments precede its first sample);
3. the next rule evaluation: up to one evaluation interval (one more when the alert reads a
   series recorded by another rule group, which may be evaluated after it);
4. ``for:`` (rounded up to whole evaluations);
5. Alertmanager's ``group_wait`` for a new group (one per alertname).

From fault end to the resolved notification: the window drains until the bad share falls
below θ, ``W·(1-f)`` seconds (the *first* window to drain ends an ``and``), then one scrape,
one evaluation, and up to one ``group_interval`` (Alertmanager sends a group's changes on its
group_interval ticks).

Each term's unknown phase (where in its interval a scrape, an evaluation or a tick falls)
is the jitter of Prometheus and Alertmanager: the bounds are its extremes. Window edges are
uncertain by one scrape (rate() sees only whole samples). What the timers do not cover is
processing time (a scrape's duration, a rule group's evaluation, the notification's HTTP
round trips), which a loaded machine stretches: pass it as ``processing_s`` (see
:func:`processing_allowance`, which measures it from the stack's own metrics). With a request
rate, the bad share itself is allowed its binomial noise (:data:`SIGMAS` deviations).

The SLO alerts use the SRE Workbook's multiwindow, multi-burn-rate scheme scaled down by
:data:`LAB_TIME_SCALE` (see ``todo-slo.yml``): production 1h/5m at 14.4x and 6h/30m at 6x
of a 30-day budget become 6m/30s and 36m/3m of a 3-day budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

if TYPE_CHECKING:
    pass

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = ROOT / "stack" / "prometheus" / "prometheus.yml"
RULES_DIR = ROOT / "stack" / "prometheus" / "rules"
ALERTMANAGER_CONFIG = ROOT / "stack" / "alertmanager" / "alertmanager.yml"

# The lab's SLO windows are the production ones divided by this (todo-slo.yml says so too).
LAB_TIME_SCALE = 10
PRODUCTION_BUDGET_PERIOD = timedelta(days=30)
# A noisy bad share is allowed this many binomial standard deviations (as curriculum.incident).
SIGMAS = 4.0
ERRORS, LATENCY = "errors", "latency"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}


def duration_s(text: str | int | float | None, default: float = 0.0) -> float:
    """A Prometheus duration ("1m30s", "5m", "250ms") in seconds; default when empty."""
    if text is None or text == "":
        return default
    if isinstance(text, int | float):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


# --- the configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Timers:
    """The intervals that shape detection delay, as configured."""

    scrape_interval_s: float
    evaluation_interval_s: float
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float

    @classmethod
    def from_config(cls, prometheus_yml: Path = PROMETHEUS_CONFIG,
                    alertmanager_yml: Path = ALERTMANAGER_CONFIG) -> Timers:
        """Read the intervals from prometheus.yml and the root route of alertmanager.yml."""
        glob = (yaml.safe_load(prometheus_yml.read_text(encoding="utf-8")) or {}).get("global", {})
        route = yaml.safe_load(alertmanager_yml.read_text(encoding="utf-8"))["route"]
        scrape = duration_s(glob.get("scrape_interval"), 60.0)  # Prometheus's own defaults
        return cls(
            scrape_interval_s=scrape,
            evaluation_interval_s=duration_s(glob.get("evaluation_interval"), 60.0),
            # Alertmanager's defaults when a route leaves them out.
            group_wait_s=duration_s(route.get("group_wait"), 30.0),
            group_interval_s=duration_s(route.get("group_interval"), 300.0),
            repeat_interval_s=duration_s(route.get("repeat_interval"), 14400.0),
        )


@dataclass(frozen=True)
class Condition:
    """"The bad share over `window_s` is above `threshold`" (one side of an `and`)."""

    series: str
    window_s: float
    threshold: float
    signal: str  # ERRORS or LATENCY: which kind of bad request it counts


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule as Prometheus runs it."""

    name: str
    group: str
    expr: str
    for_s: float
    evaluation_interval_s: float
    labels: dict[str, str] = field(default_factory=dict)
    # Empty for alerts on an instant condition (a failed scrape: WorkerDown).
    conditions: tuple[Condition, ...] = ()
    # True when a condition reads a series recorded in another rule group.
    reads_other_group: bool = False

    @property
    def signal(self) -> str | None:
        """ERRORS or LATENCY for the ratio alerts, None for instant ones."""
        return self.conditions[0].signal if self.conditions else None


def _rule_groups(rules_dir: Path) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(rules_dir.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return groups


def objectives(rules_dir: Path = RULES_DIR) -> dict[str, float]:
    """SLO name -> objective (e.g. {"availability": 0.99, "latency": 0.95}) from the rules."""
    found = {}
    for group in _rule_groups(rules_dir):
        for rule in group["rules"]:
            if rule.get("record") == "slo:objective:ratio":
                match = re.fullmatch(r"\s*vector\(([0-9.]+)\)\s*", rule["expr"])
                if not match:
                    raise ValueError(f"slo:objective:ratio must be vector(NUMBER): {rule['expr']}")
                found[rule["labels"]["slo"]] = float(match.group(1))
    return found


# A compared series whose name ends in the window it covers: ...:ratio_rate6m, ...:p95_1m.
_COMPARISON = re.compile(
    r"(?P<series>[a-zA-Z_:]+:(?:ratio_rate|p(?P<quantile>\d\d)_)(?P<window>\d+[smhd]))"
    r"(?P<selector>\{[^}]*\})?\s*>\s*"
    r"(?:on\s*\(\s*slo\s*\)\s*group_left\s*\(\s*\)\s*\(\s*(?P<burn>[0-9.]+)\s*\*\s*slo:error_budget:ratio\s*\)"
    r"|(?P<number>[0-9.]+))"
)


def _conditions(expr: str, budgets: Mapping[str, float]) -> tuple[Condition, ...]:
    """The ratio conditions of an alert expression (traffic guards like rate1m > 0.1 aside)."""
    found = []
    for match in _COMPARISON.finditer(expr):
        series, window = match["series"], duration_s(match["window"])
        slo = re.search(r'slo="([^"]+)"', match["selector"] or "")
        if match["quantile"]:
            # pNN > objective seconds  <=>  more than (1 - NN%) of requests slower than it.
            threshold, signal = 1 - int(match["quantile"]) / 100, LATENCY
        elif match["burn"]:
            if not slo:
                raise ValueError(f"a burn-rate comparison needs an slo label: {expr}")
            threshold, signal = float(match["burn"]) * budgets[slo.group(1)], slo.group(1)
            signal = LATENCY if signal == "latency" else ERRORS
        else:
            threshold = float(match["number"])
            signal = LATENCY if "duration" in series or "objective" in series else ERRORS
        found.append(Condition(series, window, threshold, signal))
    return tuple(found)


def load_rules(rules_dir: Path = RULES_DIR, prometheus_yml: Path = PROMETHEUS_CONFIG) -> list[AlertRule]:
    """Every alerting rule of the rule files, with what the timing model needs."""
    glob = (yaml.safe_load(prometheus_yml.read_text(encoding="utf-8")) or {}).get("global", {})
    default_eval = duration_s(glob.get("evaluation_interval"), 60.0)
    budgets = {slo: 1 - objective for slo, objective in objectives(rules_dir).items()}
    groups = _rule_groups(rules_dir)
    recorded_in = {r["record"]: g["name"] for g in groups for r in g["rules"] if "record" in r}
    rules = []
    for group in groups:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            conditions = _conditions(rule["expr"], budgets)
            rules.append(AlertRule(
                name=rule["alert"], group=group["name"], expr=rule["expr"],
                for_s=duration_s(rule.get("for")),
                evaluation_interval_s=duration_s(group.get("interval"), default_eval),
                labels=dict(rule.get("labels", {})), conditions=conditions,
                reads_other_group=any(recorded_in.get(c.series, group["name"]) != group["name"]
                                      for c in conditions),
            ))
    return rules


def rule(name: str, rules: Sequence[AlertRule] | None = None) -> AlertRule:
    """The alerting rule called name."""
    for candidate in rules if rules is not None else load_rules():
        if candidate.name == name:
            return candidate
    raise KeyError(f"no alerting rule {name!r} in {RULES_DIR}")


# --- the prediction ------------------------------------------------------------------------


@dataclass(frozen=True)
class Delay:
    """Earliest and latest delay in seconds, and the terms they were built from."""

    earliest_s: float
    latest_s: float
    terms: dict[str, tuple[float, float]]

    def contains(self, seconds: float) -> bool:
        """True when a measured delay lies within the bounds."""
        return self.earliest_s <= seconds <= self.latest_s


@dataclass(frozen=True)
class Prediction:
    """When an alert's notifications should arrive, for one fault."""

    alert: str
    bad_share: float | None
    firing: Delay | None  # None: the fault is too weak to cross the threshold
    resolved: Delay | None


def _fill_time(fraction: float, window_s: float, lead_s: float) -> float:
    """Seconds of fault after which it makes up `fraction` of the window's traffic."""
    if fraction >= 1:
        return math.inf
    return min(fraction * window_s, fraction * lead_s / (1 - fraction))


def _share_bounds(share: float, condition: Condition, request_rate: float | None) -> tuple[float, float]:
    """The bad share's plausible range when the threshold is crossed (binomial noise)."""
    if not request_rate:
        return share, share
    requests = max(request_rate * condition.window_s * min(1.0, condition.threshold / share), 1.0)
    sigma = math.sqrt(share * (1 - share) / requests)
    return max(share - SIGMAS * sigma, 0.0), min(share + SIGMAS * sigma, 1.0)


def predict(alert: AlertRule, timers: Timers, bad_share: float | None = None,
            lead_s: float | tuple[float, float] = math.inf, request_rate: float | None = None,
            processing_s: float = 0.0) -> Prediction:
    """Earliest and latest delay from fault start to the firing notification, and from fault
    end to the resolved one (module docstring: the model and its assumptions).

    bad_share: the share of requests the fault makes bad (ratio alerts only; e.g. 0.5 for
    ``lab fault set error_rate=0.5``, 1.0 for a latency above 0.25 s on every request).
    lead_s: seconds of steady traffic before the fault (inf: the windows were full), or
    (fewest, most) when it is uncertain (other requests before the load began).
    request_rate: requests per second, to allow for the bad share's binomial noise.
    processing_s: time the timers do not cover (see processing_allowance).
    """
    scrape, evaluation = timers.scrape_interval_s, alert.evaluation_interval_s
    lead_lo, lead_hi = lead_s if isinstance(lead_s, tuple) else (lead_s, lead_s)
    # `for:` is checked on evaluation ticks: it lasts a whole number of evaluations.
    hold = math.ceil(alert.for_s / evaluation - 1e-9) * evaluation
    late_read = evaluation if alert.reads_other_group else 0.0
    common_fire = {
        "evaluation": (0.0, evaluation + late_read),
        "for": (hold, hold),
        "group_wait": (timers.group_wait_s, timers.group_wait_s),
        "processing": (0.0, processing_s),
    }
    common_resolve = {
        "evaluation": (0.0, evaluation + late_read),
        "group_interval": (0.0, timers.group_interval_s),
        "processing": (0.0, processing_s),
    }
    if not alert.conditions:
        # Instant condition: the first failed scrape shows it, the first good one clears it.
        onset = {"first failed scrape": (0.0, scrape)}
        clear = {"first good scrape": (0.0, scrape)}
    else:
        if bad_share is None:
            raise ValueError(f"{alert.name} compares a share of bad requests: pass bad_share")
        fill_lo, fill_hi, drain_lo, drain_hi = 0.0, 0.0, math.inf, math.inf
        for condition in alert.conditions:
            share_lo, share_hi = _share_bounds(bad_share, condition, request_rate)
            if share_hi <= condition.threshold:
                return Prediction(alert.name, bad_share, None, None)
            # Within the noise of the threshold it may fire, late, or never (f_hi = 1).
            f_lo = condition.threshold / share_hi
            f_hi = condition.threshold / share_lo if share_lo > condition.threshold else 1.0
            window = condition.window_s
            # rate() spans whole samples: a window holds between W - scrape and W of traffic.
            fill_lo = max(fill_lo, _fill_time(f_lo, max(window - scrape, 0.0),
                                              max(lead_lo - scrape, 0.0)) - scrape)
            fill_hi = max(fill_hi, _fill_time(f_hi, window, lead_hi + scrape))
            # The condition ends once the fault fills less than f of the window.
            drain_lo = min(drain_lo, max(window - scrape, 0.0) * (1 - f_hi) - scrape)
            drain_hi = min(drain_hi, window * (1 - f_lo))
        new_series = scrape if alert.signal == ERRORS else 0.0
        onset = {"window filling": (max(fill_lo, 0.0), fill_hi),
                 "scrape": (0.0, scrape + new_series)}
        clear = {"window draining": (max(drain_lo, 0.0), drain_hi), "scrape": (0.0, scrape)}
    firing = {**onset, **common_fire}
    resolved = {**clear, **common_resolve}
    return Prediction(
        alert.name, bad_share,
        Delay(sum(lo for lo, _ in firing.values()), sum(hi for _, hi in firing.values()), firing),
        Delay(sum(lo for lo, _ in resolved.values()), sum(hi for _, hi in resolved.values()), resolved),
    )


def predict_all(bad_shares: Mapping[str, float], timers: Timers | None = None,
                rules: Sequence[AlertRule] | None = None, **options: Any) -> pd.DataFrame:
    """One row per ratio alert whose signal is in bad_shares ({"errors": 0.5} ...): predicted
    earliest/latest firing and resolved delays in seconds (NaN: it should not fire)."""
    timers = timers or Timers.from_config()
    rows = []
    for alert in rules if rules is not None else load_rules():
        if alert.signal is None or alert.signal not in bad_shares:
            continue
        found = predict(alert, timers, bad_shares[alert.signal], **options)
        rows.append({
            "alert": alert.name, "bad_share": found.bad_share,
            "fire_earliest_s": found.firing.earliest_s if found.firing else math.nan,
            "fire_latest_s": found.firing.latest_s if found.firing else math.nan,
            "resolve_earliest_s": found.resolved.earliest_s if found.resolved else math.nan,
            "resolve_latest_s": found.resolved.latest_s if found.resolved else math.nan,
        })
    return pd.DataFrame(rows)
# --- error budget --------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorBudget:
    """An SLO's error budget over some requests."""

    objective: float
    total: float
    bad: float

    @property
    def allowed(self) -> float:
        """Bad requests the objective allows: (1 - objective) of all."""
        return (1 - self.objective) * self.total

    @property
    def remaining(self) -> float:
        """Share of the budget left: 1 untouched, 0 spent, negative overspent (NaN: no traffic)."""
        return 1 - self.bad / self.allowed if self.allowed else math.nan

    @property
    def burn_rate(self) -> float:
        """Bad share divided by the budget share: 1 spends the budget in exactly the period."""
        return (self.bad / self.total) / (1 - self.objective) if self.total else math.nan


def burn_rate_threshold(budget_spent: float, alert_window: timedelta,
                        period: timedelta = PRODUCTION_BUDGET_PERIOD) -> float:
    """The burn rate that spends `budget_spent` of the budget in `alert_window`: the Workbook's
    14.4 is 2% in 1h of 30 days, 6 is 5% in 6h."""
    return budget_spent * (period / alert_window)

def config_timers(var_dir: Path | None = None) -> Timers:
    """The timers of the running lab: the configs `lab up` rendered into var_dir when they are
    there, else the shared ones (compose mounts those)."""
    if var_dir is not None:
        rendered = (var_dir / "prometheus" / "prometheus.yml", var_dir / "alertmanager" / "alertmanager.yml")
        if all(path.is_file() for path in rendered):
            return Timers.from_config(*rendered)
    return Timers.from_config()
