"""The services of the lab: how each starts, where it logs, how it proves healthy.

This is the one place a service is described. To add one (say Alertmanager), append a
Service to the list `build()` returns: its name, its port variable (with a default in
stack/config.py PORT_DEFAULTS), its argv and environment, its health check, and, when
Prometheus should scrape it, `scrape_port_var`. `lab up/status/down/logs`, the tests'
stacks and the benchmarks then start, check, scrape, log and stop it with no other change.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from app.observability import names
from stack import alertmanager_config, prometheus_config, versions
from stack.config import LOCAL, LabConfig
from stack.errors import StackError

Check = Callable[[requests.Session], str | None]


@dataclass(frozen=True)
class Service:
    """One long-running process of the lab."""

    name: str
    port_var: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    check: Check = field(repr=False)
    label: str = ""
    # What a user opens (printed by `lab up`).
    url: str = ""
    # Ports bound besides the main one (Caddy's metrics listener).
    extra_port_vars: tuple[str, ...] = ()
    # The port of its /metrics, when Prometheus scrapes it (the job is named after it).
    scrape_port_var: str = ""
    # A line its log shows once it is really ready (the worker consumes only then).
    ready_line: str = ""
    # The Debian package that provides argv[0], for binaries that are not in the venv.
    package: str = ""

    def ports(self, config: LabConfig) -> dict[str, int]:
        """Every port this service binds, by variable name."""
        return {var: config.port(var) for var in (self.port_var, *self.extra_port_vars)}

    def log_path(self, config: LabConfig) -> Path:
        """Where its output is appended."""
        return config.layout.log(self.name)


def _expect_200(url: str) -> Check:
    """A check that url answers 200."""

    def check(session: requests.Session) -> str | None:
        response = session.get(url, timeout=2)
        return None if response.status_code == 200 else f"{url} answered {response.status_code}"

    return check


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


def alertmanager_port_vars(services: list[Service]) -> list[str]:
    """The port variables of the Alertmanagers among services (Prometheus alerts them)."""
    return [s.port_var for s in services if s.name == "alertmanager"]


def scrape_jobs(services: list[Service]) -> dict[str, str]:
    """Prometheus's jobs for these services: job name -> port variable of its /metrics."""
    return {s.name: s.scrape_port_var for s in services if s.scrape_port_var}


def build(config: LabConfig, only: tuple[str, ...] = ()) -> list[Service]:
    """The services in start and check order (all of them, or those named in only): web,
    worker, caddy, alert-receiver, alertmanager, prometheus (last: healthy once it sees every
    target up and, when started with it, Alertmanager active)."""
    env = child_env(config)
    bin_dir = config.bin_dir
    layout = config.layout
    caddy_env = {
        **env,
        "WEB_UPSTREAM": f"{LOCAL}:{config.port('WEB_PORT')}",
        "STATIC_ROOT": str(config.root / "app" / "static"),
        # Caddy keeps autosaved config and certificates under XDG dirs: one lab, one place.
        "XDG_DATA_HOME": str(layout.state_dir("caddy") / "data"),
        "XDG_CONFIG_HOME": str(layout.state_dir("caddy") / "config"),
    }
    prom_base = config.url("PROMETHEUS_PORT")
    services = [
        Service(
            name="web",
            port_var="WEB_PORT",
            argv=[str(bin_dir / "gunicorn"), "-c", str(config.root / "stack" / "gunicorn.conf.py")],
            env=env,
            check=_expect_200(config.url("WEB_PORT", "/healthz")),
            label="web (direct)",
            url=config.url("WEB_PORT", "/"),
            scrape_port_var="WEB_PORT",
        ),
        Service(
            name="worker",
            port_var="WORKER_METRICS_PORT",
            argv=[
                # --quiet is a global option (before the subcommand): no banner.
                str(bin_dir / "celery"), "-A", "worker.make_celery", "--quiet", "worker",
                "--pool=prefork", f"--concurrency={config.worker_concurrency}", *config.worker_args,
            ],
            env=env,
            check=_expect_200(config.url("WORKER_METRICS_PORT", "/metrics")),
            label="worker metrics",
            url=config.url("WORKER_METRICS_PORT", "/metrics"),
            scrape_port_var="WORKER_METRICS_PORT",
            ready_line=" ready.",
        ),
        Service(
            name="caddy",
            port_var="CADDY_PORT",
            extra_port_vars=("CADDY_METRICS_PORT",),
            argv=["caddy", "run", "--config", str(caddyfile(config)), "--adapter", "caddyfile"],
            env=caddy_env,
            check=_all_of(
                _expect_200(config.url("CADDY_PORT", "/healthz")),
                _expect_200(config.url("CADDY_METRICS_PORT", "/metrics")),
            ),
            label="app (via Caddy)",
            url=config.url("CADDY_PORT", "/"),
            scrape_port_var="CADDY_METRICS_PORT",
            package="caddy",
        ),
    ]
    receiver_port = config.port("ALERT_RECEIVER_PORT")
    services += [
        # Alertmanager's webhook target: every notification, one JSON line per alert.
        Service(
            name="alert-receiver",
            port_var="ALERT_RECEIVER_PORT",
            argv=[str(bin_dir / "python"), "-m", "lab", "alert-receiver", "--bind", LOCAL,
                  "--port", str(receiver_port), "--file", str(layout.log_dir / names.ALERTS_LOG)],
            env=env,
            check=_expect_200(config.url("ALERT_RECEIVER_PORT", "/healthz")),
            label="alert receiver",
            url=config.url("ALERT_RECEIVER_PORT", "/healthz"),
        ),
        Service(
            name="alertmanager",
            port_var="ALERTMANAGER_PORT",
            argv=[
                alertmanager_config.binary(config),
                f"--config.file={alertmanager_config.config_path(config)}",
                f"--storage.path={alertmanager_config.data_dir(config)}",
                f"--web.listen-address={LOCAL}:{config.port('ALERTMANAGER_PORT')}",
                # One Alertmanager, no cluster: no gossip port to collide with another lab.
                "--cluster.listen-address=",
            ],
            env=env,
            check=_expect_200(config.url("ALERTMANAGER_PORT", "/-/ready")),
            label="Alertmanager",
            url=config.url("ALERTMANAGER_PORT", "/"),
            package="prometheus-alertmanager",
        ),
    ]
    services = [s for s in services if not only or s.name in only]
    # Prometheus scrapes the services started with it, itself included, and sends alerts to
    # the Alertmanager started with it.
    jobs = {**scrape_jobs(services), "prometheus": "PROMETHEUS_PORT"}
    with_alertmanager = any(s.name == "alertmanager" for s in services)

    def prometheus_check(session: requests.Session) -> str | None:
        problem = _expect_200(f"{prom_base}/-/ready")(session)
        problem = problem or prometheus_config.targets_problem(session, prom_base, jobs)
        if with_alertmanager:
            problem = problem or prometheus_config.alertmanager_problem(session, prom_base)
        return problem

    prometheus = Service(
        name="prometheus",
        port_var="PROMETHEUS_PORT",
        argv=[
            "prometheus",
            f"--config.file={layout.prometheus_config}",
            f"--storage.tsdb.path={layout.prometheus_data}",
            f"--web.listen-address={LOCAL}:{config.port('PROMETHEUS_PORT')}",
            "--web.enable-lifecycle",
        ],
        env=env,
        check=prometheus_check,
        label="Prometheus",
        url=f"{prom_base}/",
        scrape_port_var="PROMETHEUS_PORT",
        package="prometheus",
    )
    if not only or "prometheus" in only:
        services.append(prometheus)
    return services


SERVICE_NAMES = tuple(service.name for service in build(LabConfig.from_env({})))


def resolve_binary(service: Service, config: LabConfig) -> list[str]:
    """argv with its program found on PATH, and the flags its version needs (stack/versions.py);
    a clear message naming the package if absent or too old."""
    if not service.package:
        return service.argv
    found = shutil.which(service.argv[0], path=config.env.get("PATH", os.defpath))
    if not found:
        raise StackError(
            f"{service.argv[0]} not found on PATH: install the Debian package "
            f"'{service.package}' (sudo apt-get install {service.package})"
        )
    return versions.argv_for(service.name, [found, *service.argv[1:]])


def by_name(config: LabConfig) -> dict[str, Service]:
    """The services keyed by name."""
    return {service.name: service for service in build(config)}
