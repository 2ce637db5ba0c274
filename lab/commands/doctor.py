"""`lab doctor [--docker]`: the pre-flight check a facilitator sends out the day before.

One line per check: `ok`, `warn` or `FAIL`, what was found and, for every problem, the fix.
Exit 1 when something blocks the lab (a FAIL). Not having Docker, no load run recorded yet
and the app not started are warnings: the native path needs none of them on the eve of a
workshop; with `--docker` (a room using the compose stack) Docker and Compose must answer.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stack import alertmanager_config, launch, processes, topology, versions
from stack.config import LabConfig
from stack.ports import port_in_use, port_owner

# Room for the embedded database, logs, Prometheus's TSDB and Locust reports over a day.
MIN_FREE_BYTES = 2 * 1024**3
# Homebrew names where they differ from Debian's.
BREW_NAMES = {"prometheus-alertmanager": "alertmanager"}
PROBE_TIMEOUT_S = 15


@dataclass(frozen=True)
class Finding:
    """The outcome of one check."""

    name: str
    status: str  # "ok", "warn" or "FAIL"
    detail: str
    fix: str = ""

    def line(self) -> str:
        """The one line printed for this check."""
        text = f"{self.status:<4}  {self.name:<20}  {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix and self.status != "ok" else text


def install_line(package: str, path: str) -> str:
    """How to install a system package on this OS (Debian package name given)."""
    if sys.platform == "darwin":
        name = BREW_NAMES.get(package, package)
        if shutil.which("brew", path=path):
            return f"brew install {name}"
        return f"install Homebrew (https://brew.sh), then: brew install {name}"
    if shutil.which("apt-get", path=path):
        return f"sudo apt-get install {package}"
    return (f"install '{package}' with your system's package manager "
            f"(Debian/Ubuntu: apt-get install {package})")


def _run(argv: list[str], path: str) -> subprocess.CompletedProcess[str] | None:
    """Run a probe; None when it could not run or took too long."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              check=False, env={**os.environ, "PATH": path})
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_python(config: LabConfig) -> Finding:
    """The interpreter running the lab satisfies pyproject's requires-python."""
    project = tomllib.loads((config.root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = project["requires-python"]
    minimum = tuple(int(part) for part in re.findall(r"\d+", required)[:2])
    found = platform.python_version()
    if sys.version_info[:2] >= minimum:
        return Finding("python", "ok", f"{found} ({sys.executable})")
    return Finding("python", "FAIL", f"{found} is older than {required}",
                   f"install Python {'.'.join(map(str, minimum))} or newer, then `make lab` again")


def check_disk(config: LabConfig) -> Finding:
    """Free space where the lab writes (VAR_DIR)."""
    where = config.var_dir
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    detail = f"{free / 1024**3:.1f} GB free under {where}"
    if free >= MIN_FREE_BYTES:
        return Finding("disk", "ok", detail)
    return Finding("disk", "FAIL", f"{detail}, below {MIN_FREE_BYTES / 1024**3:.0f} GB",
                   "free some space on that disk, or point VAR_DIR at another one")


def system_programs(config: LabConfig) -> dict[str, str]:
    """The system programs the lab needs, each with its Debian package, as the installer lists
    them (stack/install-system-deps.sh, its `wanted` table before the tests' additions)."""
    script = (config.root / "stack" / "install-system-deps.sh").read_text(encoding="utf-8")
    found = re.search(r'^wanted="([^"]*)"', script, re.MULTILINE)
    if found is None:
        raise ValueError("stack/install-system-deps.sh has no wanted=\"command:package ...\" line")
    return dict(pair.split(":", 1) for pair in found.group(1).split())


def version_finding(name: str, version: versions.Version | None, program: str) -> Finding:
    """What the lab makes of a system program's version (stack/versions.py)."""
    label = f"{name} version"
    if version is None:
        return Finding(label, "warn", f"{program} did not say its version",
                       "the lab assumes a recent one; `lab up` stops with a clear line if not")
    refused = versions.problem(name, version)
    if refused:
        return Finding(label, "FAIL", refused.split(": install", 1)[0],
                       install_line(versions.NEEDS[name].package, os.defpath))
    flags = versions.extra_flags(name, version)
    if flags:
        return Finding(label, "ok", f"{versions.shown(version)}; `lab up` adds {' '.join(flags)}")
    return Finding(label, "ok", versions.shown(version))


def check_versions(config: LabConfig) -> Iterator[Finding]:
    """The installed Prometheus, Alertmanager and Caddy against what the lab uses of them."""
    path = config.env.get("PATH", os.defpath)
    programs = {"prometheus": "prometheus", "alertmanager": alertmanager_config.binary(config),
                "caddy": "caddy"}
    for name, program in programs.items():
        found = shutil.which(program, path=path)
        if found:  # a missing one is check_binaries' to report
            yield version_finding(name, versions.version_of(found), found)


def check_binaries(config: LabConfig) -> Iterator[Finding]:
    """Every program the native path runs: the venv's scripts, the system packages on PATH."""
    path = config.env.get("PATH", os.defpath)
    for service in topology.build(config):
        program = service.argv[0]
        if service.package:
            continue  # a system program: listed by the installer, checked below
        if Path(program).is_file():
            yield Finding(Path(program).name, "ok", program)
        else:
            yield Finding(Path(program).name, "FAIL", f"{program} is missing",
                          "`make lab` (installs the lab's Python packages into .venv)")
    for program, package in system_programs(config).items():
        found = shutil.which(program, path=path)
        if found:
            yield Finding(program, "ok", found)
        else:
            yield Finding(program, "FAIL", "not found on PATH", install_line(package, path))


def check_ports(config: LabConfig) -> Iterator[Finding]:
    """Each port of the lab is free, or held by this lab's own service."""
    holders: dict[str, str] = {}
    for service in topology.build(config):
        if launch.inspect(config, service).running:
            holders.update({var: service.name for var in service.ports(config)})
    jupyter = processes.read_pid(config.run_dir, "jupyter")
    if jupyter is not None and jupyter.matches():
        holders["JUPYTER_PORT"] = "jupyter"
    for var, port in config.ports.items():
        name = f"port {port}"
        if var in holders:
            yield Finding(name, "ok", f"{var}: in use by this lab's {holders[var]}")
        elif not port_in_use(port):
            yield Finding(name, "ok", f"{var}: free")
        else:
            owner = port_owner(port) or "another program"
            yield Finding(name, "FAIL", f"{var}: taken by {owner}",
                          f"stop it, or set {var} to a free port in .env")


def check_docker(path: str, required: bool) -> Iterator[Finding]:
    """Docker's client and engine, and Compose, when present (required with --docker)."""
    missing = "FAIL" if required else "warn"
    docker = shutil.which("docker", path=path)
    if not docker:
        yield Finding("docker", missing, "not installed (only the Docker path needs it)",
                      "install Docker Desktop, or the engine (Debian/Ubuntu: sudo apt-get install "
                      "docker.io docker-compose-plugin)")
        return
    result = _run([docker, "version", "--format", "{{.Client.Version}} {{.Server.Version}}"], path)
    versions = result.stdout.split() if result is not None else []
    if result is None or result.returncode != 0 or len(versions) != 2:
        client = versions[0] if versions else "?"
        yield Finding("docker", missing, f"client {client}, but the engine does not answer",
                      "start Docker Desktop, or the engine (sudo systemctl start docker); "
                      "on Linux, add yourself to the docker group")
    else:
        yield Finding("docker", "ok", f"client {versions[0]}, engine {versions[1]} answers")
    plugin = _run([docker, "compose", "version", "--short"], path)
    if plugin is not None and plugin.returncode == 0:
        yield Finding("compose", "ok", f"docker compose {plugin.stdout.strip()}")
        return
    legacy = shutil.which("docker-compose", path=path)
    standalone = _run([legacy, "version", "--short"], path) if legacy else None
    if standalone is not None and standalone.returncode == 0:
        version = standalone.stdout.strip()
        if version.startswith("1."):
            yield Finding("compose", missing, f"docker-compose {version} (Compose v1) refuses the "
                          "compose file's top-level `name:`",
                          "install Compose v2 (Debian/Ubuntu: docker-compose-plugin; or Docker Desktop)")
        else:
            yield Finding("compose", "ok", f"docker-compose {version}")
        return
    yield Finding("compose", missing, "not installed",
                  "install Compose v2 (Debian/Ubuntu: docker-compose-plugin; or Docker Desktop)")


def check_last_run(config: LabConfig) -> Finding:
    """A load run recorded for the notebooks."""
    record = config.environment.reports_dir / "last-run.json"
    if record.is_file():
        return Finding("last run", "ok", str(record))
    return Finding("last run", "warn", f"none recorded yet ({record})",
                   "`lab load` (or `make lab`) records one for the notebooks")


def check_app(config: LabConfig) -> Finding:
    """The app answers ready through Caddy."""
    url = f"{config.environment.app_url}/readyz"
    try:
        answer = processes.http_session().get(url, timeout=5)
    except OSError:
        return Finding("app", "warn", f"not answering at {url}", "`lab up` (or `make lab`) starts it")
    if answer.status_code == 200:
        return Finding("app", "ok", f"{url} answers ready")
    return Finding("app", "warn", f"{url} answered {answer.status_code}",
                   "`lab status` shows which service is unwell; `lab logs` shows why")


def findings(config: LabConfig, docker_required: bool) -> list[Finding]:
    """Every check, in the order they are printed."""
    path = config.env.get("PATH", os.defpath)
    return [
        check_python(config), check_disk(config), *check_binaries(config), *check_versions(config),
        *check_ports(config),
        *check_docker(path, docker_required), check_last_run(config), check_app(config),
    ]


def configure(parser: argparse.ArgumentParser) -> None:
    """`--docker`: the room uses the compose stack."""
    parser.add_argument("--docker", action="store_true",
                        help="Docker and Compose must be there and answer (the room uses compose)")


def run(args: argparse.Namespace) -> int:
    """Print one line per check; exit 1 when one blocks."""
    results = findings(LabConfig.from_env(), args.docker)
    for finding in results:
        print(finding.line(), flush=True)
    blocking = [f for f in results if f.status == "FAIL"]
    print(f"{len(blocking)} problem(s) block the lab" if blocking else "ready")
    return 1 if blocking else 0
