"""Load profiles selectable by name: steady, ramp, spike, soak.

Each profile is a pure function of run time (`tick(seconds) -> (users, spawn_rate) | None`),
so it can be tested without Locust; `locustfile.SelectedShape` (a LoadTestShape) delegates
to the profile named on the command line, in the environment or in the web UI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from app.environment import SettingsError, parse_number

Tick = tuple[int, float] | None


@dataclass(frozen=True)
class Profile:
    """A named load profile: peak users, spawn rate (users/s) and duration (s)."""

    users: int
    spawn_rate: float
    duration: float

    name: ClassVar[str] = ""
    default_users: ClassVar[int] = 10
    default_duration: ClassVar[float] = 60.0

    @classmethod
    def default_spawn_rate(cls, users: int) -> float:
        """Spawn rate when none is given: reach the target in about ten seconds."""
        return max(1.0, users / 10)

    def tick(self, run_time: float) -> Tick:
        """(users, spawn_rate) wanted at run_time seconds, or None once the run is over."""
        raise NotImplementedError


@dataclass(frozen=True)
class Steady(Profile):
    """The same number of users for the whole run."""

    name: ClassVar[str] = "steady"

    def tick(self, run_time: float) -> Tick:
        """Constant users until the end."""
        if run_time >= self.duration:
            return None
        return self.users, self.spawn_rate


@dataclass(frozen=True)
class Ramp(Profile):
    """Step up in equal stairs to the peak; each stair lasts duration / steps."""

    name: ClassVar[str] = "ramp"
    default_users: ClassVar[int] = 20
    default_duration: ClassVar[float] = 120.0
    steps: int = 4

    @classmethod
    def default_spawn_rate(cls, users: int) -> float:
        """Each stair is reached within about a second, so the stairs stay flat."""
        return max(1.0, users / 4)

    def step_users(self, step: int) -> int:
        """Users on stair step (0-based)."""
        return max(1, math.ceil(self.users * (step + 1) / self.steps))

    def tick(self, run_time: float) -> Tick:
        """Users of the stair run_time falls on."""
        if run_time >= self.duration:
            return None
        step = min(int(run_time // (self.duration / self.steps)), self.steps - 1)
        return self.step_users(step), self.spawn_rate


@dataclass(frozen=True)
class Spike(Profile):
    """A baseline (a fifth of the peak), the peak in the middle fifth of the run, baseline again."""

    name: ClassVar[str] = "spike"
    default_users: ClassVar[int] = 30
    default_duration: ClassVar[float] = 90.0
    start_fraction: ClassVar[float] = 0.4
    end_fraction: ClassVar[float] = 0.6

    @classmethod
    def default_spawn_rate(cls, users: int) -> float:
        """A spike arrives all at once (within about a second)."""
        return float(max(1, users))

    @property
    def baseline(self) -> int:
        """Users before and after the spike."""
        return max(1, round(self.users / 5))

    def tick(self, run_time: float) -> Tick:
        """Baseline, peak, baseline."""
        if run_time >= self.duration:
            return None
        start, end = self.start_fraction * self.duration, self.end_fraction * self.duration
        in_spike = start <= run_time < end
        return (self.users if in_spike else self.baseline), self.spawn_rate


@dataclass(frozen=True)
class Soak(Steady):
    """A moderate load held for a long time (leaks, pool exhaustion, disk growth)."""

    name: ClassVar[str] = "soak"
    default_users: ClassVar[int] = 10
    default_duration: ClassVar[float] = 1800.0

    @classmethod
    def default_spawn_rate(cls, users: int) -> float:
        """Start gently: one user a second."""
        return 1.0


PROFILES: Mapping[str, type[Profile]] = {p.name: p for p in (Steady, Ramp, Spike, Soak)}
SHAPE_NAMES = tuple(PROFILES)


def _number(value: object, what: str) -> float | None:
    """A number above 0 from an option value (the web UI passes strings), or None if unset;
    parsed as every setting of the lab is (app.environment.parse_number)."""
    return parse_number(what, value, None, kind=float, above=0)


# The load settings a profile is made of: argument name -> the variable that sets it when the
# command line does not (the locustfile's own options read the same variables, env_var=...).
PROFILE_VARIABLES: dict[str, str] = {"shape": "LOAD_SHAPE", "users": "LOAD_USERS",
                                     "spawn_rate": "LOAD_SPAWN_RATE", "duration": "LOAD_DURATION"}


def profile_from(env: Mapping[str, str], shape: str | None = None, users: object = None,
                 spawn_rate: object = None, duration: object = None) -> Profile:
    """The one place a load setting becomes a profile: each value given (a command-line option)
    wins over its LOAD_* variable in env, which wins over the shape's default; checked once
    (a ValueError, a SettingsError for a variable, naming what is wrong). `lab load` and the
    headless runner take their profile from here; Locust's own options read the same variables."""
    given = {"shape": shape, "users": users, "spawn_rate": spawn_rate, "duration": duration}
    chosen: dict[str, object] = {}
    for name, variable in PROFILE_VARIABLES.items():
        if given[name] not in (None, ""):
            chosen[name] = given[name]
            continue
        chosen[name] = env.get(variable, "").strip() or None
        if chosen[name] is None:
            continue
        if name != "shape":  # a bad variable is named as every setting is: LOAD_USERS='x' is invalid
            parse_number(variable, chosen[name], None, kind=float, above=0)
        elif str(chosen[name]).lower() not in PROFILES:
            raise SettingsError(f"{variable}={chosen[name]!s} is invalid: expected one of "
                                f"{', '.join(SHAPE_NAMES)}")
    return make_profile(str(chosen["shape"] or "steady"), chosen["users"], chosen["spawn_rate"],
                        chosen["duration"])


def make_profile(
    name: str, users: object = None, spawn_rate: object = None, duration: object = None
) -> Profile:
    """The profile called name, with the given overrides and its own defaults otherwise."""
    key = (name or "steady").strip().lower()
    if key not in PROFILES:
        raise ValueError(f"unknown load shape {name!r}; choose one of {', '.join(SHAPE_NAMES)}")
    cls = PROFILES[key]
    peak = _number(users, "users")
    user_count = int(peak) if peak is not None else cls.default_users
    rate = _number(spawn_rate, "spawn rate")
    seconds = _number(duration, "duration")
    return cls(
        users=max(1, user_count),
        spawn_rate=rate if rate is not None else cls.default_spawn_rate(user_count),
        duration=seconds if seconds is not None else cls.default_duration,
    )
