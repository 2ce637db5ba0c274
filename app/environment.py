"""The lab's environment, resolved in one place, and the one parser of a setting's number.

Every program of the lab finds the lab the same way: the launcher (`stack.config.LabConfig`),
the `lab` commands, the load runner and the notebooks' context (`analysis.lab_context`) each
hold a `LabEnvironment` built here, and the app's `Settings` take VAR_DIR, the ports, the
faults file and token from it too. Its variables:

| variable | default | meaning |
|---|---|---|
| VAR_DIR (LAB_VAR_DIR wins) | ./var of the checkout | the lab's state: logs, pids, spans (made absolute) |
| LAB_REPORTS_DIR | ./reports of the checkout | Locust reports, last-run.json, the lab report |
| CADDY_PORT, WEB_PORT, ... | see PORT_DEFAULTS | each service's port on 127.0.0.1 |
| LAB_APP_URL | http://127.0.0.1:CADDY_PORT | the app through Caddy (set: a stack started elsewhere) |
| PROMETHEUS_URL | http://127.0.0.1:PROMETHEUS_PORT | Prometheus (compose's jupyter: http://prometheus:9090) |
| ALERTMANAGER_URL | http://127.0.0.1:ALERTMANAGER_PORT | Alertmanager |
| JAEGER_URL | (none) | Jaeger's query API; without it traces come from the local span file |
| FAULTS_FILE | VAR_DIR/faults.json | the fault switchboard's file |
| FAULTS_TOKEN | (empty: admin route off) | the token of the app's /admin/faults route (16+ characters) |
| LAB_SCRAPE_INTERVAL_S | 5 | Prometheus's scrape interval, in seconds |

A bad value is a `SettingsError` whose one-line message names the variable, worded the same
for every setting (`number` below).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.layout import DEFAULT_VAR_DIR, PROJECT_ROOT, Layout

# Every service of the local lab listens on the loopback interface only.
LOCAL = "127.0.0.1"

# Each port of the lab, its variable and default, written once: the app reads WEB_PORT and
# WORKER_METRICS_PORT; the stack reads them all, Locust's and JupyterLab's included.
PORT_DEFAULTS: dict[str, int] = {
    "CADDY_PORT": 8080,
    "WEB_PORT": 5000,
    "WORKER_METRICS_PORT": 9808,
    "PROMETHEUS_PORT": 9090,
    "CADDY_METRICS_PORT": 2020,
    "LOCUST_PORT": 8089,
    "JUPYTER_PORT": 8888,
    "ALERTMANAGER_PORT": 9093,
    "ALERT_RECEIVER_PORT": 9095,
}
DEFAULT_SCRAPE_INTERVAL_S = 5.0
# A token shorter than this is refused: it would be guessed.
MIN_TOKEN_LENGTH = 16

# The exit status of every entry point (web, worker, lab) refused by a bad setting.
CONFIG_ERROR_EXIT = 2


class SettingsError(ValueError):
    """A setting is missing or malformed; the message is one line that names it."""


def parse_number(name: str, raw: object, default: float | None, *, kind: type = int,
                 low: float | None = None, high: float | None = None,
                 above: float | None = None) -> float | None:
    """The number a setting holds: raw (a string from the environment or a command line, or a
    number), else default when it is unset or blank; of kind (a count takes no "2.5"), within
    [low, high] and strictly above `above` where given.

    The one parser of the lab's numeric settings: the app's, the stack's ports, the load's
    (LOAD_*) and the load profile's options all say a bad value the same way.
    """
    text = str(raw).strip() if raw is not None else ""
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise SettingsError(f"{name}={text!r} is invalid: expected {what}") from None
    if value != value:  # NaN compares false with every bound
        raise SettingsError(f"{name}={text!r} is invalid: expected a number")
    if (low is not None and value < low) or (high is not None and value > high) or \
            (above is not None and not value > above):
        raise SettingsError(f"{name}={text} is out of range: expected {_range(low, high, above)}")
    return value


def _range(low: float | None, high: float | None, above: float | None) -> str:
    """How a range reads in a message: "1..65535", "at least 1", "above 0"."""
    if above is not None:
        return f"above {above:g}" + (f" and at most {high:g}" if high is not None else "")
    if low is not None and high is not None:
        return f"{low:g}..{high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def number(env: Mapping[str, str], name: str, default: float, *, low: float | None = None,
           high: float | None = None, above: float | None = None) -> float:
    """The number env[name] holds (see parse_number), or default."""
    value = parse_number(name, env.get(name), default, kind=float, low=low, high=high, above=above)
    return float(value) if value is not None else default


def integer(env: Mapping[str, str], name: str, default: int, *, low: int | None = None,
            high: int | None = None) -> int:
    """The integer env[name] holds (see parse_number), or default."""
    value = parse_number(name, env.get(name), default, kind=int, low=low, high=high)
    return int(value) if value is not None else default


def token(env: Mapping[str, str], name: str) -> str:
    """An optional secret token: empty (feature off) or at least MIN_TOKEN_LENGTH characters."""
    value = env.get(name, "").strip()
    if value and len(value) < MIN_TOKEN_LENGTH:
        raise SettingsError(f"{name} is too short: use at least {MIN_TOKEN_LENGTH} characters "
                            "(or leave it empty)")
    return value


def _directory(env: Mapping[str, str], names: tuple[str, ...], default: Path) -> Path:
    """The first of names that is set, made absolute (children with another cwd agree), else default."""
    given = next((env[n].strip() for n in names if env.get(n, "").strip()), "")
    return Path(given).expanduser().resolve() if given else default


def _given_url(env: Mapping[str, str], name: str, default: str) -> str:
    """A URL setting without its trailing slash, else default."""
    return (env.get(name, "").strip() or default).rstrip("/")


@dataclass(frozen=True)
class LabEnvironment:
    """Where one lab is: its directories, ports, URLs and fault switchboard (see the table above)."""

    layout: Layout = field(default_factory=Layout)
    ports: Mapping[str, int] = field(default_factory=lambda: dict(PORT_DEFAULTS))
    app_url: str = f"http://{LOCAL}:{PORT_DEFAULTS['CADDY_PORT']}"
    # True when LAB_APP_URL names the app: a stack this launcher did not start (compose).
    app_elsewhere: bool = False
    prometheus_url: str = f"http://{LOCAL}:{PORT_DEFAULTS['PROMETHEUS_PORT']}"
    alertmanager_url: str = f"http://{LOCAL}:{PORT_DEFAULTS['ALERTMANAGER_PORT']}"
    jaeger_url: str | None = None
    faults_file: Path = field(default_factory=lambda: Layout().faults_file)
    faults_token: str = ""
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S

    @property
    def var_dir(self) -> Path:
        """VAR_DIR, absolute."""
        return self.layout.var_dir

    @property
    def reports_dir(self) -> Path:
        """LAB_REPORTS_DIR, absolute."""
        return self.layout.reports_dir

    def url(self, port_var: str, path: str = "") -> str:
        """http://127.0.0.1:<port of port_var><path>: a service of this lab on the loopback."""
        return f"http://{LOCAL}:{self.ports[port_var]}{path}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LabEnvironment:
        """Resolve every variable of the table above (os.environ by default), checking each."""
        source = os.environ if env is None else env
        layout = Layout(_directory(source, ("LAB_VAR_DIR", "VAR_DIR"), DEFAULT_VAR_DIR),
                        _directory(source, ("LAB_REPORTS_DIR",), PROJECT_ROOT / "reports"))
        ports = {name: integer(source, name, default, low=1, high=65535)
                 for name, default in PORT_DEFAULTS.items()}
        local = cls(layout=layout, ports=ports)  # the URLs of this lab's own services
        given_app = source.get("LAB_APP_URL", "").strip()
        faults_file = source.get("FAULTS_FILE", "").strip()
        return cls(
            layout=layout,
            ports=ports,
            app_url=_given_url(source, "LAB_APP_URL", local.url("CADDY_PORT")),
            app_elsewhere=bool(given_app),
            prometheus_url=_given_url(source, "PROMETHEUS_URL", local.url("PROMETHEUS_PORT")),
            alertmanager_url=_given_url(source, "ALERTMANAGER_URL", local.url("ALERTMANAGER_PORT")),
            jaeger_url=source.get("JAEGER_URL", "").strip().rstrip("/") or None,
            faults_file=Path(faults_file).expanduser().resolve() if faults_file else layout.faults_file,
            faults_token=token(source, "FAULTS_TOKEN"),
            scrape_interval_s=number(source, "LAB_SCRAPE_INTERVAL_S", DEFAULT_SCRAPE_INTERVAL_S,
                                     above=0, high=3600),
        )
