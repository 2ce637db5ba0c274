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
    # A replica of web or worker: its number (1-based) and its family's name ("web").
    replica: int = 1
    family: str = ""

    @property
    def offset(self) -> int:
        """How far this replica's ports are from its family's (replica 1: 0)."""
        return self.replica - 1

    def port(self, config: LabConfig) -> int:
        """The port this service (this replica) listens on."""
        return config.port(self.port_var) + self.offset

    def ports(self, config: LabConfig) -> dict[str, int]:
        """Every port this service binds, by variable name (WEB_PORT+2 for web-3)."""
        main = self.port_var if not self.offset else f"{self.port_var}+{self.offset}"
        return {main: self.port(config), **{var: config.port(var) for var in self.extra_port_vars}}

    def base_url(self, config: LabConfig, path: str = "") -> str:
        """http://127.0.0.1:<this replica's port><path>."""
        return f"http://{LOCAL}:{self.port(config)}{path}"

    @property
    def job(self) -> str:
        """Prometheus's job for it: every replica of web is a target of job web."""
        return self.family or self.name

    def instance(self, config: LabConfig) -> str:
        """Its target's name in Prometheus (the `instance` label), and its logs' and spans'."""
        port = config.port(self.scrape_port_var) + self.offset if self.scrape_port_var else self.port(config)
        return f"{LOCAL}:{port}"

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


def scrape_jobs(config: LabConfig, services: list[Service]) -> dict[str, list[str]]:
    """Prometheus's jobs for these services: job name -> its targets' host:port (one per
    replica)."""
    jobs: dict[str, list[str]] = {}
    for service in services:
        if service.scrape_port_var:
            jobs.setdefault(service.job, []).append(service.instance(config))
    return jobs


def replica_name(family: str, replica: int) -> str:
    """web, web-2, web-3: the first replica keeps the family's name (its pid and log files
    are where a one-replica lab always had them)."""
    return family if replica == 1 else f"{family}-{replica}"


def web_upstreams(config: LabConfig) -> list[str]:
    """The web replicas' addresses, as Caddy balances over them."""
    base = config.port("WEB_PORT")
    return [f"{LOCAL}:{base + i}" for i in range(config.web_replicas)]


def _worker_args(config: LabConfig, replica: int) -> list[str]:
    """The worker's own arguments; with several replicas each gets its own node name
    (Celery's events and inspect tell workers apart by it)."""
    args = list(config.worker_args)
    if config.worker_replicas == 1:
        return args
    name = replica_name("worker", replica)
    for i, arg in enumerate(args):
        if arg.startswith("--hostname="):
            node, _, host = arg.removeprefix("--hostname=").partition("@")
            args[i] = f"--hostname={node}-{replica}@{host or '%h'}"
            return args
    return [*args, f"--hostname={name}@%h"]


def _replica_env(env: dict[str, str], config: LabConfig, family: str, replica: int,
                 port_var: str) -> dict[str, str]:
    """A replica's environment: its port, its own multiprocess metrics directory (two
    replicas sharing one would sum each other's files), and its instance name."""
    port = config.port(port_var) + replica - 1
    return {
        **env,
        port_var: str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(config.layout.metrics_dir(replica_name(family, replica))),
        "LAB_INSTANCE": f"{LOCAL}:{port}",
    }


def build(config: LabConfig, only: tuple[str, ...] = ()) -> list[Service]:
    """The services in start and check order (all of them, or those named in only): web,
    worker, caddy, alert-receiver, alertmanager, prometheus (last: healthy once it sees every
    target up and, when started with it, Alertmanager active)."""
    env = child_env(config)
    bin_dir = config.bin_dir
    layout = config.layout
    caddy_env = {
        **env,
        # The web replicas and Caddy's health checks (rendered by caddy_upstreams()).
        "CADDY_UPSTREAMS": str(layout.caddy_upstreams),
        "STATIC_ROOT": str(config.root / "app" / "static"),
        # Caddy keeps autosaved config and certificates under XDG dirs: one lab, one place.
        "XDG_DATA_HOME": str(layout.state_dir("caddy") / "data"),
        "XDG_CONFIG_HOME": str(layout.state_dir("caddy") / "config"),
    }
    prom_base = config.url("PROMETHEUS_PORT")
    services = []
    for replica in range(1, config.web_replicas + 1):
        name = replica_name("web", replica)
        port = config.port("WEB_PORT") + replica - 1
        services.append(Service(
            name=name,
            port_var="WEB_PORT",
            argv=[str(bin_dir / "gunicorn"), "-c", str(config.root / "stack" / "gunicorn.conf.py")],
            env=_replica_env(env, config, "web", replica, "WEB_PORT"),
            check=_expect_200(f"http://{LOCAL}:{port}/healthz"),
            label=f"{name} (direct)",
            url=f"http://{LOCAL}:{port}/",
            scrape_port_var="WEB_PORT",
            replica=replica,
            family="web",
        ))
    for replica in range(1, config.worker_replicas + 1):
        name = replica_name("worker", replica)
        metrics = f"http://{LOCAL}:{config.port('WORKER_METRICS_PORT') + replica - 1}/metrics"
        services.append(Service(
            name=name,
            port_var="WORKER_METRICS_PORT",
            argv=[
                # --quiet is a global option (before the subcommand): no banner.
                str(bin_dir / "celery"), "-A", "worker.make_celery", "--quiet", "worker",
                "--pool=prefork", f"--concurrency={config.worker_concurrency}",
                *_worker_args(config, replica),
            ],
            env=_replica_env(env, config, "worker", replica, "WORKER_METRICS_PORT"),
            check=_expect_200(metrics),
            label=f"{name} metrics",
            url=metrics,
            scrape_port_var="WORKER_METRICS_PORT",
            ready_line=" ready.",
            replica=replica,
            family="worker",
        ))
    services += [
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
    services = [s for s in services if not only or s.name in only or s.family in only]
    # Prometheus scrapes the services started with it, itself included, and sends alerts to
    # the Alertmanager started with it.
    jobs = {**scrape_jobs(config, services), "prometheus": [f"{LOCAL}:{config.port('PROMETHEUS_PORT')}"]}
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
