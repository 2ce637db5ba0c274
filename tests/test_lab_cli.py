"""The `lab` command line: one registry, and only the invoked command's module is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cli import build_parser
from lab.commands import COMMANDS, load
from tests.support.processes import ROOT

# Run `lab ARGS` in a fresh interpreter and print the modules it imported that matter here.
PROBE = """
import sys
from lab.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "locust", "analysis", "curriculum")
                or m.startswith("lab.commands."))
print("LOADED", " ".join(loaded))
"""


def loaded_by(tmp_path: Path, *args: str) -> list[str]:
    """The heavy or command modules that `lab args...` imported."""
    env = {**os.environ, "VAR_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED"))
    return line.split()[1:]


@pytest.mark.parametrize("command", ["status", "down"])
def test_a_command_imports_only_its_own_module_and_no_pandas(tmp_path: Path, command: str) -> None:
    assert loaded_by(tmp_path, command) == [f"lab.commands.{command}"]


def test_help_lists_every_registered_command_in_registry_order() -> None:
    done = subprocess.run([sys.executable, "-m", "lab", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    listed = [line.split()[0] for line in done.stdout.splitlines()
              if line.startswith("    ") and line.split()[0] in COMMANDS]
    assert listed == list(COMMANDS)


def test_every_registered_command_loads_with_a_run_function() -> None:
    for name in COMMANDS:
        command = load(name)
        assert callable(command.run) and callable(command.configure), name


def test_the_parser_configures_only_the_command_it_is_given() -> None:
    args = build_parser(["fault", "list"]).parse_args(["fault", "list"])
    assert args.command == "fault" and args.action == "list" and callable(args.run)


def test_the_workshop_run_the_notebooks_name_is_a_lab_command_with_the_demos_faults() -> None:
    """The command a notebook prints when its run lacks a fault (analysis.lab_context.WORKSHOP_RUN)
    parses, and plans the faults `lab demo` injects, inside a five-minute run."""
    from analysis.lab_context import WORKSHOP_RUN
    from lab.errors import LabError
    from lab.loadrun import WORKSHOP_DURATION, WORKSHOP_FAULTS, workshop_faults

    words = WORKSHOP_RUN.split()[1:]
    assert build_parser(words).parse_args(words).faults == "workshop"
    planned = workshop_faults(WORKSHOP_DURATION)
    assert [f"{p.name}={p.value:g}" for p in planned] == [fault for fault, _ in WORKSHOP_FAULTS]
    assert all(0 < p.on_s < p.off_s <= WORKSHOP_DURATION for p in planned)
    with pytest.raises(LabError, match="at least 300 s"):
        workshop_faults(120)
    both = subprocess.run([sys.executable, "-m", "lab.cli", "load", "--faults", "workshop", "--fault",
                           "error_rate=0.1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "not both" in both.stderr
