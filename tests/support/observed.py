"""Helpers for the observability tests: a private stack, JSON log lines, Prometheus samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families


def stack_env(database_url: str, broker_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a web or worker process with a VAR_DIR (metrics files) of its own."""
    env = {
        "VAR_DIR": str(var_dir), "APP_ENV": "test", "LOG_LEVEL": "INFO", "BROKER_TIMEOUT": "2",
        "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url,
        "CELERY_VISIBILITY_TIMEOUT": "30",
    }
    env.update(extra)
    return env


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of a process's output as a JSON object; fails on the first line that is not."""
    records = []
    for number, line in enumerate(output.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict), f"line {number} is not a JSON object: {line!r}"
        records.append(record)
    return records


def access_lines(output: str) -> list[dict[str, Any]]:
    """The access-log records of a web process."""
    return [r for r in json_lines(output) if r.get("logger") == "app.access"]


def samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called name in one scrape of url."""
    text = requests.get(url, timeout=10).text
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found.append((dict(sample.labels), float(sample.value)))
    return found


def total(found: list[tuple[dict[str, str], float]], **labels: str) -> float:
    """The sum of the samples whose labels include labels."""
    return sum(v for lab, v in found if all(lab.get(k) == want for k, want in labels.items()))
