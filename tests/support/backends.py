"""Where a test's data and queue live: PostgreSQL + Redis, or the embedded SQLite defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from app.settings import Settings


@dataclass(frozen=True)
class Backend:
    """One place the stack keeps its data and its queue."""

    name: str
    env: dict[str, str]
    var_dir: Path

    @property
    def database_url(self) -> str:
        """The DATABASE_URL of this backend."""
        return self.env["DATABASE_URL"]

    def settings(self, **extra: str) -> Settings:
        """Settings as a process started with this backend's environment would see them."""
        return Settings.from_env({**self.env, **extra})

    def clean(self) -> None:
        """Empty the tables between tests."""
        engine = create_engine(self.database_url)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("TRUNCATE todos, exports, idempotency_keys RESTART IDENTITY"))
            else:
                conn.execute(text("DELETE FROM todos"))
                conn.execute(text("DELETE FROM exports"))
                conn.execute(text("DELETE FROM idempotency_keys"))
        engine.dispose()
