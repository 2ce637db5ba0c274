"""`lab migrate`: bring the database schema to the newest revision."""

from __future__ import annotations

import argparse

from stack import launch
from stack.config import LabConfig


def run(args: argparse.Namespace) -> int:
    """Run the Alembic migrations against DATABASE_URL (or the embedded SQLite file)."""
    config = LabConfig.from_env()
    launch.validate_settings(config)
    launch.migrate(config)
    print("database schema is up to date")
    return 0
