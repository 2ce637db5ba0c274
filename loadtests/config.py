"""Settings of the synthetic load, read from the environment (LOAD_*), validated once."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.environment import SettingsError, integer, number

SYNTHETIC_HEADER: Final = "X-Synthetic-Load"
SYNTHETIC_VALUE: Final = "locust"
USER_AGENT_PREFIX: Final = "todo-lab-loadtest/1.0"

ROLES: Final = ("reader", "writer", "exporter", "api")
DEFAULT_WEIGHTS: Final[Mapping[str, int]] = {"reader": 5, "writer": 3, "exporter": 1, "api": 2}
DEFAULT_WAIT: Final = (1.0, 3.0)
DEFAULT_EXPORT_MAX_POLLS: Final = 60
DEFAULT_EXPORT_POLL_INTERVAL: Final = 0.5


class LoadConfigError(SettingsError):
    """A LOAD_* variable has a value we cannot use (worded as every setting's error is)."""


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


def _checked(parse: Callable[..., Any], *args: Any, **bounds: Any) -> Any:
    """parse(*args, **bounds) (app.environment's one number parser), its error a LoadConfigError."""
    try:
        return parse(*args, **bounds)
    except SettingsError as exc:
        raise LoadConfigError(str(exc)) from None


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
            export_max_polls=_checked(integer, env, "LOAD_EXPORT_MAX_POLLS", DEFAULT_EXPORT_MAX_POLLS, low=1),
            export_poll_interval=_checked(number, env, "LOAD_EXPORT_POLL_INTERVAL",
                                          DEFAULT_EXPORT_POLL_INTERVAL, above=0),
        )
