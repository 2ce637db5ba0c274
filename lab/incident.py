"""A seeded incident schedule: faults switched on and off over time, the same for a seed.

A workshop replays the same incident by giving the same seed: the schedule depends on
nothing but the seed and the duration.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from curriculum.blind_incident import TARGET_ENDPOINTS


@dataclass(frozen=True)
class Step:
    """At `at` seconds from the start, put `faults` in force (an empty mapping clears)."""

    at: float
    faults: dict[str, float | list[float]]
    description: str


def _episode(rng: random.Random) -> tuple[dict[str, float | list[float]], str]:
    """One fault episode drawn from the catalogue."""
    endpoint = rng.choice(TARGET_ENDPOINTS)
    kind = rng.choice(("error_rate", "latency", "slow_db", "export_failure_rate", "worker_delay"))
    if kind == "error_rate":
        rate = round(rng.uniform(0.1, 0.4), 2)
        return {f"error_rate.{endpoint}": rate}, f"{rate:.0%} of {endpoint} requests fail"
    if kind == "latency":
        low = round(rng.uniform(0.2, 0.4), 2)
        high = round(low + rng.uniform(0.1, 0.4), 2)
        return {f"latency.{endpoint}": [low, high]}, f"{endpoint} slows by {low}-{high}s"
    if kind == "slow_db":
        seconds = round(rng.uniform(0.1, 0.3), 2)
        return {"slow_db": seconds}, f"database reads take {seconds}s longer"
    if kind == "export_failure_rate":
        rate = round(rng.uniform(0.5, 1.0), 2)
        return {"export_failure_rate": rate}, f"{rate:.0%} of exports fail"
    seconds = round(rng.uniform(1.0, 3.0), 1)
    return {"worker_delay": seconds}, f"the worker waits {seconds}s before each task"


def schedule(seed: int, duration: float, episodes: int = 3) -> list[Step]:
    """Episodes spread over duration, each followed by a quiet gap; ends with all clear."""
    if duration < 10 * episodes:
        raise ValueError(f"duration must be at least {10 * episodes}s for {episodes} episodes")
    rng = random.Random(seed)
    slot = duration / episodes
    steps: list[Step] = []
    for index in range(episodes):
        start = index * slot + rng.uniform(0.1, 0.3) * slot
        length = rng.uniform(0.3, 0.5) * slot
        faults, description = _episode(rng)
        steps.append(Step(round(start, 1), faults, description))
        steps.append(Step(round(start + length, 1), {}, "all clear"))
    return steps
