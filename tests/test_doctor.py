"""`lab doctor`, run as a facilitator's room would run it: one line per check, a fix per problem."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lab.commands.doctor import system_programs
from stack.config import PORT_DEFAULTS, LabConfig
from tests.support.processes import ROOT, free_port


def doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`lab doctor` in a fresh VAR_DIR with every lab port moved to a free one."""
    ports = {name: str(free_port()) for name in PORT_DEFAULTS}
    full = {**os.environ, "VAR_DIR": str(tmp_path / "var"),
            "LAB_REPORTS_DIR": str(tmp_path / "reports"), **ports, **env}
    return subprocess.run([sys.executable, "-m", "lab.cli", "doctor", *args], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=120, check=False)


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The check lines keyed by check name (status and details as printed)."""
    found = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition("  ")
        if status.strip() in ("ok", "warn", "FAIL"):
            found[rest.strip().split("  ")[0].strip()] = line
    return found


def test_doctor_passes_on_this_machine(tmp_path: Path) -> None:
    """Python, disk, caddy, prometheus, the venv's programs and the ports: all ok."""
    result = doctor(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("ready")
    checks = lines(result)
    for name in ("python", "disk", "gunicorn", "celery", *system_programs(LabConfig.from_env())):
        assert checks[name].startswith("ok"), checks.get(name)
    ports = [line for name, line in checks.items() if name.startswith("port ")]
    assert len(ports) == len(PORT_DEFAULTS) and all(p.startswith("ok") for p in ports), ports
    # Not blocking the day before: no load run yet, the app not started; each with its fix.
    assert checks["last run"].startswith("warn") and "fix: `lab load`" in checks["last run"]
    assert checks["app"].startswith("warn") and "fix: `lab up`" in checks["app"]
    assert "docker" in checks


def test_a_taken_port_fails_with_the_variable_to_change(tmp_path: Path) -> None:
    """Another program on CADDY_PORT: exit 1 and the line says which variable to move."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = doctor(tmp_path, CADDY_PORT=str(port))
    assert result.returncode == 1, result.stdout
    line = lines(result)[f"port {port}"]
    assert line.startswith("FAIL") and "CADDY_PORT: taken by" in line
    assert "fix: stop it, or set CADDY_PORT to a free port in .env" in line
    assert "1 problem(s) block the lab" in result.stdout


def test_a_missing_binary_fails_with_the_install_line(tmp_path: Path) -> None:
    """caddy and prometheus not on PATH: exit 1, each with the command that installs it."""
    bare = tmp_path / "bin"
    bare.mkdir()
    # apt-get stays findable (the install line is the OS's), nothing else of /usr/bin.
    apt = Path("/usr/bin/apt-get")
    if apt.exists():
        (bare / "apt-get").symlink_to(apt)
    result = doctor(tmp_path, PATH=str(bare))
    assert result.returncode == 1, result.stdout
    checks = lines(result)
    fix = "sudo apt-get install" if apt.exists() else "install '"
    for program in ("caddy", "prometheus"):
        assert checks[program].startswith("FAIL"), checks[program]
        assert f"not found on PATH; fix: {fix}" in checks[program] and program in checks[program]
    # Docker is optional for the native path: missing, it warns with its own fix.
    assert checks["docker"].startswith("warn") and "fix: install Docker" in checks["docker"]


@pytest.mark.parametrize("required", [False, True])
def test_docker_blocks_only_when_the_room_uses_it(tmp_path: Path, required: bool) -> None:
    """Without Docker, `lab doctor --docker` fails; plain `lab doctor` only warns."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for program in system_programs(LabConfig.from_env()):
        found = shutil.which(program)
        assert found, f"{program} is not installed here (make system-deps)"
        (bare / program).symlink_to(found)
    result = doctor(tmp_path, *(["--docker"] if required else []), PATH=str(bare))
    assert result.returncode == (1 if required else 0), result.stdout
    assert lines(result)["docker"].startswith("FAIL" if required else "warn")
