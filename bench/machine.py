"""What the benchmarks ran on: the figures only mean something next to this."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata

import psutil


def _cpu_model() -> str:
    """The CPU model from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _tool_version(argv: list[str]) -> str:
    """First line of a tool's version output, or 'not installed'."""
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "unknown"


def describe() -> list[tuple[str, str]]:
    """(what, value) rows describing this machine and the software versions."""
    packages = ("flask", "gunicorn", "sqlalchemy", "psycopg2-binary", "prometheus-client",
                "opentelemetry-sdk", "python-json-logger", "celery")
    rows = [
        ("CPU", f"{_cpu_model()}, {os.cpu_count()} logical cores (nproc)"),
        ("memory", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("PostgreSQL", _tool_version(["psql", "--version"])),
        ("Caddy", _tool_version(["caddy", "version"])),
        ("Prometheus", _tool_version(["prometheus", "--version"])),
    ]
    for name in packages:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows
