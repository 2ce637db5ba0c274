"""Counters and resets: why `rate` comes before `sum`, shown on real samples.

Prometheus reads a counter that went *down* between two samples as a process that restarted
(a reset to zero) and counts the new value as increase. That rule is right for one process's
counter and wrong for a sum of several: when one of two processes restarts, their sum drops
by what the restarted one had counted, and `rate(sum(...))` reads that drop as a reset of
everything, a spike of phantom requests. Rating each series first and summing after sees
the restart only in the series that had it.

The functions here apply Prometheus's reset rule to a list of samples, so a notebook can
replay a restart on the lab's own counter samples and compare both orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import pandas as pd


def increase_with_resets(values: Sequence[float]) -> float:
    """The increase of one counter over its samples, with Prometheus's reset rule.

    A sample lower than the one before means the counter restarted from zero: the increase
    over that step is the new value itself, not the (negative) difference.
    """
    total = 0.0
    for before, after in pairwise(values):
        total += after - before if after >= before else after
    return total


def restart(samples: pd.Series, at: int) -> pd.Series:
    """The same counter as if its process restarted just before sample position `at`.

    From `at` on, the counter holds only what was counted after the restart: the values
    minus the value it had reached at `at - 1` (what the restart lost).
    """
    if not 0 < at < len(samples):
        raise ValueError(f"restart position {at} must be inside the {len(samples)} samples")
    values = samples.to_numpy(dtype="float64").copy()
    lost = values[at - 1]
    values[at:] = values[at:] - lost
    return pd.Series(values, index=samples.index, name=samples.name)


def reset_comparison(per_process: pd.DataFrame) -> pd.DataFrame:
    """Increase computed both ways over counters of several processes (one column each).

    Rows: "rate then sum" (each column's increase with the reset rule, then added), "sum
    then rate" (columns added sample by sample, then the reset rule on the sum) and "true"
    (what was really counted: each column's positive steps, resets excluded).
    """
    true = 0.0
    for column in per_process.columns:
        steps = per_process[column].diff().dropna()
        true += float(steps[steps >= 0].sum()) + float(
            per_process[column][steps[steps < 0].index].sum())
    rate_then_sum = sum(increase_with_resets(list(per_process[c])) for c in per_process.columns)
    sum_then_rate = increase_with_resets(list(per_process.sum(axis=1)))
    return pd.DataFrame({"increase": [true, rate_then_sum, sum_then_rate]},
                        index=pd.Index(["true", "rate then sum", "sum then rate"], name="order"))
