"""The four services `lab up` runs: how each starts, where it logs, how it proves healthy."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from lab import prometheus
from lab.config import LOCAL, LabConfig
from lab.errors import LabError


@dataclass(frozen=True)
class Service:
    """One long-running process of the lab."""

    name: str
    port_var: str
    log_name: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    check: Callable[[requests.Session], str | None] = field(repr=False)
    label: str = ""
    url: str = ""
    # Ports bound besides the main one (Caddy's metrics listener).
    extra_port_vars: tuple[str, ...] = ()
    # The Debian package that provides argv[0], for binaries that are not in the venv.
    package: str = ""

    def ports(self, config: LabConfig) -> dict[str, int]:
        """Every port this service binds, by variable name."""
        return {var: config.port(var) for var in (self.port_var, *self.extra_port_vars)}

    def log_path(self, config: LabConfig) -> Path:
        """Where its output is appended."""
        return config.log_dir / self.log_name


def http_session() -> requests.Session:
    """A session for loopback checks that ignores any proxy set in the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


def _expect_200(url: str) -> Callable[[requests.Session], str | None]:
    """A check that url answers 200."""

    def check(session: requests.Session) -> str | None:
        response = session.get(url, timeout=2)
        return None if response.status_code == 200 else f"{url} answered {response.status_code}"

    return check


Check = Callable[[requests.Session], str | None]


def _all_of(*checks: Check) -> Check:
    """A check that passes when every one of checks passes (the first problem is reported)."""

    def check(session: requests.Session) -> str | None:
        for one in checks:
            problem = one(session)
            if problem:
                return problem
        return None

    return check


def child_env(config: LabConfig) -> dict[str, str]:
    """The environment every service gets: the user's, with the lab's paths and ports."""
    env = dict(config.env)
    # Each process family chooses its own multiprocess directory; an inherited one would
    # make web and worker overwrite each other's metric files.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["VAR_DIR"] = str(config.var_dir)
    env.update({name: str(port) for name, port in config.ports.items()})
    # Local mode traces by default: to the OTLP endpoint when one is configured, else the
    # app writes VAR_DIR/log/spans.jsonl. An explicit TRACING_ENABLED wins.
    if not env.get("TRACING_ENABLED", "").strip():
        env["TRACING_ENABLED"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def caddyfile(config: LabConfig) -> Path:
    """The shared Caddyfile (LAB_CADDYFILE may point at another one)."""
    override = config.env.get("LAB_CADDYFILE", "").strip()
    return Path(override) if override else config.root / "stack" / "caddy" / "Caddyfile"


def build(config: LabConfig) -> list[Service]:
    """The services in start and check order: web, worker, caddy, prometheus."""
    env = child_env(config)
    web_port = config.port("WEB_PORT")
    worker_port = config.port("WORKER_METRICS_PORT")
    caddy_port = config.port("CADDY_PORT")
    caddy_metrics = config.port("CADDY_METRICS_PORT")
    prom_port = config.port("PROMETHEUS_PORT")
    bin_dir = config.bin_dir
    caddy_env = {
        **env,
        "WEB_UPSTREAM": f"{LOCAL}:{web_port}",
        "STATIC_ROOT": str(config.root / "app" / "static"),
        # Caddy keeps autosaved config and certificates under XDG dirs: one lab, one place.
        "XDG_DATA_HOME": str(config.var_dir / "caddy" / "data"),
        "XDG_CONFIG_HOME": str(config.var_dir / "caddy" / "config"),
    }
    prom_base = f"http://{LOCAL}:{prom_port}"

    def prometheus_check(session: requests.Session) -> str | None:
        problem = _expect_200(f"{prom_base}/-/ready")(session)
        return problem or prometheus.targets_problem(session, prom_base)

    return [
        Service(
            name="web",
            port_var="WEB_PORT",
            log_name="web.jsonl",
            argv=[str(bin_dir / "gunicorn"), "-c", str(config.root / "stack" / "gunicorn.conf.py")],
            env=env,
            check=_expect_200(f"http://{LOCAL}:{web_port}/healthz"),
            label="web (direct)",
            url=f"http://{LOCAL}:{web_port}/",
        ),
        Service(
            name="worker",
            port_var="WORKER_METRICS_PORT",
            log_name="worker.jsonl",
            argv=[
                # --quiet is a global option (before the subcommand): no banner.
                str(bin_dir / "celery"), "-A", "worker.make_celery", "--quiet", "worker",
                "--pool=prefork", "--concurrency=2",
            ],
            env=env,
            check=_expect_200(f"http://{LOCAL}:{worker_port}/metrics"),
            label="worker metrics",
            url=f"http://{LOCAL}:{worker_port}/metrics",
        ),
        Service(
            name="caddy",
            port_var="CADDY_PORT",
            extra_port_vars=("CADDY_METRICS_PORT",),
            log_name="caddy.log",
            argv=["caddy", "run", "--config", str(caddyfile(config)), "--adapter", "caddyfile"],
            env=caddy_env,
            check=_all_of(
                _expect_200(f"http://{LOCAL}:{caddy_port}/healthz"),
                _expect_200(f"http://{LOCAL}:{caddy_metrics}/metrics"),
            ),
            label="app (via Caddy)",
            url=f"http://{LOCAL}:{caddy_port}/",
            package="caddy",
        ),
        Service(
            name="prometheus",
            port_var="PROMETHEUS_PORT",
            log_name="prometheus.log",
            argv=[
                "prometheus",
                f"--config.file={prometheus.config_path(config)}",
                f"--storage.tsdb.path={config.var_dir / 'prometheus' / 'data'}",
                f"--web.listen-address={LOCAL}:{prom_port}",
                "--web.enable-lifecycle",
            ],
            env=env,
            check=prometheus_check,
            label="Prometheus",
            url=f"{prom_base}/",
            package="prometheus",
        ),
    ]


def resolve_binary(service: Service, config: LabConfig) -> list[str]:
    """argv with its program found on PATH; a clear message naming the package if absent."""
    if not service.package:
        return service.argv
    found = shutil.which(service.argv[0], path=config.env.get("PATH", os.defpath))
    if not found:
        raise LabError(
            f"{service.argv[0]} not found on PATH: install the Debian package "
            f"'{service.package}' (sudo apt-get install {service.package})"
        )
    return [found, *service.argv[1:]]


def by_name(config: LabConfig) -> dict[str, Service]:
    """The services keyed by name."""
    return {service.name: service for service in build(config)}


SERVICE_NAMES = ("web", "worker", "caddy", "prometheus")
