"""Where the launcher keeps its files and which ports it uses, read from the environment."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.layout import PROJECT_ROOT
from lab.errors import LabError

# Each port the lab knows, its variable and default. Locust and JupyterLab are started by
# other subcommands; they live here so that every port is overridable in one place.
PORT_DEFAULTS: dict[str, int] = {
    "CADDY_PORT": 8080,
    "WEB_PORT": 5000,
    "WORKER_METRICS_PORT": 9808,
    "PROMETHEUS_PORT": 9090,
    "CADDY_METRICS_PORT": 2020,
    "LOCUST_PORT": 8089,
    "JUPYTER_PORT": 8888,
}


def _port(env: Mapping[str, str], name: str) -> int:
    """Read one port variable, failing with a message that names it."""
    raw = env.get(name, "").strip()
    if not raw:
        return PORT_DEFAULTS[name]
    try:
        value = int(raw)
    except ValueError:
        raise LabError(f"{name}={raw!r} is invalid: expected a port number", 2) from None
    if not 1 <= value <= 65535:
        raise LabError(f"{name}={value} is out of range: expected 1..65535", 2)
    return value


# Every service of the local lab listens on the loopback interface only.
LOCAL = "127.0.0.1"


@dataclass(frozen=True)
class LabConfig:
    """Paths and ports of one lab (one VAR_DIR), plus the environment it was started from."""

    root: Path
    var_dir: Path
    ports: dict[str, int]
    env: dict[str, str] = field(repr=False)

    @property
    def run_dir(self) -> Path:
        """Pid files: var/run/<service>.pid."""
        return self.var_dir / "run"

    @property
    def log_dir(self) -> Path:
        """Process output: var/log/<service>.jsonl (or .log for Caddy and Prometheus)."""
        return self.var_dir / "log"

    @property
    def workshop_dir(self) -> Path:
        """The learner's working copies of the notebooks (`lab notebook`; git-ignored with var/)."""
        return self.var_dir / "workshop"

    @property
    def bin_dir(self) -> Path:
        """The virtualenv's scripts (gunicorn, celery), next to the interpreter running us."""
        return Path(os.path.abspath(sys.executable)).parent

    def port(self, name: str) -> int:
        """The port held in variable name (e.g. "WEB_PORT")."""
        return self.ports[name]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LabConfig:
        """Build the config from the environment (os.environ by default)."""
        source = dict(os.environ if env is None else env)
        raw_var = source.get("VAR_DIR", "").strip()
        # Absolute, so children started with another cwd agree on the same directory.
        var_dir = Path(raw_var).expanduser().resolve() if raw_var else PROJECT_ROOT / "var"
        ports = {name: _port(source, name) for name in PORT_DEFAULTS}
        return cls(root=PROJECT_ROOT, var_dir=var_dir, ports=ports, env=source)


def reports_dir(config: LabConfig) -> Path:
    """LAB_REPORTS_DIR, else reports/ in the checkout."""
    raw = config.env.get("LAB_REPORTS_DIR", "").strip()
    return Path(raw).expanduser().resolve() if raw else config.root / "reports"


def app_url(config: LabConfig) -> str:
    """The app through Caddy, as users reach it: LAB_APP_URL (a stack started elsewhere, e.g.
    by compose), else this lab's Caddy."""
    given = config.env.get("LAB_APP_URL", "").strip()
    return given.rstrip("/") if given else f"http://{LOCAL}:{config.port('CADDY_PORT')}"
