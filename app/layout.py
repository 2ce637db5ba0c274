"""Where everything lives under VAR_DIR: written once, read by the app, the worker, the
launcher, the analysis, the benchmarks and the tests.

    VAR_DIR/
      todo.db, broker.db, results.db   the embedded SQLite data, broker and result store
      faults.json                      the fault switchboard
      exports/                         finished CSV exports
      log/<service>.jsonl|.log         each service's output (web.jsonl, worker.jsonl, ...)
      log/spans.jsonl                  the local span file (no OTLP endpoint configured)
      run/<service>.pid                what `lab up` started (pid + start time)
      prometheus/web, prometheus/worker   multiprocess metric files of each process family
      prometheus/prometheus.yml, prometheus/data   the local Prometheus: config and storage
      room/room.sqlite                 the room service's state (`lab room serve`, facilitator)
      room/joined.json, room/outbox.sqlite   a learner's room and verdicts not yet sent

Reports (Locust's, the executed notebooks, the lab report) go to LAB_REPORTS_DIR, by
default reports/ in the checkout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"

# Services whose output is plain text rather than our JSON lines.
PLAIN_TEXT_LOGS = frozenset({"caddy", "prometheus", "jupyter", "alertmanager", "alert-receiver"})


@dataclass(frozen=True)
class Layout:
    """The files and directories of one VAR_DIR (and where reports are written)."""

    var_dir: Path = DEFAULT_VAR_DIR
    reports_dir: Path = PROJECT_ROOT / "reports"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Layout:
        """VAR_DIR and LAB_REPORTS_DIR from the environment (os.environ by default), absolute."""
        source = os.environ if env is None else env
        var_dir = source.get("VAR_DIR", "").strip()
        reports = source.get("LAB_REPORTS_DIR", "").strip()
        return cls(
            # Absolute, so children started with another cwd agree on the same directory.
            var_dir=Path(var_dir).expanduser().resolve() if var_dir else DEFAULT_VAR_DIR,
            reports_dir=Path(reports).expanduser().resolve() if reports else PROJECT_ROOT / "reports",
        )

    @property
    def database_file(self) -> Path:
        """The embedded SQLite database."""
        return self.var_dir / "todo.db"

    @property
    def broker_file(self) -> Path:
        """The embedded SQLite-backed Celery broker."""
        return self.var_dir / "broker.db"

    @property
    def results_file(self) -> Path:
        """The embedded SQLite Celery result store."""
        return self.var_dir / "results.db"

    @property
    def faults_file(self) -> Path:
        """The fault switchboard every web and worker process re-reads."""
        return self.var_dir / "faults.json"

    @property
    def export_dir(self) -> Path:
        """Finished CSV exports."""
        return self.var_dir / "exports"

    @property
    def log_dir(self) -> Path:
        """Every service's output."""
        return self.var_dir / "log"

    def log(self, service: str) -> Path:
        """The output of service: log/<service>.jsonl (or .log for plain-text programs)."""
        suffix = ".log" if service in PLAIN_TEXT_LOGS else ".jsonl"
        return self.log_dir / f"{service}{suffix}"

    @property
    def span_file(self) -> Path:
        """The local span file, when no OTLP endpoint is configured."""
        return self.log_dir / "spans.jsonl"

    @property
    def run_dir(self) -> Path:
        """Pid files of the services `lab up` started."""
        return self.var_dir / "run"

    def pid_file(self, service: str) -> Path:
        """run/<service>.pid."""
        return self.run_dir / f"{service}.pid"

    def metrics_dir(self, family: str) -> Path:
        """The multiprocess metric files of one process family ("web" or "worker")."""
        return self.var_dir / "prometheus" / family

    @property
    def prometheus_config(self) -> Path:
        """The local Prometheus's rendered configuration."""
        return self.var_dir / "prometheus" / "prometheus.yml"

    @property
    def prometheus_targets(self) -> Path:
        """The local Prometheus's file_sd target files, one per job (the launcher rewrites them
        as the fleet changes; Prometheus re-reads them on its own)."""
        return self.var_dir / "prometheus" / "targets"

    @property
    def caddy_upstreams(self) -> Path:
        """The web replicas Caddy balances over, with its health checks (a Caddyfile snippet)."""
        return self.var_dir / "caddy" / "upstreams.caddy"

    @property
    def prometheus_data(self) -> Path:
        """The local Prometheus's storage."""
        return self.var_dir / "prometheus" / "data"

    @property
    def room_dir(self) -> Path:
        """The room: the service's database on a facilitator's laptop, the joined room and the
        outbox of verdicts not yet sent on a learner's."""
        return self.var_dir / "room"

    def state_dir(self, program: str) -> Path:
        """A directory of a program's own state (Caddy's XDG dirs, Jupyter's runtime)."""
        return self.var_dir / program
