"""The lab's fault switchboard, as lab commands read and write it."""

from __future__ import annotations

from app.faults import Switchboard
from app.settings import Settings
from stack import topology
from stack.config import LabConfig


def board() -> Switchboard:
    """The switchboard every web and worker process of this lab reads."""
    settings = Settings.from_env(topology.child_env(LabConfig.from_env()))
    # The CLI only reads and writes the file; the services announce what they apply.
    return Switchboard(settings.faults_file, announce=False)
