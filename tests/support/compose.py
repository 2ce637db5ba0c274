"""docker-compose.yml as Compose sees it: variables interpolated from an .env, as Compose does.

Compose interpolates after parsing, in string values only: `${VAR}`, `${VAR:-default}` (unset
or empty), `${VAR-default}` (unset), `${VAR:?message}`, `${VAR?message}`, and `$$` for a
literal `$`. The static tests read the file both raw (which variable sets a value) and
rendered with .env.example's values (what a newcomer who copied it gets).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


class MissingVariable(ValueError):
    """A `${VAR:?message}` whose variable is unset (Compose refuses to start)."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """One string with Compose's interpolation applied."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        current = env.get(name)
        missing = current is None or (current == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if missing else str(current)
        if op in ("?", ":?"):
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return str(current)
        return current or ""

    return _VARIABLE.sub(substitute, value)


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _walk(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(item, env) for item in node]
    return node


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of an .env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def raw() -> dict[str, Any]:
    """The compose file parsed, variables left as written."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def rendered(overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file with .env.example's values (and overrides) interpolated."""
    return _walk(raw(), {**read_env_file(), **(overrides or {})})


def published(service: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each short-syntax `ports` entry."""
    entries = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        address = parts[0] if len(parts) == 3 else "0.0.0.0"  # Compose's default: all interfaces
        entries.append((address, int(parts[-2]), int(parts[-1])))
    return entries
