"""Every setting of the app and the worker, read from the environment in one place.

Each setting has a default and a row in the README's settings table. A bad value raises
SettingsError with a one-line message naming the variable; entry points turn it into a
clean exit instead of a traceback.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.environment import CONFIG_ERROR_EXIT, PORT_DEFAULTS, LabEnvironment, SettingsError, integer, number
from app.layout import DEFAULT_VAR_DIR, PROJECT_ROOT, Layout
from app.observability.names import WEB_SERVICE

# A placeholder for development only: production refuses to start with it.
DEV_SECRET_KEY = "dev-only-not-secret"  # noqa: S105
APP_ENVS = ("development", "test", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg2")
BROKER_SCHEMES = ("redis", "rediss", "sqla+sqlite", "sqla+postgresql", "memory")
BACKEND_SCHEMES = ("redis", "rediss", "db+sqlite", "db+postgresql", "cache+memory")
WEEK_S = 7 * 24 * 3600

# The exit status, the error type and the ports are the lab environment's (app/environment.py).
__all__ = ["CONFIG_ERROR_EXIT", "PORT_DEFAULTS", "PROJECT_ROOT", "Settings", "SettingsError",
           "mask_url", "settings_or_exit"]


def settings_or_exit(service: str) -> Settings:
    """The settings of an entry point; a bad one is one line naming it, and exit status 2."""
    try:
        return Settings.from_env()
    except SettingsError as exc:  # a clear one-line message instead of a traceback
        print(f"{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT) from None


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """Read a value that must be one of a fixed set."""
    value = env.get(name, default).strip() or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is invalid: expected one of {', '.join(choices)}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Read a boolean written as true/false, 1/0, yes/no or on/off."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is invalid: expected true or false")


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    """Read a URL whose scheme must be one we support."""
    value = env.get(name, "").strip() or default
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise SettingsError(
            f"{name} has unsupported scheme {scheme or '(none)'!r}: expected one of "
            f"{', '.join(schemes)}"
        )
    return value


# The password of a connection URL (scheme://user:password@host), also inside a JSON
# string: the log formatter masks whole lines with it (app/observability/logging.py).
PASSWORD_IN_URL = re.compile(r"(://[^:/@\s\"]*:)[^@\s\"]*@")


def mask_url(url: str) -> str:
    """Hide the password of a connection URL, for logs and messages."""
    return PASSWORD_IN_URL.sub(r"\1***@", url)


def _networks(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    """Read a comma-separated list of IP addresses or networks."""
    raw = env.get(name, default)
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(f"{name} holds {item!r}, which is not an IP address or network") from None
    return items


def _subnet(env: Mapping[str, str], name: str) -> str:
    """A CIDR network (empty when unset); SettingsError naming the variable when malformed."""
    raw = env.get(name, "").strip()
    if raw:
        try:
            ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise SettingsError(f"{name}={raw!r} is invalid: expected a network such as "
                                "172.16.80.0/24") from None
    return raw


@functools.cache
def own_address(subnet: str = "") -> str:
    """This host's address as its peers resolve its name (a container's IP on its network),
    or the host name when it does not resolve. subnet (LAB_INSTANCE_SUBNET): the address this
    host has on that network, for a container on several (compose's web: Prometheus finds it
    on the front network, while /etc/hosts may list the other first)."""
    if subnet:
        import psutil

        network = ipaddress.ip_network(subnet, strict=False)
        for addresses in psutil.net_if_addrs().values():
            for address in addresses:
                if address.family == socket.AF_INET and ipaddress.ip_address(address.address) in network:
                    return str(address.address)
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name


@dataclass(frozen=True)
class Settings:
    """The validated settings of one process; each default is written here and only here."""

    app_env: str = "development"
    log_level: str = "INFO"
    var_dir: Path = DEFAULT_VAR_DIR
    # Empty: the embedded SQLite files under var_dir (see app/layout.py).
    database_url: str = ""
    celery_broker_url: str = ""
    celery_result_backend: str = ""
    export_dir: Path = Layout().export_dir
    secret_key: str = DEV_SECRET_KEY
    max_content_length: int = 1024 * 1024
    page_size: int = 50
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    broker_timeout_s: float = 3.0
    visibility_timeout_s: int = 3600
    stale_export_s: int = 300
    idempotency_retention_s: int = 24 * 3600
    log_file: str = ""
    # Off only to measure what the access log and request metrics cost (bench/).
    observability_enabled: bool = True
    tracing_enabled: bool = False
    trace_file: str = ""
    metrics_port: int = PORT_DEFAULTS["WORKER_METRICS_PORT"]
    web_port: int = PORT_DEFAULTS["WEB_PORT"]
    gunicorn_workers: int = 2
    gunicorn_threads: int = 4
    # First-generation threshold of Python's cyclic garbage collector in gunicorn workers
    # (Python's default is 700; 0 leaves the interpreter's setting alone). bench/findings.md.
    gc_gen0_threshold: int = 10_000
    faults_file: Path = Layout().faults_file
    faults_token: str = ""
    # The replica this process belongs to, as Prometheus names its target (LAB_INSTANCE; the
    # launcher sets 127.0.0.1:<port> per replica). Empty: this host's address and port.
    instance: str = ""
    # The network whose address names this replica when LAB_INSTANCE is empty (a CIDR).
    instance_subnet: str = ""

    def instance_id(self, service: str) -> str:
        """This replica's name in logs (field `instance`) and spans (`service.instance.id`):
        LAB_INSTANCE, else <this host's address>:<the port Prometheus scrapes>, which is what
        DNS service discovery names the target in compose."""
        if self.instance:
            return self.instance
        port = self.web_port if service == WEB_SERVICE else self.metrics_port
        return f"{own_address(self.instance_subnet)}:{port}"

    @property
    def uses_embedded_database(self) -> bool:
        """True when data lives in the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    @property
    def layout(self) -> Layout:
        """The files under this process's VAR_DIR."""
        return Layout(self.var_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment (os.environ by default), validating each."""
        env = os.environ if env is None else env
        d = cls  # the defaults above, read from the class
        lab = LabEnvironment.from_env(env)  # VAR_DIR (absolute), ports, faults file and token
        var_dir, layout = lab.var_dir, lab.layout
        database_url = _url(env, "DATABASE_URL", f"sqlite:///{layout.database_file}", DATABASE_SCHEMES)
        # psycopg2 is the driver we ship; SQLAlchemy 2.1 would pick psycopg 3 for a bare URL.
        for alias in ("postgresql://", "postgres://"):
            if database_url.startswith(alias):
                database_url = "postgresql+psycopg2://" + database_url.removeprefix(alias)
        broker = _url(
            env, "CELERY_BROKER_URL", f"sqla+sqlite:///{layout.broker_file}", BROKER_SCHEMES
        )
        # A Redis broker doubles as the result store unless told otherwise; the embedded
        # broker pairs with the embedded SQLite result backend.
        backend_default = broker if broker.startswith("redis") else f"db+sqlite:///{layout.results_file}"
        backend = _url(env, "CELERY_RESULT_BACKEND", backend_default, BACKEND_SCHEMES)
        app_env = _choice(env, "APP_ENV", d.app_env, APP_ENVS)
        secret_key = env.get("SECRET_KEY", "").strip() or d.secret_key
        # .env.example's "change-me" placeholder is as public as the development key.
        if app_env == "production" and (secret_key == DEV_SECRET_KEY or secret_key.startswith("change-me")):
            raise SettingsError("SECRET_KEY must be set when APP_ENV=production")
        return cls(
            app_env=app_env,
            log_level=_choice(env, "LOG_LEVEL", d.log_level, LOG_LEVELS),
            var_dir=var_dir,
            database_url=database_url,
            celery_broker_url=broker,
            celery_result_backend=backend,
            export_dir=Path(env.get("EXPORT_DIR", "").strip() or layout.export_dir),
            secret_key=secret_key,
            max_content_length=integer(env, "MAX_CONTENT_LENGTH", d.max_content_length, low=1024,
                                       high=64 * 1024 * 1024),
            page_size=integer(env, "PAGE_SIZE", d.page_size, low=1, high=500),
            trusted_proxies=_networks(env, "TRUSTED_PROXIES", ",".join(d.trusted_proxies)),
            broker_timeout_s=number(env, "BROKER_TIMEOUT", d.broker_timeout_s, low=0.1, high=60.0),
            visibility_timeout_s=integer(env, "CELERY_VISIBILITY_TIMEOUT", d.visibility_timeout_s, low=5,
                                         high=WEEK_S),
            stale_export_s=integer(env, "STALE_EXPORT_AFTER", d.stale_export_s, low=1, high=WEEK_S),
            idempotency_retention_s=integer(env, "IDEMPOTENCY_RETENTION", d.idempotency_retention_s,
                                            low=60, high=30 * 24 * 3600),
            log_file=env.get("LOG_FILE", "").strip(),
            observability_enabled=_bool(env, "OBSERVABILITY", d.observability_enabled),
            tracing_enabled=_bool(env, "TRACING_ENABLED", d.tracing_enabled),
            trace_file=env.get("TRACE_FILE", "").strip(),
            metrics_port=lab.ports["WORKER_METRICS_PORT"],
            web_port=lab.ports["WEB_PORT"],
            gunicorn_workers=integer(env, "GUNICORN_WORKERS", d.gunicorn_workers, low=1, high=64),
            gunicorn_threads=integer(env, "GUNICORN_THREADS", d.gunicorn_threads, low=1, high=64),
            gc_gen0_threshold=integer(env, "GC_GEN0_THRESHOLD", d.gc_gen0_threshold, low=0, high=10_000_000),
            faults_file=lab.faults_file,
            faults_token=lab.faults_token,
            instance=env.get("LAB_INSTANCE", "").strip(),
            instance_subnet=_subnet(env, "LAB_INSTANCE_SUBNET"),
        )
