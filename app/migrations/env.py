"""Alembic environment: the URL comes from the app's settings, the metadata from its models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from app import models  # noqa: F401  (registers the tables on the metadata)
from app.db import db
from app.settings import Settings

target_metadata = db.metadata
# Replicas that start together (`docker compose up --scale web=3`, a swarm service) each run
# the migrations first: on PostgreSQL one at a time, under this transaction-level advisory
# lock, so the others wait and then find the schema at head instead of racing to create it.
MIGRATION_LOCK_KEY = 8_245_001


def _url() -> str:
    """The database URL: an explicit one from the caller, else the settings'."""
    return context.config.attributes.get("database_url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    """Emit SQL without a connection."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over a real connection."""
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
