"""The versions of the system programs the lab runs, and what the lab needs of each.

A learner's laptop may carry an older Prometheus, Alertmanager or Caddy than Debian 12's
(2.42, 0.25, 2.6.2). What the lab uses, and from which version:

| program | the lab uses | from |
|---|---|---|
| Prometheus | the `@` modifier (analysis/prom.py, the notebooks) | 2.25 behind a flag, 2.33 by default |
| Alertmanager | `source_matchers` in its inhibition rule | 0.22 |
| Caddy | the `metrics` option of its servers (stack/caddy/Caddyfile) | 2.6 |

The flag an older Prometheus needs is `--enable-feature=promql-at-modifier`.

The launcher (`topology.resolve_binary`) asks each program its version before starting it:
it adds the flag an older Prometheus needs, and stops with one line saying what to install
when a program is too old for the lab. `lab doctor` reports the same.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from stack.errors import StackError

Version = tuple[int, ...]

# From this Prometheus the @ modifier needs no flag; before it (from AT_BEHIND_FLAG) it does.
AT_BY_DEFAULT: Version = (2, 33)
AT_BEHIND_FLAG: Version = (2, 25)
AT_FLAG = "--enable-feature=promql-at-modifier"


@dataclass(frozen=True)
class Need:
    """The oldest version of a program the lab can use, and why."""

    minimum: Version
    uses: str
    package: str


NEEDS: dict[str, Need] = {
    "prometheus": Need(AT_BEHIND_FLAG, "the @ modifier", "prometheus"),
    "alertmanager": Need((0, 22), "matchers in inhibition rules", "prometheus-alertmanager"),
    "caddy": Need((2, 6), "the metrics option of its servers", "caddy"),
}


def parse_version(text: str) -> Version | None:
    """The first X.Y[.Z] of a program's version line ("prometheus, version 2.42.0+ds ...",
    "v2.6.2 h1:...", "alertmanager, version 0.25.0"), or None."""
    found = re.search(r"(?<![\d.])v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not found:
        return None
    return tuple(int(part) for part in found.groups() if part is not None)


def shown(version: Version) -> str:
    """2.42.0 as people write it."""
    return ".".join(map(str, version))


def version_of(program: str) -> Version | None:
    """What `program --version` (Caddy: `caddy version`) says, or None when it says nothing usable."""
    argv = [program, "version"] if program.rsplit("/", 1)[-1] == "caddy" else [program, "--version"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(done.stdout + done.stderr)


def problem(name: str, version: Version | None) -> str | None:
    """One line when version is too old for the lab (None: fine, or unknown)."""
    need = NEEDS.get(name)
    if need is None or version is None or version >= need.minimum:
        return None
    return (f"{name} {shown(version)} is too old for the lab ({need.uses} needs {shown(need.minimum)} "
            f"or newer): install a newer '{need.package}'")


def extra_flags(name: str, version: Version | None) -> list[str]:
    """What the lab adds to a program's command line for its version: the @ modifier's flag
    for a Prometheus from 2.25 to 2.32."""
    if name == "prometheus" and version is not None and AT_BEHIND_FLAG <= version < AT_BY_DEFAULT:
        return [AT_FLAG]
    return []


def argv_for(name: str, argv: list[str]) -> list[str]:
    """argv (its program found) with the flags its version needs; StackError when too old."""
    if name not in NEEDS:
        return argv
    version = version_of(argv[0])
    refused = problem(name, version)
    if refused:
        raise StackError(refused)
    return [*argv, *extra_flags(name, version)]
