"""Upgrade the schema to head with Alembic, as `lab migrate`, `lab up` and the tests do.

`python -m app.migrate` is the web container's own start step in compose (before gunicorn),
not a command for people: the web image holds the app alone, not the lab's tools, so it cannot
run `lab migrate`. Both say an unusable database in the same line (`unusable` below).
"""

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


def unusable(exc: OperationalError) -> str:
    """The one line that says why the database refused us (libpq's first line, no traceback):
    e.g. a password changed after the database was created with another one."""
    reason = str(exc.orig or exc).strip().splitlines()[0]
    return f"cannot use the database: {reason}"


def main() -> None:
    """The web container's start step: upgrade, or exit 1 with one line saying why not."""
    try:
        upgrade()
    except OperationalError as exc:
        raise SystemExit(f"app.migrate: {unusable(exc)}") from None


if __name__ == "__main__":
    main()
