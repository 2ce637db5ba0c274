"""What `make lab` and `make test` install: the lab from its lock file and without Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT

SYSTEM_DEPS = ROOT / "stack" / "install-system-deps.sh"


def dry_run(*targets: str, venv: Path) -> str:
    """The commands make would run for targets, in a venv that does not exist yet."""
    return subprocess.run(["make", "-n", "-C", str(ROOT), *targets, f"VENV={venv}"],
                          capture_output=True, text=True, check=True, timeout=60).stdout


def test_make_lab_installs_the_lock_file_and_no_test_extras(tmp_path: Path) -> None:
    """`make lab`: the hashed lock, then the project with --no-deps; no extras, no Chromium."""
    commands = dry_run("lab", venv=tmp_path / "venv")
    pip = [line for line in commands.splitlines() if " -m pip install" in line]
    assert any("--require-hashes -r requirements-lab.lock" in line for line in pip), pip
    assert any(line.endswith("--no-deps -e .") for line in pip), pip
    assert not any("[" in line for line in pip), f"extras installed by make lab: {pip}"
    assert "install-system-deps.sh lab" in commands and "chromium" not in commands


def test_make_test_adds_the_extras_held_to_the_lock(tmp_path: Path) -> None:
    """`make test`: the lab's install, then the test and dev extras constrained by the lock."""
    commands = dry_run("test", venv=tmp_path / "venv")
    assert "--require-hashes -r requirements-lab.lock" in commands
    assert "-c " in commands and "'.[test,lab,dev]'" in commands
    assert "install-system-deps.sh test" in commands


def test_the_lab_needs_no_browser_and_the_tests_do(tmp_path: Path) -> None:
    """With the lab's programs present and no package manager: lab is content, test is not."""
    script = SYSTEM_DEPS.read_text(encoding="utf-8")
    table = re.search(r'^wanted="([^"]*)"', script, re.MULTILINE)
    assert table, "the installer's wanted=\"command:package ...\" line"
    lab_programs = [pair.split(":", 1)[0] for pair in table.group(1).split()]
    assert {"caddy", "prometheus"} <= set(lab_programs) and "chromium" not in lab_programs
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("bash", "uname", "id"):
        found = shutil.which(program)
        assert found, program
        (bin_dir / program).symlink_to(found)
    for program in lab_programs:  # the script only asks whether each is on PATH
        stub = bin_dir / program
        stub.write_text("#!/bin/sh\n", encoding="utf-8")
        stub.chmod(0o755)
    env = {**os.environ, "PATH": str(bin_dir)}
    lab = subprocess.run(["bash", str(SYSTEM_DEPS), "lab"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert lab.returncode == 0 and not lab.stdout and not lab.stderr, lab
    tests = subprocess.run(["bash", str(SYSTEM_DEPS), "test"], env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert tests.returncode == 1
    assert "missing: chromium" in tests.stderr and "apt-get install chromium" in tests.stderr


def test_make_lab_with_another_python_installs_into_the_venv_it_makes_again(tmp_path: Path) -> None:
    """`make lab PYTHON=python3.13` over a venv of another version: the venv is made again and
    the lock installed into it (the old venv's install stamp, removed with it, must not count)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    other = venv / "bin" / "python"
    other.write_text("#!/bin/sh\necho 2.7\n", encoding="utf-8")  # answers any -c with its version
    other.chmod(0o755)
    lock_inputs = b"".join((ROOT / name).read_bytes() for name in ("pyproject.toml", "requirements-lab.lock"))
    locksum = subprocess.run(["cksum"], input=lock_inputs, capture_output=True, check=True,
                             timeout=30).stdout.split()[0].decode()
    (venv / f".lab-{locksum}").touch()  # installed, for the old version
    commands = subprocess.run(["make", "-n", "-C", str(ROOT), "lab", f"VENV={venv}",
                               f"PYTHON={sys.executable}"],
                              capture_output=True, text=True, check=True, timeout=60).stdout
    assert "-m venv" in commands, commands
    assert "--require-hashes -r requirements-lab.lock" in commands, commands
