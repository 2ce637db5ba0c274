"""The local Prometheus: its rendered config, and whether it sees every target up."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests

from stack.config import LOCAL, SCRAPE_INTERVAL, LabConfig

__all__ = ["SCRAPE_INTERVAL", "render", "rules_glob", "targets_problem", "write_config"]
# At most this long, and never longer than the interval, as Prometheus requires.
SCRAPE_TIMEOUT_S = 4.0


def rules_glob(config: LabConfig) -> str:
    """Absolute glob of the shared recording and alerting rules."""
    return str(config.root / "stack" / "prometheus" / "rules" / "*.yml")


def render(config: LabConfig, jobs: Mapping[str, str], alertmanagers: Sequence[str] = ()) -> str:
    """The prometheus.yml of this lab, scraping jobs (job name -> port variable, /metrics)
    and sending alerts to the Alertmanagers on the ports named by alertmanagers.

    Strings are JSON-quoted, which YAML reads as is.
    """
    lines = [
        "# Written by the stack library for this VAR_DIR; edit stack/prometheus/ instead.",
        "global:",
        f"  scrape_interval: {config.scrape_interval}",
        f"  evaluation_interval: {config.scrape_interval}",
        f"  scrape_timeout: {min(SCRAPE_TIMEOUT_S, float(config.scrape_interval.removesuffix('s'))):g}s",
    ]
    if alertmanagers:
        targets = ", ".join(json.dumps(f"{LOCAL}:{config.port(var)}") for var in alertmanagers)
        lines += ["alerting:", "  alertmanagers:", "    - static_configs:", f"        - targets: [{targets}]"]
    lines += [
        "rule_files:",
        f"  - {json.dumps(rules_glob(config))}",
        "scrape_configs:",
    ]
    for job, port_var in jobs.items():
        target = f"{LOCAL}:{config.port(port_var)}"
        lines += [
            f"  - job_name: {json.dumps(job)}",
            "    static_configs:",
            f"      - targets: [{json.dumps(target)}]",
        ]
    return "\n".join(lines) + "\n"


def write_config(config: LabConfig, jobs: Mapping[str, str], alertmanagers: Sequence[str] = ()) -> Path:
    """Render the config into VAR_DIR and return its path."""
    path = config.layout.prometheus_config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(config, jobs, alertmanagers), encoding="utf-8")
    return path


def targets_problem(session: requests.Session, base: str, jobs: Mapping[str, str]) -> str | None:
    """None when every expected job has a target and all are up; else what is wrong."""
    response = session.get(f"{base}/api/v1/targets", params={"state": "active"}, timeout=2)
    response.raise_for_status()
    targets = response.json()["data"]["activeTargets"]
    seen = {t["labels"].get("job") for t in targets}
    missing = sorted(set(jobs) - seen)
    if missing:
        return f"no target for job(s) {', '.join(missing)}"
    down = [t for t in targets if t.get("health") != "up"]
    if down:
        first = down[0]
        error = first.get("lastError") or first.get("health")
        job = first["labels"].get("job")
        return f"target {job} ({first.get('scrapeUrl')}) is {first.get('health')}: {error}"
    return None


def alertmanager_problem(session: requests.Session, base: str) -> str | None:
    """None when Prometheus lists an active Alertmanager (it delivers alerts); else why not."""
    response = session.get(f"{base}/api/v1/alertmanagers", timeout=2)
    response.raise_for_status()
    if not response.json()["data"]["activeAlertmanagers"]:
        return "no active Alertmanager yet"
    return None
