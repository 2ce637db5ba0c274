"""The one client of the lab's fault switchboard: every command and helper that switches
faults (`lab fault`, `lab load --fault`, `lab incident`, the notebooks' incident helper) reads
and changes the faults in force through FaultSwitch, the same way against the local and the
Docker stack.

Which way it goes, and why:

- FAULTS_TOKEN set (the compose stack sets it): through the app's token-protected admin route
  (GET/PUT /admin/faults on LAB_APP_URL). From the host, the containers' switchboard is a file
  in a named volume that the host's VAR_DIR is not; the route reaches it wherever the app runs,
  and the app writes the file its own processes read.
- no token (the local lab): the file itself (FAULTS_FILE, default $VAR_DIR/faults.json), written
  atomically. Every web and worker process reads that file; no server need be up to switch.

Read-modify-write (set, clear) is serialised within a process, so two threads switching faults
of their own (`lab load` with several fault windows) never lose each other's.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from app.environment import LabEnvironment
from app.faults import QUIET_KEY, read_faults, validate, write_faults
from stack.config import LabConfig
from stack.processes import http_session

Faults = dict[str, float | list[float]]
_CHANGING = threading.Lock()


class SwitchboardError(RuntimeError):
    """The switchboard could not be read or changed; the message says where and why."""


@dataclass(frozen=True)
class FaultSwitch:
    """The faults in force in one lab, read and switched through its file or its admin route."""

    faults_file: Path | None  # None: through the admin route
    app_url: str
    token: str | None = None

    @classmethod
    def for_env(cls, env: Mapping[str, str] | None = None) -> FaultSwitch:
        """The switchboard of the lab the environment describes (os.environ by default)."""
        return cls.for_config(LabConfig.from_env(env))

    @classmethod
    def for_config(cls, config: LabConfig) -> FaultSwitch:
        """The switchboard of the lab config describes."""
        return cls.for_environment(config.environment)

    @classmethod
    def for_environment(cls, environment: LabEnvironment) -> FaultSwitch:
        """The switchboard of a lab: its admin route when it has a token, else its file."""
        token = environment.faults_token or None
        return cls(None if token else environment.faults_file, environment.app_url, token)

    def current(self) -> Faults:
        """The faults in force now."""
        faults, _ = self._read()
        return faults

    def set(self, faults: Mapping[str, float | list[float]]) -> Faults:
        """Put faults in force (validated; the others stay); returns all in force."""
        wanted = validate(faults)
        with _CHANGING:
            now, quiet = self._read()
            return self._write({**now, **wanted}, quiet)

    def clear(self, *names: str) -> Faults:
        """Switch the named faults off (all when none is named); returns what stays."""
        with _CHANGING:
            now, quiet = self._read()
            return self._write({k: v for k, v in now.items() if names and k not in names}, quiet)

    def replace(self, faults: Mapping[str, float | list[float]], quiet: bool = False) -> Faults:
        """Put exactly faults in force; quiet ones act without a word (a blind incident)."""
        with _CHANGING:
            return self._write(validate(faults), quiet)

    def _read(self) -> tuple[Faults, bool]:
        if self.faults_file is None:
            body = self._call("GET")
            return dict(body.get("faults", {})), bool(body.get("quiet", False))
        try:
            return read_faults(self.faults_file.read_text(encoding="utf-8") or "{}")
        except FileNotFoundError:
            return {}, False
        except (OSError, ValueError) as exc:
            raise SwitchboardError(f"the fault switchboard {self.faults_file} is unreadable: {exc}") from None

    def _write(self, faults: Faults, quiet: bool) -> Faults:
        if self.faults_file is None:
            return dict(self._call("PUT", {**faults, QUIET_KEY: True} if quiet else faults)["faults"])
        write_faults(self.faults_file, faults, quiet=quiet)
        return faults

    def _call(self, method: str, body: Mapping[str, object] | None = None) -> dict[str, Any]:
        url = f"{self.app_url}/admin/faults"
        try:
            with http_session() as session:
                answer = session.request(method, url, json=body, timeout=5,
                                         headers={"Authorization": f"Bearer {self.token}"})
        except requests.RequestException as exc:
            raise SwitchboardError(f"the fault switchboard at {url} did not answer: {exc}") from None
        if answer.status_code != 200:
            try:
                reason = answer.json().get("error", answer.text)
            except ValueError:
                reason = answer.text[:200]
            raise SwitchboardError(f"the fault switchboard at {url} answered {answer.status_code}: {reason}")
        result: dict[str, Any] = answer.json()
        return result
