"""The bank: every exercise of the workshop, registered from its module's file.

The model (Exercise, Mistake, Tolerance, the answer banks) is curriculum/exercise_model.py;
the exercises are in curriculum/modules/, one file a module of the workshop. Importing this
module registers them all in EXERCISES.
"""

from __future__ import annotations

import curriculum.modules  # noqa: F401  (registers every module's exercises)
from curriculum.exercise_model import (
    ANSWER_TYPES,
    EXERCISES,
    FLOAT_ROUNDING,
    KINDS,
    REFERENCES,
    Answers,
    Exercise,
    Mistake,
    Tolerance,
    Wrong,
)

__all__ = ["ANSWER_TYPES", "EXERCISES", "FLOAT_ROUNDING", "KINDS", "REFERENCES", "Answers", "Exercise",
           "Mistake", "Tolerance", "Wrong"]
