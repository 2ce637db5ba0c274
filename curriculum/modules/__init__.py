"""The workshop's modules, one file each (m01_metrics.py for notebooks/01-metrics.ipynb, ...):
importing this package registers every exercise.

In a module's file each `add(Exercise(...))` holds the question, the hint, what a right answer
teaches (`why`), the common mistakes with their advice, the reference `solution`, and the
`answers` the tests grade (right ones that must pass, wrong ones that must get the advice they
name; a choice with a fixed key has its banks made from its options and their advice): see
curriculum/exercise_model.py.
"""

from curriculum.modules import (  # noqa: F401
    m00_setup,
    m01_metrics,
    m02_logs,
    m03_traces,
    m04_verification,
    m05_alerting,
    m06_cardinality_sampling_cost,
    m07_incident,
    m08_fleet,
)
