"""Run the topology: detached (what `lab up` and `lab down` do) or attached (a context manager).

Detached: each service runs in a session of its own, recorded in VAR_DIR/run/<name>.pid
(pid + start time), and outlives the command; `down()` stops exactly what was recorded.
Attached: `attached(config)` starts the services, waits until each is healthy, yields their
handles and always stops them in `finally`, also when a later service fails to start.
Both start, check and report failures the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from stack import alertmanager_config, caddy_config, heartbeat, processes, prometheus_config, topology
from stack.config import LOCAL, LabConfig
from stack.errors import CONFIG_ERROR_EXIT, StackError
from stack.logfiles import tail
from stack.ports import port_in_use, port_owner
from stack.processes import PidRecord, Proc
from stack.topology import Service

DEFAULT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 25.0  # above gunicorn's graceful_timeout, so in-flight requests finish
# Started on demand by other commands (`lab notebook`, `lab day`'s traffic), stopped by `down()` all the same.
ON_DEMAND = ("traffic", "jupyter")

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    """Attached mode reports through exceptions only."""


@dataclass(frozen=True)
class ServiceState:
    """A service as `lab status` reports it."""

    service: Service
    record: PidRecord | None
    running: bool

    @property
    def stale(self) -> bool:
        """A pid file whose process is gone (or whose pid now belongs to another program)."""
        return self.record is not None and not self.running


def inspect(config: LabConfig, service: Service) -> ServiceState:
    """Read service's pid file and check that the very process it names still runs."""
    record = processes.read_pid(config.run_dir, service.name)
    running = record is not None and record.matches()
    return ServiceState(service, record, running)


def recorded(config: LabConfig) -> dict[str, PidRecord]:
    """Every service recorded in the pid files of this lab (on-demand ones included)."""
    found = {}
    for path in sorted(config.run_dir.glob("*.pid")):
        record = processes.read_pid(config.run_dir, path.stem)
        if record is not None:
            found[record.service] = record
    return found


def health(service: Service, session: requests.Session) -> str | None:
    """None when service passes its check; else the problem, in a few words."""
    try:
        return service.check(session)
    except requests.RequestException as exc:
        return f"not answering ({type(exc).__name__})"
    except (ValueError, KeyError) as exc:
        return f"unexpected answer ({exc})"


def validate_settings(config: LabConfig) -> None:
    """Fail before starting anything when the app's settings are invalid."""
    from app.settings import Settings, SettingsError

    try:
        Settings.from_env(topology.child_env(config))
    except SettingsError as exc:
        raise StackError(f"configuration error: {exc}", CONFIG_ERROR_EXIT) from None


def migrate(config: LabConfig) -> None:
    """Bring the database to the newest schema revision."""
    from sqlalchemy.exc import OperationalError

    from app.migrate import unusable, upgrade
    from app.settings import Settings

    try:
        upgrade(Settings.from_env(topology.child_env(config)))
    except OperationalError as exc:
        raise StackError(unusable(exc)) from None
    except Exception as exc:  # the message matters more than the traceback here
        raise StackError(f"migrations failed: {type(exc).__name__}: {exc}") from None


def check_ports(config: LabConfig, missing: list[Service]) -> None:
    """Refuse to start when a port a missing service needs is held by another program."""
    problems = []
    claimed: dict[int, str] = {}
    for service in topology.build(config):
        for var, port in service.ports(config).items():
            if port in claimed:
                problems.append(f"{var} and {claimed[port]} are both {port}: give each its own port")
            claimed[port] = var
    for service in missing:
        for var, port in service.ports(config).items():
            if port_in_use(port):
                owner = port_owner(port)
                held = f" by {owner}" if owner else ""
                problems.append(
                    f"port {port} ({var}) for {service.name} is already in use{held}: "
                    f"stop that program or set {var} to a free port"
                )
    if problems:
        raise StackError("\n".join(problems))


def _prepare(config: LabConfig, wanted: list[Service], missing: list[Service],
             ports: bool = True, schema: bool = True) -> dict[str, list[str]]:
    """Everything before the first process starts: binaries, config files, ports, schema."""
    argvs = {s.name: topology.resolve_binary(s, config) for s in missing}
    if any(s.name == "caddy" for s in missing) and not topology.caddyfile(config).is_file():
        raise StackError(f"Caddy configuration not found: {topology.caddyfile(config)}")
    if ports:
        check_ports(config, missing)
    if schema:
        migrate(config)
    if any(s.name == "caddy" for s in wanted):
        caddy_config.write_upstreams(config)
    if any(s.name == "prometheus" for s in wanted):
        prometheus_config.write_config(
            config, {**topology.scrape_jobs(config, wanted),
                     "prometheus": [f"{LOCAL}:{config.port('PROMETHEUS_PORT')}"]},
            topology.alertmanager_port_vars(wanted))
    if any(s.name == "alertmanager" for s in wanted):
        alertmanager_config.write_config(config)
    return argvs


@dataclass
class Started:
    """A service this run started: its process, and its pid record when detached."""

    service: Service
    proc: Proc
    record: PidRecord | None = None


def _ready(config: LabConfig, started: dict[str, Started], service: Service,
           session: requests.Session) -> str | None:
    """None when service is healthy (and has logged its ready line, when it has one)."""
    problem = health(service, session)
    item = started.get(service.name)
    if problem is None and service.ready_line and item is not None \
            and service.ready_line not in item.proc.output():
        problem = "has not logged that it is ready"
    return problem


def wait_healthy(config: LabConfig, wanted: list[Service], started: list[Started], timeout: float,
                 say: Say = _quiet) -> None:
    """Poll every service until all pass their check; StackError naming the first that did not."""
    session = processes.http_session()
    deadline = time.monotonic() + timeout
    by_name = {item.service.name: item for item in started}
    problems: dict[str, str | None] = {s.name: "not checked yet" for s in wanted}
    next_note = time.monotonic() + heartbeat.BEAT_S
    while True:
        for item in started:
            code = item.proc.popen.poll()
            if code is not None:
                raise StackError(failure(config, item.service, f"exited with code {code} while starting"))
        for service in wanted:
            if problems[service.name] is not None:
                problems[service.name] = _ready(config, by_name, service, session)
                if problems[service.name] is None:
                    waited = timeout - (deadline - time.monotonic())
                    say(f"{service.name}: healthy after {waited:.1f} s")
        pending = [s for s in wanted if problems[s.name] is not None]
        if not pending:
            return
        now = time.monotonic()
        if now >= next_note:  # never silent for long: what is still awaited, and why
            next_note = now + heartbeat.BEAT_S
            say(heartbeat.elapsed_line(
                f"waiting for {', '.join(s.name for s in pending)} ({pending[0].name}: "
                f"{problems[pending[0].name]})", timeout - (deadline - now), timeout))
        if time.monotonic() >= deadline:
            first = pending[0]
            raise StackError(failure(
                config, first, f"not healthy after {timeout:g} s: {problems[first.name]}"
            ))
        time.sleep(0.25)


def failure(config: LabConfig, service: Service, what: str) -> str:
    """The error for a service that failed, with the tail of its log."""
    path = service.log_path(config)
    lines = tail(path, 20)
    shown = "\n".join(f"  {line}" for line in lines) or "  (empty)"
    return f"{service.name} {what}\nlast lines of {path}:\n{shown}"


# --- detached ---------------------------------------------------------------------------------


def up(config: LabConfig, timeout: float = DEFAULT_TIMEOUT_S, say: Say = print) -> list[Started]:
    """Start every service that does not run yet, recorded in pid files; wait until all are
    healthy. Idempotent. What this call started is stopped again if anything fails."""
    validate_settings(config)
    wanted = topology.build(config)
    _scale_down(config, wanted, say)
    missing: list[Service] = []
    caddy = [s for s in wanted if s.name == "caddy"]
    if caddy and inspect(config, caddy[0]).running and _fleet_changed(config):
        # Caddy reads its upstreams once: a new set of web replicas needs a fresh Caddy.
        _stop_named(config, ["caddy"], say, "restarting for the new set of web replicas")
    for service in wanted:
        current = inspect(config, service)
        if current.running:
            assert current.record is not None
            say(f"{service.name}: already running (pid {current.record.pid})")
        else:
            if current.stale:
                processes.remove_pid(config.run_dir, service.name)
            missing.append(service)
    argvs = _prepare(config, wanted, missing)
    started: list[Started] = []
    try:
        for service in missing:
            log = service.log_path(config)
            offset = log.stat().st_size if log.exists() else 0
            popen, record = processes.start_detached(
                service.name, argvs[service.name], service.env, config.root, log, config.run_dir,
                service.port(config),
            )
            proc = Proc(service.name, popen, log, service.env, offset)
            started.append(Started(service, proc, record))
            say(f"{service.name}: started (pid {popen.pid})")
        wait_healthy(config, wanted, started, timeout, say)
    except (StackError, KeyboardInterrupt):
        if started:
            say("stopping what this run started ...")
            records = [item.record for item in started if item.record is not None]
            processes.stop(records, STOP_TIMEOUT_S)
            for item in started:
                processes.remove_pid(config.run_dir, item.service.name)
        raise
    return started


def _stop_order(names: list[str]) -> list[str]:
    """Names of recorded services in the order to stop them: on-demand ones, then the reverse
    of the start order, every replica with its family (web-3, web-2, web)."""
    families = [*ON_DEMAND, *reversed(topology.SERVICE_NAMES)]

    def rank(name: str) -> tuple[int, int]:
        family, _, number = name.rpartition("-")
        if family in families and number.isdigit():
            return families.index(family), -int(number)
        return (families.index(name), 0) if name in families else (len(families), 0)

    return sorted(names, key=rank)


def _stop_named(config: LabConfig, names: list[str], say: Say, why: str) -> None:
    """Stop the recorded services named (the extra replicas of a smaller fleet, a Caddy to
    restart), saying why."""
    records = [r for r in (processes.read_pid(config.run_dir, n) for n in names) if r is not None]
    for record in records:
        say(f"{record.service}: stopping ({why})")
    processes.stop(records, STOP_TIMEOUT_S)
    for name in names:
        processes.remove_pid(config.run_dir, name)


def _scale_down(config: LabConfig, wanted: list[Service], say: Say) -> None:
    """Stop the recorded replicas the fleet no longer has (`lab up --web 1` after `--web 3`)."""
    names = {s.name for s in wanted}
    extra = [name for name in recorded(config) if name not in names and name not in ON_DEMAND
             and name.rpartition("-")[0] in ("web", "worker")]
    if extra:
        _stop_named(config, _stop_order(extra), say, "not part of the fleet any more")


def _fleet_changed(config: LabConfig) -> bool:
    """True when Caddy runs with another set of web replicas than this config's."""
    path = config.layout.caddy_upstreams
    try:
        return path.read_text(encoding="utf-8") != caddy_config.render_upstreams(config)
    except FileNotFoundError:
        return False


def crash(config: LabConfig, name: str) -> bool:
    """SIGKILL a running service of this lab at once, as a crash ends it (no graceful stop);
    its pid file goes, so `up()` starts it again. False when it was not running."""
    record = processes.read_pid(config.run_dir, name)
    if record is None or not processes.crash(record):
        return False
    processes.remove_pid(config.run_dir, name)
    return True


def down(config: LabConfig, timeout: float = STOP_TIMEOUT_S, say: Say = print) -> dict[str, str]:
    """Stop in reverse start order what the pid files name (every replica); returns each
    service's outcome."""
    records = []
    names = _stop_order(sorted({*ON_DEMAND, *topology.SERVICE_NAMES, *recorded(config)}))
    for name in names:
        record = processes.read_pid(config.run_dir, name)
        if record is not None:
            records.append(record)
        elif processes.pid_path(config.run_dir, name).exists():
            say(f"{name}: unreadable pid file removed")
            processes.remove_pid(config.run_dir, name)
    if not records:
        return {}
    outcome = processes.stop(records, timeout)
    for record in records:
        result = outcome[record.service]
        if result == "not running":
            say(f"{record.service}: was not running (stale pid file removed)")
        elif result == "killed":
            say(f"{record.service}: killed (pid {record.pid}) after {timeout:g} s")
        else:
            say(f"{record.service}: stopped (pid {record.pid})")
        processes.remove_pid(config.run_dir, record.service)
    return outcome


# --- attached ---------------------------------------------------------------------------------


@dataclass
class Handle(Proc):
    """A running service of an attached stack: its process, log, and addresses."""

    url: str = ""
    metrics_url: str = ""
    # "web" or "worker" for a replica (Running.replicas), else "".
    family: str = ""


@dataclass
class Running:
    """An attached stack: its config and a handle per service, in start order."""

    config: LabConfig
    services: dict[str, Handle] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Handle:
        """The handle of service name."""
        return self.services[name]

    @property
    def web(self) -> Handle:
        """gunicorn (url: http://127.0.0.1:<WEB_PORT>)."""
        return self.services["web"]

    @property
    def worker(self) -> Handle:
        """The Celery worker (metrics_url: its /metrics)."""
        return self.services["worker"]

    @property
    def caddy(self) -> Handle:
        """Caddy in front of web (url: the app as users reach it)."""
        return self.services["caddy"]

    @property
    def prometheus(self) -> Handle:
        """The local Prometheus (url: its base URL)."""
        return self.services["prometheus"]

    def replicas(self, family: str) -> list[Handle]:
        """The handles of every replica of family ("web", "worker"), the first one first."""
        return [handle for handle in self.services.values() if handle.family == family]

    @property
    def env(self) -> dict[str, str]:
        """The environment the services were started with."""
        return topology.child_env(self.config)

    def stop(self) -> None:
        """Stop every service, the last started first (idempotent)."""
        for handle in reversed(self.services.values()):
            handle.stop()


def _handle(config: LabConfig, service: Service, proc: Proc) -> Handle:
    """proc as a handle with service's addresses."""
    base = service.base_url(config)
    metrics = f"http://{service.instance(config)}/metrics" if service.scrape_port_var else ""
    if service.family == "worker":
        base = metrics
    return Handle(proc.name, proc.popen, proc.log_path, proc.env, proc.offset, base, metrics, service.family)


def start_one(config: LabConfig, name: str, timeout: float = DEFAULT_TIMEOUT_S) -> Handle:
    """Start one service attached and wait until it is healthy; the caller stops the handle.

    For a test that stops, kills and restarts services one by one; everything else uses
    attached(). A service that fails to start is stopped before the error is raised.
    """
    validate_settings(config)
    (service,) = [s for s in topology.build(config) if s.name == name]
    argvs = _prepare(config, [service], [service], ports=False, schema=False)
    proc = processes.start(service.name, argvs[name], service.env, config.root, service.log_path(config))
    try:
        wait_healthy(config, [service], [Started(service, proc)], timeout)
    except BaseException:
        proc.stop()
        raise
    return _handle(config, service, proc)


@contextmanager
def attached(config: LabConfig, only: tuple[str, ...] = ("web", "worker"),
             timeout: float = DEFAULT_TIMEOUT_S, migrate_first: bool = True) -> Iterator[Running]:
    """Start the services named in only (all when empty), wait until each is healthy, yield
    them; stop them all on the way out, whatever happened (a service that failed to start
    included)."""
    validate_settings(config)
    wanted = topology.build(config, only)
    # Ports are free ones (LabConfig.private): no program of the user's to refuse.
    argvs = _prepare(config, wanted, wanted, ports=False, schema=migrate_first)
    running = Running(config)
    try:
        started = []
        for service in wanted:
            proc = processes.start(service.name, argvs[service.name], service.env, config.root,
                                   service.log_path(config))
            running.services[service.name] = _handle(config, service, proc)
            started.append(Started(service, proc))
        wait_healthy(config, wanted, started, timeout)
        yield running
    finally:
        running.stop()
