"""The typed settings of one stack: its ports, its VAR_DIR layout, and the environment.

Read from the environment by the launcher (`LabConfig.from_env()`); built with free ports
and a private VAR_DIR by the tests and the benchmarks (`LabConfig.private(...)`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.environment import LOCAL, PORT_DEFAULTS, LabEnvironment, SettingsError, integer
from app.layout import PROJECT_ROOT, Layout
from stack.errors import CONFIG_ERROR_EXIT, StackError
from stack.ports import port_in_use
from stack.processes import free_ports

__all__ = ["LOCAL", "MAX_REPLICAS", "SCRAPE_INTERVAL", "LabConfig", "private_env"]


# How often the local Prometheus scrapes (and evaluates its rules).
SCRAPE_INTERVAL = "5s"
# Replicas of web and of worker one lab may run (each web replica is 2+ processes).
MAX_REPLICAS = 8
# The fleet `lab up --web N --workers M` started, remembered until `lab down` (run/fleet.json).
FLEET_FILE = "fleet.json"
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
    # Replicas: web replica i (1-based) listens on WEB_PORT + i - 1, worker replica i serves
    # its metrics on WORKER_METRICS_PORT + i - 1 (WEB_REPLICAS, WORKER_REPLICAS; see fleet()).
    web_replicas: int = 1
    worker_replicas: int = 1

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
            web, workers = fleet(source, environment.layout.run_dir)
        except SettingsError as exc:
            raise StackError(str(exc), CONFIG_ERROR_EXIT) from None
        return cls(root=PROJECT_ROOT, environment=environment, env=source,
                   web_replicas=web, worker_replicas=workers)

    def with_fleet(self, web: int | None, workers: int | None) -> LabConfig:
        """This lab with other replica counts (None keeps one); StackError when out of range."""
        for name, value in (("--web", web), ("--workers", workers)):
            if value is not None and not 1 <= value <= MAX_REPLICAS:
                raise StackError(f"{name} must be between 1 and {MAX_REPLICAS}, got {value}",
                                 CONFIG_ERROR_EXIT)
        return dataclasses.replace(self, web_replicas=self.web_replicas if web is None else web,
                                   worker_replicas=self.worker_replicas if workers is None else workers)

    def remember_fleet(self) -> None:
        """Record the replica counts, so later commands (`lab status`, `lab logs`) see this fleet."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / FLEET_FILE).write_text(
            json.dumps({"WEB_REPLICAS": self.web_replicas, "WORKER_REPLICAS": self.worker_replicas}) + "\n",
            encoding="utf-8")

    def forget_fleet(self) -> None:
        """Back to the settings' counts (after `lab down`)."""
        (self.run_dir / FLEET_FILE).unlink(missing_ok=True)

    @classmethod
    def private(cls, var_dir: Path, settings: Mapping[str, str] | None = None,
                base: Mapping[str, str] | None = None, worker_concurrency: int = 2,
                worker_args: tuple[str, ...] = (), scrape_interval: str = SCRAPE_INTERVAL) -> LabConfig:
        """A stack of its own (see private_env), with these worker and Prometheus options."""
        return dataclasses.replace(cls.from_env(private_env(var_dir, settings, base)),
                                   worker_concurrency=worker_concurrency, worker_args=worker_args,
                                   scrape_interval=scrape_interval)


def fleet(env: Mapping[str, str], run_dir: Path) -> tuple[int, int]:
    """The replica counts of web and worker: WEB_REPLICAS and WORKER_REPLICAS when set, else
    the fleet the last `lab up` recorded, else one of each."""
    recorded: dict[str, object] = {}
    try:
        loaded = json.loads((run_dir / FLEET_FILE).read_text(encoding="utf-8"))
        recorded = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    counts = []
    for name in ("WEB_REPLICAS", "WORKER_REPLICAS"):
        given = env.get(name, "").strip()
        source = {name: given} if given else {name: str(recorded.get(name, 1))}
        counts.append(integer(source, name, 1, low=1, high=MAX_REPLICAS))
    return counts[0], counts[1]


def _fleet_ports() -> list[int]:
    """Free ports for every port variable, such that a fleet of up to MAX_REPLICAS replicas
    (WEB_PORT + i, WORKER_METRICS_PORT + i) finds its ports free too and shares none."""
    names = list(PORT_DEFAULTS)
    for _ in range(50):
        ports = free_ports(len(names))
        chosen = dict(zip(names, ports, strict=True))
        fleet = [chosen[var] + i for var in ("WEB_PORT", "WORKER_METRICS_PORT")
                 for i in range(1, MAX_REPLICAS)]
        if len(set(ports) | set(fleet)) == len(ports) + len(fleet) and max(fleet) < 65536 \
                and not any(port_in_use(port) for port in fleet):
            return ports
    return ports


def private_env(var_dir: Path, settings: Mapping[str, str] | None = None,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a stack of its own: VAR_DIR var_dir, every port free, APP_ENV=test,
    untraced, then settings (not validated here: `lab` reports a bad one itself).

    base is the environment to start from (os.environ by default) without the variables
    that would point the stack at another database, broker, VAR_DIR or collector.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in _NOT_INHERITED and not k.startswith("OTEL_")}
    env.update(zip(PORT_DEFAULTS, map(str, _fleet_ports()), strict=True))
    # Untraced unless asked: a private stack measures or tests one thing at a time.
    env.update({"VAR_DIR": str(var_dir), "APP_ENV": "test", "TRACING_ENABLED": "false"})
    env.update(settings or {})
    return env
