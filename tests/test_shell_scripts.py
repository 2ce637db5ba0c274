"""The shell scripts a learner runs (make calls them) are POSIX sh: they run under dash, as
Debian's /bin/sh, and under macOS's bash 3.2, which lacks bash 4's associative arrays and more.

No bash 3.2 runs here, so two checks stand in for it: every script parses under dash and
bash --posix, and none holds a construct of the list below (bash 4, or bash alone); the list
is tested on planted lines. The installer then runs for real under dash and bash, against a
fake package manager (stubs on PATH that record what they were asked), in every branch.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import ROOT

LEARNER_SCRIPTS = sorted((ROOT / "stack").glob("*.sh"))
SHELLS = [shell for shell in ("dash", "bash") if shutil.which(shell)]

# Constructs that dash or macOS's bash 3.2 refuse (or read otherwise): what each is.
NOT_POSIX = {
    r"\bdeclare\s+-[aAn]": "arrays and namerefs (declare -A is bash 4)",
    r"\blocal\s+-n\b": "a nameref (bash 4.3)",
    r"\b(mapfile|readarray|coproc)\b": "bash 4 builtins",
    r"\$\{[^}]*(,,|\^\^|,|\^)\}": "case modification (bash 4)",
    r"\$\{![^}]*\}": "indirection or the keys of an array",
    r"\[\[": "[[ ]] (bash alone: use [ ] or case)",
    r"(^|[\s;])\w+\+?=\(": "an array assignment",
    r"\$\{\w+\[": "an array element",
    r"&>|\|&": "bash's redirection of both streams",
    r"<<<": "a here-string",
    r"\$'": "ANSI-C quoting",
    r"\bset\s+-[a-z]*o\s+pipefail|\bset\s+-o\s+pipefail": "pipefail (not in dash)",
    r"\$\{\w+//?[^}]*\}": "pattern substitution (bash alone)",
    r"^\s*function\s+\w+": "the function keyword",
    r"^\s*source\s": "source (use .)",
}


def bashisms(text: str) -> list[str]:
    """Each line of text (comments aside) holding a construct of NOT_POSIX, with what it is."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        found += [f"{number}: {what}: {line.strip()}" for pattern, what in NOT_POSIX.items()
                  if re.search(pattern, code)]
    return found


@pytest.mark.parametrize("line", [
    "declare -A wanted=([caddy]=caddy)", "missing+=(jq)", 'for cmd in "${!wanted[@]}"; do',
    'if [[ $1 =~ ^py ]]; then', 'echo "${name,,}"', 'mapfile -t lines < file', 'cmd &> /dev/null',
    'grep -E "^${want//./\\\\.}"', "set -euo pipefail", "function main {", 'read -r a <<< "$b"',
    "echo $'\\t'", 'echo "${list[0]}"',
])
def test_the_check_flags_every_construct_of_its_list(line: str) -> None:
    assert bashisms(line), line


def test_the_check_passes_posix_lines_and_comments() -> None:
    posix = ('set -eu\nmissing="$missing ${pair#*:}"\n[ -z "$missing" ] && exit 0\n'
             'case $1 in chromium) echo x ;; esac\n# declare -A is not used here\n'
             'echo "${1:-lab}" "${pair%%:*}" $((tries + 1))\n')
    assert bashisms(posix) == []


@pytest.mark.parametrize("script", LEARNER_SCRIPTS, ids=lambda p: p.name)
def test_every_script_a_learner_runs_is_posix_sh(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh\n"), f"{script.name}: start it with #!/bin/sh"
    assert bashisms(text) == [], "\n".join(bashisms(text))
    for shell in SHELLS:
        argv = [shell, "--posix", "-n", str(script)] if shell == "bash" else [shell, "-n", str(script)]
        checked = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert checked.returncode == 0, f"{shell}: {checked.stderr}"


def _stub(directory: Path, name: str, body: str = "exit 0") -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def _fake_system(tmp_path: Path, present: tuple[str, ...], uid: int = 0, system: str = "Linux",
                 managers: tuple[str, ...] = ("apt-get",)) -> tuple[dict[str, str], Path]:
    """A PATH of stubs only: the commands present, id, uname, sudo, and the package managers,
    which record each call (one line of arguments) in calls.log."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in present:
        _stub(bin_dir, name)
    _stub(bin_dir, "id", f"echo {uid}")
    _stub(bin_dir, "uname", f"echo {system}")
    _stub(bin_dir, "sudo", f'echo "sudo" >> {calls}; exec "$@"')
    for manager in managers:
        _stub(bin_dir, manager, f'echo "{manager} $*" >> {calls}')
    return {"PATH": str(bin_dir), "HOME": str(tmp_path)}, calls


def _install(shell: str, env: dict[str, str], mode: str = "test") -> subprocess.CompletedProcess[str]:
    installer = ROOT / "stack" / "install-system-deps.sh"
    return subprocess.run([shutil.which(shell) or shell, str(installer), mode], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_installer_does_nothing_when_everything_is_there(shell: str, tmp_path: Path) -> None:
    env, calls = _fake_system(tmp_path, ("caddy", "prometheus", "amtool", "jq", "chromium"))
    done = _install(shell, env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not calls.exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_the_installer_asks_apt_for_what_is_missing_and_only_that(shell: str, tmp_path: Path) -> None:
    env, calls = _fake_system(tmp_path, ("caddy", "prometheus"), uid=1000)
    done = _install(shell, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "installing Debian packages: prometheus-alertmanager jq chromium\n"
    assert calls.read_text().splitlines() == [
        "sudo", "apt-get update -qq", "sudo",
        "apt-get install -y -qq --no-install-recommends prometheus-alertmanager jq chromium"]
    # The lab alone needs no browser.
    calls.unlink()
    assert _install(shell, env, "lab").returncode == 0
    assert calls.read_text().splitlines()[-1].endswith("--no-install-recommends prometheus-alertmanager jq")


@pytest.mark.parametrize("shell", SHELLS)
def test_the_installer_uses_homebrew_names_on_macos(shell: str, tmp_path: Path) -> None:
    env, calls = _fake_system(tmp_path, ("caddy", "jq"), uid=501, system="Darwin", managers=("brew",))
    done = _install(shell, env)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "brew install prometheus", "brew install alertmanager", "brew install --cask chromium"]


@pytest.mark.parametrize("shell", SHELLS)
def test_the_installer_says_what_to_install_where_it_cannot(shell: str, tmp_path: Path) -> None:
    env, calls = _fake_system(tmp_path, ("caddy", "prometheus", "amtool"), managers=())
    done = _install(shell, env)
    assert done.returncode == 1 and not calls.exists()
    assert done.stderr.startswith("missing: jq chromium. Install them with your system's package manager")


def test_find_python_names_a_version_or_nothing() -> None:
    """make's choice of Python (PYTHON=3.12, python3.13, a path) under dash."""
    find = [shutil.which("dash") or "sh", str(ROOT / "stack" / "find-python.sh")]
    said = subprocess.run([*find, "python3"], capture_output=True, text=True, check=True).stdout
    assert said.strip() == "python3"
    missing = subprocess.run([*find, "3.99"], capture_output=True, text=True, check=False)
    assert (missing.returncode, missing.stdout) == (1, "")
