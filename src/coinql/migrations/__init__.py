"""Alembic migrations for SQLite and PostgreSQL, and the helpers the CLI and the app use."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent


class DatabaseBehind(RuntimeError):
    """The database schema is older than the code; `coinql migrate` brings it up to date."""


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Run the migrations up to `revision`. Blocking: call it from a thread inside a loop."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def ensure_current(engine: AsyncEngine) -> None:
    """Raise `DatabaseBehind` unless the database is at the head revision."""
    async with engine.connect() as connection:
        current = await connection.run_sync(_current_revision)
    head = head_revision()
    if current != head:
        raise DatabaseBehind(
            f"the database is at revision {current or 'none (empty)'} but the code needs {head};"
            " run `coinql migrate` (or `make run`, which migrates) first"
        )
