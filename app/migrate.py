"""Upgrade the schema to head with Alembic, as `make lab`, the launcher and tests do."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import OperationalError

from app.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at our migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(settings: Settings | None = None, database_url: str | None = None) -> None:
    """Bring the database to the newest revision."""
    url = database_url or (settings or Settings.from_env()).database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


def main() -> None:
    """Entry point: python -m app.migrate; an unreachable database is one line, not a traceback."""
    try:
        upgrade()
    except OperationalError as exc:
        # e.g. a password changed after the database was created with another one.
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise SystemExit(f"app.migrate: cannot use the database: {reason}") from None


if __name__ == "__main__":
    main()
