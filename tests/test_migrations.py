"""The schema is owned by Alembic: head matches the models, and upgrade is idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app import models  # noqa: F401
from app.db import db
from app.migrate import upgrade
from stack.databases import temporary_pg_database
from tests.support.processes import ROOT


def test_head_matches_the_models_on_postgres(pg_database_url: str) -> None:
    engine = create_engine(pg_database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(database_url=url)
    upgrade(database_url=url)
    engine = create_engine(url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"todos", "exports", "alembic_version"} <= tables


@pytest.mark.postgres
def test_replicas_starting_together_each_migrate_without_a_race() -> None:
    """Four web replicas start at once on a fresh database (`--scale web=4`), each running the
    container's start step: all succeed, one upgrades and the others find the schema at head
    (without the advisory lock, two of them raced to create alembic_version)."""
    with temporary_pg_database(migrate=False) as url:
        starts = [subprocess.Popen([sys.executable, "-m", "app.migrate"], cwd=ROOT, text=True,
                                   env={**os.environ, "DATABASE_URL": url},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                  for _ in range(4)]
        errors = [start.communicate(timeout=120)[1] for start in starts]
        assert [start.returncode for start in starts] == [0] * 4, [err[-2000:] for err in errors]
        engine = create_engine(url)
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_heads()
            assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
        engine.dispose()
