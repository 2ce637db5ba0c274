"""The schema is owned by Alembic: head matches the models, and upgrade is idempotent."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app import models  # noqa: F401
from app.db import db
from app.migrate import upgrade


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
