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


def targets_file(config: LabConfig, job: str) -> Path:
    """The file_sd file listing job's targets."""
    return config.layout.prometheus_targets / f"{job}.json"


def render(config: LabConfig, jobs: Mapping[str, Sequence[str]], alertmanagers: Sequence[str] = ()) -> str:
    """The prometheus.yml of this lab, scraping jobs (job name -> its targets' host:port,
    /metrics) and sending alerts to the Alertmanagers on the ports named by alertmanagers.

    Each job finds its targets in a file of its own (file_sd_configs, written by
    write_config): a fleet that grows or shrinks is rewritten there, and Prometheus follows
    without a reload, as it follows DNS in compose. Strings are JSON-quoted, which YAML reads
    as is.
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
    for job in jobs:
        lines += [
            f"  - job_name: {json.dumps(job)}",
            "    file_sd_configs:",
            f"      - files: [{json.dumps(str(targets_file(config, job)))}]",
            "        refresh_interval: 5s",
        ]
    return "\n".join(lines) + "\n"


def write_targets(config: LabConfig, jobs: Mapping[str, Sequence[str]]) -> None:
    """Write each job's targets file (atomically: Prometheus may read it at any moment)."""
    directory = config.layout.prometheus_targets
    directory.mkdir(parents=True, exist_ok=True)
    for job, targets in jobs.items():
        path = targets_file(config, job)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps([{"targets": list(targets), "labels": {}}], indent=1) + "\n",
                       encoding="utf-8")
        tmp.replace(path)


def write_config(config: LabConfig, jobs: Mapping[str, Sequence[str]],
                 alertmanagers: Sequence[str] = ()) -> Path:
    """Render the config and the targets files into VAR_DIR; return the config's path."""
    path = config.layout.prometheus_config
    path.parent.mkdir(parents=True, exist_ok=True)
    write_targets(config, jobs)
    path.write_text(render(config, jobs, alertmanagers), encoding="utf-8")
    return path


def targets_problem(session: requests.Session, base: str, jobs: Mapping[str, Sequence[str]]) -> str | None:
    """None when every expected target of every job is there and up; else what is wrong."""
    response = session.get(f"{base}/api/v1/targets", params={"state": "active"}, timeout=2)
    response.raise_for_status()
    targets = response.json()["data"]["activeTargets"]
    seen = {(t["labels"].get("job"), t["labels"].get("instance")) for t in targets}
    missing = [f"{job} {target}" for job, wanted in jobs.items() for target in wanted
               if (job, target) not in seen]
    if missing:
        return f"no target for {', '.join(missing)}"
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
