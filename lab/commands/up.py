"""`lab up`: migrate, start what is not running, wait until all is healthy, print the URLs."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass

from lab import procs, prometheus, services, state
from lab.config import LabConfig
from lab.errors import LabError
from lab.logfiles import tail
from lab.ports import port_in_use, port_owner

DEFAULT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 25.0


@dataclass
class Started:
    """A service this invocation started, with its Popen to notice an early exit."""

    service: services.Service
    popen: subprocess.Popen[bytes]
    record: procs.PidRecord


def configure(parser: argparse.ArgumentParser) -> None:
    """`lab up [--timeout S]`."""
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for everything to be healthy (default {DEFAULT_TIMEOUT_S:g})",
    )


def check_ports(config: LabConfig, missing: list[services.Service]) -> None:
    """Refuse to start when a port a missing service needs is held by another program."""
    problems = []
    claimed: dict[int, str] = {}
    for service in services.build(config):
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
        raise LabError("\n".join(problems))


def validate_settings(config: LabConfig) -> None:
    """Fail before starting anything when the app's settings are invalid."""
    from app.settings import Settings, SettingsError

    try:
        Settings.from_env(services.child_env(config))
    except SettingsError as exc:
        raise LabError(f"configuration error: {exc}", 2) from None


def migrate(config: LabConfig) -> None:
    """Bring the database to the newest schema revision."""
    from app.migrate import upgrade
    from app.settings import Settings

    try:
        upgrade(Settings.from_env(services.child_env(config)))
    except Exception as exc:  # the message matters more than the traceback here
        raise LabError(f"migrations failed: {type(exc).__name__}: {exc}") from None


def wait_healthy(
    config: LabConfig, wanted: list[services.Service], started: list[Started], timeout: float
) -> None:
    """Poll every service until all pass their check; LabError naming the first that did not."""
    session = services.http_session()
    deadline = time.monotonic() + timeout
    problems: dict[str, str | None] = {s.name: "not checked yet" for s in wanted}
    while True:
        for item in started:
            code = item.popen.poll()
            if code is not None:
                what = f"exited with code {code} while starting"
                raise LabError(_failure(config, item.service, what))
        for service in wanted:
            if problems[service.name] is not None:
                problems[service.name] = state.health(service, session)
                if problems[service.name] is None:
                    waited = timeout - (deadline - time.monotonic())
                    print(f"{service.name}: healthy after {waited:.1f} s", flush=True)
        pending = [s for s in wanted if problems[s.name] is not None]
        if not pending:
            return
        if time.monotonic() >= deadline:
            first = pending[0]
            raise LabError(_failure(
                config, first, f"not healthy after {timeout:g} s: {problems[first.name]}"
            ))
        time.sleep(0.25)


def _failure(config: LabConfig, service: services.Service, what: str) -> str:
    """The error for a service that failed, with the tail of its log."""
    path = service.log_path(config)
    lines = tail(path, 20)
    shown = "\n".join(f"  {line}" for line in lines) or "  (empty)"
    return f"{service.name} {what}\nlast lines of {path}:\n{shown}"


def print_urls(config: LabConfig, wanted: list[services.Service]) -> None:
    """The URLs a user opens, the app through Caddy first."""
    order = ("caddy", "prometheus", "worker", "web")
    for name in order:
        service = next(s for s in wanted if s.name == name)
        print(f"  {service.label:<17} {service.url}")
    print(f"  {'logs':<17} {config.log_dir}")


def run(args: argparse.Namespace) -> int:
    """Bring the lab up; idempotent."""
    began = time.monotonic()
    config = LabConfig.from_env()
    validate_settings(config)
    wanted = services.build(config)
    running: list[services.Service] = []
    missing: list[services.Service] = []
    for service in wanted:
        current = state.inspect(config, service)
        if current.running:
            running.append(service)
            assert current.record is not None
            print(f"{service.name}: already running (pid {current.record.pid})")
        else:
            if current.stale:
                procs.remove_pid(config.run_dir, service.name)
            missing.append(service)
    argvs = {s.name: services.resolve_binary(s, config) for s in missing}
    if any(s.name == "caddy" for s in missing) and not services.caddyfile(config).is_file():
        raise LabError(f"Caddy configuration not found: {services.caddyfile(config)}")
    check_ports(config, missing)
    migrate(config)
    prometheus.write_config(config)
    started: list[Started] = []
    try:
        for service in missing:
            popen, record = procs.start_detached(
                service.name, argvs[service.name], service.env, config.root,
                service.log_path(config), config.run_dir, config.port(service.port_var),
            )
            started.append(Started(service, popen, record))
            print(f"{service.name}: started (pid {popen.pid})")
        wait_healthy(config, wanted, started, args.timeout)
    except (LabError, KeyboardInterrupt):
        if started:
            print("stopping what this run started ...", file=sys.stderr)
            procs.stop([item.record for item in started], STOP_TIMEOUT_S)
            for item in started:
                procs.remove_pid(config.run_dir, item.service.name)
        raise
    elapsed = time.monotonic() - began
    verb = "is up" if started else "was already up"
    print(f"lab {verb}: all {len(wanted)} services healthy in {elapsed:.1f} s")
    print_urls(config, wanted)
    return 0
