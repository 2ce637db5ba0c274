"""Settings of the synthetic load, read from the environment (LOAD_*), validated once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

SYNTHETIC_HEADER: Final = "X-Synthetic-Load"
SYNTHETIC_VALUE: Final = "locust"
USER_AGENT_PREFIX: Final = "todo-lab-loadtest/1.0"

ROLES: Final = ("reader", "writer", "exporter", "api")
DEFAULT_WEIGHTS: Final[Mapping[str, int]] = {"reader": 5, "writer": 3, "exporter": 1, "api": 2}
DEFAULT_WAIT: Final = (1.0, 3.0)
DEFAULT_EXPORT_MAX_POLLS: Final = 60
DEFAULT_EXPORT_POLL_INTERVAL: Final = 0.5


class LoadConfigError(ValueError):
    """A LOAD_* variable has a value we cannot use."""


def synthetic_headers(role: str) -> dict[str, str]:
    """Headers every synthetic request carries, so logs and metrics can tell load from people."""
    return {
        SYNTHETIC_HEADER: SYNTHETIC_VALUE,
        "User-Agent": f"{USER_AGENT_PREFIX} ({role}; +locust)",
    }


def parse_weights(raw: str | None) -> dict[str, int]:
    """Parse "reader=5,writer=3,exporter=1,api=2"; roles not named keep their default weight."""
    weights = dict(DEFAULT_WEIGHTS)
    if not raw or not raw.strip():
        return weights
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in ROLES:
            raise LoadConfigError(
                f"LOAD_WEIGHTS: {item.strip()!r} is not ROLE=WEIGHT"
                f" with ROLE one of {', '.join(ROLES)}"
            )
        try:
            weight = int(value)
        except ValueError:
            raise LoadConfigError(f"LOAD_WEIGHTS: weight of {name} must be an integer") from None
        if weight < 0:
            raise LoadConfigError(f"LOAD_WEIGHTS: weight of {name} must not be negative")
        weights[name] = weight
    if not any(weights.values()):
        raise LoadConfigError("LOAD_WEIGHTS: at least one role needs a weight above 0")
    return weights


def parse_wait(raw: str | None) -> tuple[float, float]:
    """Parse LOAD_WAIT "MIN,MAX" (seconds a user thinks between tasks)."""
    if not raw or not raw.strip():
        return DEFAULT_WAIT
    try:
        low, high = (float(part) for part in raw.split(","))
    except ValueError:
        raise LoadConfigError(f"LOAD_WAIT: expected MIN,MAX seconds, got {raw!r}") from None
    if low < 0 or high < low:
        raise LoadConfigError(f"LOAD_WAIT: need 0 <= MIN <= MAX, got {raw!r}")
    return low, high


Number = TypeVar("Number", int, float)


def _positive(env: Mapping[str, str], name: str, default: Number) -> Number:
    """A number above 0 from env[name], of the default's type (a count takes no "2.5"), or
    the default when the variable is unset or empty."""
    raw = env.get(name, "").strip()
    kind = type(default)
    try:
        value = kind(raw) if raw else default
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise LoadConfigError(f"{name}: expected {what}, got {raw!r}") from None
    if value <= 0:
        raise LoadConfigError(f"{name}: must be above 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class LoadConfig:
    """What the user classes read at start: weights, think time, export polling bounds."""

    weights: dict[str, int]
    wait: tuple[float, float]
    export_max_polls: int
    export_poll_interval: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoadConfig:
        """Read LOAD_WEIGHTS, LOAD_WAIT, LOAD_EXPORT_MAX_POLLS, LOAD_EXPORT_POLL_INTERVAL."""
        env = os.environ if env is None else env
        return cls(
            weights=parse_weights(env.get("LOAD_WEIGHTS")),
            wait=parse_wait(env.get("LOAD_WAIT")),
            export_max_polls=_positive(env, "LOAD_EXPORT_MAX_POLLS", DEFAULT_EXPORT_MAX_POLLS),
            export_poll_interval=_positive(
                env, "LOAD_EXPORT_POLL_INTERVAL", DEFAULT_EXPORT_POLL_INTERVAL
            ),
        )
