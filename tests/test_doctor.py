"""`lab doctor`, run as a facilitator's room would run it: one line per check, a fix per problem."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from lab.commands.doctor import system_programs, version_finding
from stack import topology, versions
from stack.config import PORT_DEFAULTS, LabConfig
from stack.errors import StackError
from tests.support.processes import ROOT, free_port, wait_until


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


# --- the versions of the system programs (stack/versions.py) --------------------------------

@pytest.mark.parametrize(("said", "version"), [
    ("prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5+deb12u1)", (2, 42, 0)),
    ("prometheus, version 2.31.1 (branch: HEAD, revision: 411021ada9ab41095923b8d2df9365b632fd40c3)",
     (2, 31, 1)),
    ("v2.6.2 h1:wKoFIxpmOJLGWLJ/NNmyTCBeh4lVXNl1nYqKjZHzDAk=", (2, 6, 2)),
    ("2.4.6", (2, 4, 6)),
    ("alertmanager, version 0.25.0 (branch: debian/sid, revision: 0.25.0-1+b4)", (0, 25, 0)),
    ("caddy: command not found", None),
])
def test_a_version_is_read_from_what_each_program_says(said: str, version: tuple[int, ...] | None) -> None:
    assert versions.parse_version(said) == version


@pytest.mark.parametrize(("name", "version", "status", "says"), [
    ("prometheus", (2, 24, 1), "FAIL", "prometheus 2.24.1 is too old for the lab (the @ modifier needs 2.25"),
    ("prometheus", (2, 25, 0), "ok", "2.25.0; `lab up` adds --enable-feature=promql-at-modifier"),
    ("prometheus", (2, 32, 1), "ok", "2.32.1; `lab up` adds --enable-feature=promql-at-modifier"),
    ("prometheus", (2, 33, 0), "ok", "2.33.0"),
    ("prometheus", (3, 1, 0), "ok", "3.1.0"),
    ("alertmanager", (0, 21, 0), "FAIL", "alertmanager 0.21.0 is too old for the lab"),
    ("alertmanager", (0, 25, 0), "ok", "0.25.0"),
    ("caddy", (2, 4, 6), "FAIL", "caddy 2.4.6 is too old for the lab (the metrics option"),
    ("caddy", (2, 6, 2), "ok", "2.6.2"),
    ("caddy", None, "warn", "did not say its version"),
])
def test_doctor_holds_each_version_against_what_the_lab_uses(name: str, version: tuple[int, ...] | None,
                                                               status: str, says: str) -> None:
    finding = version_finding(name, version, f"/usr/bin/{name}")
    assert finding.status == status and says in finding.line(), finding.line()
    if status == "FAIL":
        assert "fix: " in finding.line()


def _fake_prometheus(directory: Path, version: str) -> Path:
    """A fake `prometheus` that only says its version (no old Prometheus can be installed here)."""
    directory.mkdir(exist_ok=True)
    fake = directory / "prometheus"
    fake.write_text(f"#!/bin/sh\necho 'prometheus, version {version} (branch: HEAD)'\n", encoding="utf-8")
    fake.chmod(0o755)
    return fake


def test_the_launcher_turns_on_what_an_older_prometheus_needs_or_refuses_it(tmp_path: Path) -> None:
    """`lab up` starts Prometheus with the @ modifier's flag where the version needs it, and
    stops with one line saying what to install where it is too old."""
    config = LabConfig.from_env({"PATH": str(tmp_path / "bin"), "VAR_DIR": str(tmp_path / "var")})
    prometheus = topology.by_name(config)["prometheus"]
    _fake_prometheus(tmp_path / "bin", "2.30.3")
    assert topology.resolve_binary(prometheus, config)[-1] == versions.AT_FLAG
    _fake_prometheus(tmp_path / "bin", "2.45.0")
    assert versions.AT_FLAG not in topology.resolve_binary(prometheus, config)
    _fake_prometheus(tmp_path / "bin", "2.20.0")
    with pytest.raises(StackError, match=r"^prometheus 2\.20\.0 is too old for the lab .*install a newer "
                                         r"'prometheus'$"):
        topology.resolve_binary(prometheus, config)


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus is needed")
def test_a_real_prometheus_accepts_the_flag_the_launcher_may_add(tmp_path: Path) -> None:
    """The flag is a no-op on this Prometheus (2.42) and a Prometheus given it starts and serves
    a query with @: the argv the launcher builds for 2.25-2.32 is one Prometheus takes."""
    port = free_port()
    (tmp_path / "prometheus.yml").write_text("global: {scrape_interval: 5s}\n", encoding="utf-8")
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", versions.AT_FLAG],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, 60, "Prometheus started with the flag")
        # A subquery pinned to a moment (@ applies to selectors and subqueries).
        pinned = {"query": "count_over_time(vector(1)[1m:10s] @ 1000)"}
        query = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params=pinned, timeout=5).json()
        assert query["status"] == "success", query
        assert float(query["data"]["result"][0]["value"][1]) >= 6, query  # 6 or 7 steps by version
    finally:
        proc.terminate()
        proc.wait(30)
