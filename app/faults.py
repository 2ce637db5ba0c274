"""Fault injection: faults an instructor switches live, seen by every web and worker process.

The switchboard is one small JSON file (FAULTS_FILE, default $VAR_DIR/faults.json),
replaced atomically by `lab fault set/clear` (or the token-protected admin route). Each
process checks the file's identity (inode, size, mtime) on every use, which costs one
stat() call, and reloads it when it changed: a switch takes effect in every process at its
next request or task, without a restart, a broker round trip or a database query.
A file was chosen over a broker key because the embedded mode has no Redis, and over a
database row because a fault read must never add a span or a query to the traces it is
meant to disturb. In compose, web and worker share the file through a volume.

Fault names (NAME, NAME.ENDPOINT where ENDPOINT is a Flask endpoint such as todos.add, and
either with @INSTANCE to act on one replica only, INSTANCE named as Prometheus names it, e.g.
latency@127.0.0.1:5001; `lab fault set --instance web-2` writes that for you):
- error_rate=F          fraction F (0..1) of requests answered 500 by design
- latency=S or A-B      added latency in seconds, fixed S or uniform between A and B
- slow_db=S             each list/read query is preceded by a real `pg_sleep(S)` query
- export_failure_rate=F fraction F of export tasks that fail
- worker_delay=S        seconds a worker waits before running each task

A switchboard written *quiet* (the key QUIET_KEY set to true, as a blind incident writes it)
acts the same and says nothing: no log line announces the change, no span attribute names the
fault, and a request failed by design answers the app's plain "internal error". The fault is
then seen only through its effects, as on call.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace

log = logging.getLogger(__name__)

KINDS = ("error_rate", "latency", "slow_db", "export_failure_rate", "worker_delay")
_RATE_KINDS = ("error_rate", "export_failure_rate")
_SECONDS_KINDS = ("slow_db", "worker_delay")
MAX_SECONDS = 30.0
_NAME = re.compile(r"^(?P<kind>[a-z_]+)(?:\.(?P<endpoint>[A-Za-z0-9_.]+))?"
                   r"(?:@(?P<instance>[A-Za-z0-9_.:-]+))?$")
# The switchboard file's one key that is not a fault: true keeps the faults silent.
QUIET_KEY = "_quiet"
# Endpoints a fault never touches: probes and the metrics scrape must keep telling the truth.
EXEMPT_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "health.metrics", "health.background"})


class FaultError(ValueError):
    """A fault name or value that cannot be used; the message says why."""


def parse_value(kind: str, raw: str) -> float | list[float]:
    """Validate a fault value: a rate in 0..1, seconds, or a latency range A-B."""
    text = str(raw).strip()
    try:
        if kind == "latency" and "-" in text.lstrip("-"):
            low_s, high_s = text.split("-", 1)
            low, high = float(low_s), float(high_s)
            if not 0 <= low <= high <= MAX_SECONDS:
                raise FaultError(f"latency range must be 0 <= A <= B <= {MAX_SECONDS:g}, got {text}")
            return [low, high]
        value = float(text)
    except ValueError:
        raise FaultError(f"{kind} needs a number, got {text!r}") from None
    if kind in _RATE_KINDS and not 0 <= value <= 1:
        raise FaultError(f"{kind} is a fraction between 0 and 1, got {value:g}")
    if kind not in _RATE_KINDS and not 0 <= value <= MAX_SECONDS:
        raise FaultError(f"{kind} is in seconds between 0 and {MAX_SECONDS:g}, got {value:g}")
    return value


def parse_assignment(assignment: str) -> tuple[str, float | list[float]]:
    """Parse NAME=VALUE into a validated (name, value)."""
    if "=" not in assignment:
        raise FaultError(f"expected NAME=VALUE, got {assignment!r}")
    name, raw = (part.strip() for part in assignment.split("=", 1))
    match = _NAME.fullmatch(name)
    if not match or match["kind"] not in KINDS:
        raise FaultError(f"unknown fault {name!r}: expected one of {', '.join(KINDS)} "
                         "(optionally .ENDPOINT, and @INSTANCE for one replica)")
    if match["endpoint"] and match["kind"] not in ("error_rate", "latency"):
        raise FaultError(f"{match['kind']} applies to the whole service, not to one endpoint")
    return name, parse_value(match["kind"], raw)


def validate(faults: Mapping[str, Any]) -> dict[str, float | list[float]]:
    """Validate a whole fault mapping (as read from the file or sent to the admin route)."""
    return dict(parse_assignment(f"{name}={_format(value)}") for name, value in faults.items())


def _format(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{value[0]}-{value[1]}"
    return str(value)


def write_faults(path: Path, faults: Mapping[str, float | list[float]], quiet: bool = False) -> None:
    """Replace the switchboard file atomically (readers never see half a file); quiet faults
    act without a word (see the module's docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".faults.", dir=path.parent)
    content: dict[str, Any] = {**faults, QUIET_KEY: True} if quiet else dict(faults)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(content, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_faults(text: str) -> tuple[dict[str, float | list[float]], bool]:
    """The faults a switchboard file holds and whether they are quiet (the inverse of
    write_faults); ValueError when it is not a JSON object of valid faults."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object of faults, got {type(data).__name__}")
    quiet = data.pop(QUIET_KEY, False) is True
    return validate(data), quiet


@dataclass(frozen=True)
class Effect:
    """What one fault did to the current request or task, for the span and the log."""

    name: str
    detail: str


class Switchboard:
    """The faults in force for this process, reloaded whenever the file changes."""

    def __init__(self, path: Path, announce: bool = True, instance: str = "") -> None:
        """Watch path (it need not exist: no file means no fault); announce logs changes;
        instance is this replica's name, for faults set on one replica (NAME@INSTANCE)."""
        self.path = path
        self.announce = announce
        self.instance = instance
        self._signature: tuple[int, int, int] | None = None
        self._faults: dict[str, float | list[float]] = {}
        self._quiet = False
        self._lock = threading.Lock()

    def current(self) -> dict[str, float | list[float]]:
        """The faults in force now (one stat() call; a reload only when the file changed)."""
        try:
            st = self.path.stat()
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            signature = None
        if signature != self._signature:
            with self._lock:
                if signature != self._signature:
                    self._reload(signature)
        return self._faults

    @property
    def quiet(self) -> bool:
        """True while the faults in force act without a word (a blind incident)."""
        self.current()
        return self._quiet

    def _reload(self, signature: tuple[int, int, int] | None) -> None:
        faults: dict[str, float | list[float]] = {}
        quiet = False
        if signature is not None:
            try:
                faults, quiet = read_faults(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError, AttributeError) as exc:
                # A broken switchboard must not break the service: keep what was in force.
                log.error("fault file %s unreadable, keeping previous faults: %s", self.path, exc)
                self._signature = signature
                return
        self._quiet = quiet
        if faults != self._faults and self.announce and not quiet:
            summary = ", ".join(f"{k}={_format(v)}" for k, v in sorted(faults.items()))
            log.warning("fault injection changed: %s", summary or "none", extra={"faults": faults})
        self._faults = faults
        self._signature = signature

    def _lookup(self, kind: str, endpoint: str | None) -> tuple[str, float | list[float]] | None:
        """The fault of kind in force here: this replica's before the whole service's, an
        endpoint's before the service-wide one."""
        faults = self.current()
        names = [f"{kind}.{endpoint}", kind] if endpoint else [kind]
        if self.instance:
            names = [f"{name}@{self.instance}" for name in names] + names
        for name in names:
            if name in faults:
                return name, faults[name]
        return None

    def should_fail(self, kind: str, endpoint: str | None = None) -> Effect | None:
        """Draw whether this request/task fails under a rate fault."""
        found = self._lookup(kind, endpoint)
        if found is None or not isinstance(found[1], float) or found[1] <= 0:
            return None
        if random.random() < found[1]:
            return self.mark(Effect(found[0], f"rate {found[1]:g}"))
        return None

    def delay(self, kind: str, endpoint: str | None = None) -> Effect | None:
        """Sleep for a latency/delay fault; the effect says how long."""
        found = self._lookup(kind, endpoint)
        if found is None:
            return None
        value = found[1]
        seconds = random.uniform(value[0], value[1]) if isinstance(value, list) else value
        if seconds <= 0:
            return None
        effect = self.mark(Effect(found[0], f"{seconds:.3f}s"), seconds)
        time.sleep(seconds)
        return effect

    def seconds(self, kind: str) -> float:
        """The configured seconds of a whole-service fault (slow_db), 0 when off."""
        found = self._lookup(kind, None)
        return float(found[1]) if found is not None and isinstance(found[1], float) else 0.0


    def mark(self, effect: Effect, seconds: float | None = None) -> Effect:
        """Record the fault on the current span so a trace explains itself (not when quiet)."""
        if not self._quiet:
            _mark_span(effect, seconds)
        return effect


def _mark_span(effect: Effect, seconds: float | None) -> None:
    """The fault's attributes on the current span."""
    span = trace.get_current_span()
    span.set_attribute("fault.injected", True)
    span.set_attribute("fault.name", effect.name)
    if seconds is not None:
        span.set_attribute("fault.delay_ms", round(seconds * 1000, 3))


_boards: dict[tuple[Path, str], Switchboard] = {}


def switchboard(path: Path, instance: str = "") -> Switchboard:
    """The process-wide switchboard of a fault file, as replica instance reads it."""
    board = _boards.get((path, instance))
    if board is None:
        board = _boards.setdefault((path, instance), Switchboard(path, instance=instance))
    return board
