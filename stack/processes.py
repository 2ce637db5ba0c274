"""One process of the stack: started in a session of its own, recorded, and stopped.

Attached (Proc): the caller holds the Popen and stops it. Detached (start_detached): a pid
file holds the pid and the process's start time: a pid the kernel has since handed
to another program does not match the start time, so it is never signalled. Every service
runs in a session of its own (start_new_session), so its process group id is its pid and
one signal to the group reaches gunicorn's workers and Celery's pool children too.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

# Start times from psutil have a resolution of a clock tick (10 ms); allow for rounding.
_START_TIME_TOLERANCE_S = 0.1


@dataclass(frozen=True)
class PidRecord:
    """What a pid file says about one running service."""

    service: str
    pid: int
    create_time: float
    port: int
    argv: list[str]

    def matches(self) -> bool:
        """True while the recorded process itself still runs (same pid and start time)."""
        try:
            proc = psutil.Process(self.pid)
            same = abs(proc.create_time() - self.create_time) < _START_TIME_TOLERANCE_S
            return same and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def free_ports(count: int) -> list[int]:
    """count distinct TCP ports nobody listens on (all held open until all are chosen)."""
    with ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    return free_ports(1)[0]


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll check() until it is true; TimeoutError naming what (and the last error) after timeout s."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what} (last error: {last!r})")


def http_session() -> requests.Session:
    """A session for loopback checks that ignores any proxy set in the environment."""
    session = requests.Session()
    session.trust_env = False
    return session


# prctl(2)'s option that asks the kernel for a signal when the parent dies.
_PR_SET_PDEATHSIG = 1


def follow_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux; elsewhere
    nothing): a test run's xdist worker calls it, so it stops (and stops its stacks) with the
    run that started it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child receive SIGTERM when this process dies, or None where
    that cannot be asked: not Linux, or not the main thread (the kernel sends the signal when
    the *thread* that started the child ends, and only the main thread lives as long as the
    process)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was made
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def spawn(argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path,
          die_with_parent: bool = False) -> subprocess.Popen[bytes]:
    """Start argv in a new session (its group id is its pid), output appended to log_path.

    With die_with_parent (an attached service: a test's stack) the child is sent SIGTERM when
    this process dies, however it dies (SIGKILL included), so no service outlives the run
    that started it; a detached service (`lab up`) outlives its launcher on purpose.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent() if die_with_parent else None,
        )


@dataclass
class Proc:
    """An attached child process, its output going to a log file; the caller stops it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict, repr=False)
    # Where its output began in log_path (a log file may hold earlier runs).
    offset: int = 0

    @property
    def pid(self) -> int:
        """The process id (also its session and process group id)."""
        return self.popen.pid

    def output(self) -> str:
        """Everything the process has written so far."""
        with open(self.log_path, "rb") as fh:
            fh.seek(self.offset)
            return fh.read().decode("utf-8", errors="replace")

    def json_records(self, since: int = 0) -> list[dict[str, Any]]:
        """The JSON objects among its output from character `since` on (other lines, such as a
        server's own start-up text, are skipped)."""
        found = []
        for line in self.output()[since:].splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
        return found

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process group and wait; SIGKILL the group if it does not go."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode


def start(name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path) -> Proc:
    """Start argv attached (see Proc), its output appended to log_path; it dies with this
    process."""
    offset = log_path.stat().st_size if log_path.exists() else 0
    return Proc(name, spawn(argv, env, cwd, log_path, die_with_parent=True), log_path, dict(env), offset)


def pid_path(run_dir: Path, service: str) -> Path:
    """var/run/<service>.pid."""
    return run_dir / f"{service}.pid"


def write_pid(run_dir: Path, record: PidRecord) -> None:
    """Write the pid file atomically (a reader never sees half of it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = pid_path(run_dir, record.service)
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(json.dumps(asdict(record)) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_pid(run_dir: Path, service: str) -> PidRecord | None:
    """The record of service, or None when there is no readable pid file."""
    path = pid_path(run_dir, service)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return PidRecord(
            service=str(data["service"]),
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            port=int(data["port"]),
            argv=[str(a) for a in data.get("argv", [])],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_pid(run_dir: Path, service: str) -> None:
    """Forget service (its pid file goes)."""
    pid_path(run_dir, service).unlink(missing_ok=True)


def start_detached(
    service: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    run_dir: Path,
    port: int,
) -> tuple[subprocess.Popen[bytes], PidRecord]:
    """Start argv in a new session, output appended to log_path, and write its pid file."""
    popen = spawn(argv, env, cwd, log_path)
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        # Gone already (e.g. a bad flag): the health wait reports its exit and log.
        create_time = 0.0
    record = PidRecord(service, popen.pid, create_time, port, list(argv))
    write_pid(run_dir, record)
    return popen, record


def _alive(proc: psutil.Process) -> bool:
    """True for a process that still runs (a zombie has finished, it only awaits reaping)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def session_members(record: PidRecord) -> list[psutil.Process]:
    """Live processes of the service's session, the leader included.

    While any member lives the kernel does not reuse the session id as a pid, so members
    found here belong to the service; the start-time check only guards the leader's pid.
    """
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == record.pid and proc.create_time() >= record.create_time - 1:
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return [proc for proc in members if _alive(proc)]


def _signal_members(members: Iterable[psutil.Process], sig: int) -> None:
    """Send sig to each process, ignoring those that are already gone."""
    for proc in members:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            continue


def _wait_gone(records: Sequence[PidRecord], timeout: float) -> list[psutil.Process]:
    """Poll until no member of the records' sessions lives; return those left at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        # Looking the sessions up again also catches children forked after our signal
        # (a gunicorn worker respawned mid-shutdown).
        left = [proc for record in records for proc in session_members(record)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def stop(records: Sequence[PidRecord], timeout: float) -> dict[str, str]:
    """SIGTERM every service, SIGKILL what remains of its session after timeout seconds.

    Returns, per service, how it ended: "stopped", "killed" or "not running".
    """
    outcome: dict[str, str] = {}
    running: list[PidRecord] = []
    for record in records:
        # A live leader whose start time does not match means the pid was recycled: our
        # session is empty, and the new owner of that pid is none of our business.
        recycled = not record.matches() and _pid_is_live(record.pid)
        members = [] if recycled else session_members(record)
        if not members:
            outcome[record.service] = "not running"
            continue
        running.append(record)
        # The leader (gunicorn's master, Celery's main process) shuts its own children
        # down gracefully; signalling the children too would make Celery's pool hang.
        # Only an orphaned session gets SIGTERM member by member.
        leader = [proc for proc in members if proc.pid == record.pid]
        _signal_members(leader or members, signal.SIGTERM)
    # Zombies count as gone: the launcher is not their parent, so it cannot reap them.
    left = _wait_gone(running, timeout)
    killed = {_session_of(proc) for proc in left}
    if left:
        _signal_members(left, signal.SIGKILL)
        _wait_gone(running, 5)
    for record in running:
        outcome[record.service] = "killed" if record.pid in killed else "stopped"
    return outcome


def crash(record: PidRecord) -> bool:
    """SIGKILL every process of the service's session at once, as a crash ends it (no graceful
    shutdown, no last flush); False when it was not running. The caller removes the pid file."""
    members = session_members(record) if record.matches() else []
    _signal_members(members, signal.SIGKILL)
    _wait_gone([record], 5)
    return bool(members)


def _session_of(proc: psutil.Process) -> int | None:
    """The session id of proc, or None when it is gone."""
    try:
        return os.getsid(proc.pid)
    except OSError:
        return None


def _pid_is_live(pid: int) -> bool:
    """True when some live (non-zombie) process holds pid."""
    try:
        return _alive(psutil.Process(pid))
    except psutil.Error:
        return False
