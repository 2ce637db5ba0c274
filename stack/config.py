"""The typed settings of one stack: its ports, its VAR_DIR layout, and the environment.

Read from the environment by the launcher (`LabConfig.from_env()`); built with free ports
and a private VAR_DIR by the tests and the benchmarks (`LabConfig.private(...)`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.environment import LOCAL, PORT_DEFAULTS, LabEnvironment, SettingsError
from app.layout import PROJECT_ROOT, Layout
from stack.errors import CONFIG_ERROR_EXIT, StackError
from stack.processes import free_ports

__all__ = ["LOCAL", "SCRAPE_INTERVAL", "LabConfig", "private_env"]


# How often the local Prometheus scrapes (and evaluates its rules).
SCRAPE_INTERVAL = "5s"
# The virtualenv's scripts (gunicorn, celery, lab), next to the interpreter running us.
BIN_DIR = Path(os.path.abspath(sys.executable)).parent


# Variables of the caller's shell that would point a private stack somewhere else.
_NOT_INHERITED = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "EXPORT_DIR",
                  "PROMETHEUS_MULTIPROC_DIR", "LOG_FILE", "TRACE_FILE", "TRACING_ENABLED",
                  "OBSERVABILITY", "FAULTS_FILE", "FAULTS_TOKEN", "LAB_CADDYFILE", "LAB_APP_URL",
                  "LAB_REPORTS_DIR", "LAB_VAR_DIR", "PROMETHEUS_URL", "ALERTMANAGER_URL", "JAEGER_URL",
                  "LAB_SCRAPE_INTERVAL_S", "OTEL_EXPORTER_OTLP_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass(frozen=True)
class LabConfig:
    """One lab (one VAR_DIR): where it is (its LabEnvironment: directories, ports, URLs, the
    switchboard), the environment it was started from, and how its processes run."""

    root: Path
    environment: LabEnvironment
    env: dict[str, str] = field(repr=False)
    # The Celery worker's pool size and any further arguments (the tests name each worker).
    worker_concurrency: int = 2
    worker_args: tuple[str, ...] = ()
    scrape_interval: str = SCRAPE_INTERVAL

    @property
    def layout(self) -> Layout:
        """The files under VAR_DIR (and the reports directory)."""
        return self.environment.layout

    @property
    def ports(self) -> Mapping[str, int]:
        """Each port variable and its port."""
        return self.environment.ports

    @property
    def var_dir(self) -> Path:
        """VAR_DIR, absolute."""
        return self.layout.var_dir

    @property
    def run_dir(self) -> Path:
        """Pid files: var/run/<service>.pid."""
        return self.layout.run_dir

    @property
    def log_dir(self) -> Path:
        """Process output: var/log/<service>.jsonl (or .log for Caddy and Prometheus)."""
        return self.layout.log_dir

    @property
    def workshop_dir(self) -> Path:
        """The learner's working copies of the notebooks (`lab notebook`; git-ignored with var/)."""
        return self.layout.state_dir("workshop")

    @property
    def bin_dir(self) -> Path:
        """The virtualenv's scripts (gunicorn, celery, lab)."""
        return BIN_DIR

    def port(self, name: str) -> int:
        """The port held in variable name (e.g. "WEB_PORT")."""
        return self.ports[name]

    def url(self, port_var: str, path: str = "") -> str:
        """http://127.0.0.1:<port><path>."""
        return self.environment.url(port_var, path)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LabConfig:
        """Build the config from the environment (os.environ by default)."""
        source = dict(os.environ if env is None else env)
        try:
            environment = LabEnvironment.from_env(source)
        except SettingsError as exc:
            raise StackError(str(exc), CONFIG_ERROR_EXIT) from None
        return cls(root=PROJECT_ROOT, environment=environment, env=source)

    @classmethod
    def private(cls, var_dir: Path, settings: Mapping[str, str] | None = None,
                base: Mapping[str, str] | None = None, worker_concurrency: int = 2,
                worker_args: tuple[str, ...] = (), scrape_interval: str = SCRAPE_INTERVAL) -> LabConfig:
        """A stack of its own (see private_env), with these worker and Prometheus options."""
        return dataclasses.replace(cls.from_env(private_env(var_dir, settings, base)),
                                   worker_concurrency=worker_concurrency, worker_args=worker_args,
                                   scrape_interval=scrape_interval)


def private_env(var_dir: Path, settings: Mapping[str, str] | None = None,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a stack of its own: VAR_DIR var_dir, every port free, APP_ENV=test,
    untraced, then settings (not validated here: `lab` reports a bad one itself).

    base is the environment to start from (os.environ by default) without the variables
    that would point the stack at another database, broker, VAR_DIR or collector.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in _NOT_INHERITED and not k.startswith("OTEL_")}
    env.update(zip(PORT_DEFAULTS, map(str, free_ports(len(PORT_DEFAULTS))), strict=True))
    # Untraced unless asked: a private stack measures or tests one thing at a time.
    env.update({"VAR_DIR": str(var_dir), "APP_ENV": "test", "TRACING_ENABLED": "false"})
    env.update(settings or {})
    return env
