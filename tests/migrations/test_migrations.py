"""Migrations upgrade and downgrade on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from coinql.migrations import alembic_config, downgrade, upgrade
from coinql.store.db import create_engine
from coinql.store.tables import metadata
from tests.conftest import _pg_url, available_backends


@pytest.fixture(params=available_backends())
def scratch_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own, so downgrades do not disturb other tests."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"
        return
    url = make_url(_pg_url() or "")
    name = f"coinql_scratch_{uuid.uuid4().hex[:8]}"
    admin = url.set(database="postgres").render_as_string(hide_password=False)

    async def run(statement: str) -> None:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(statement))
        await engine.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def table_names(database_url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine(database_url)
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        await engine.dispose()
        return set(names)

    return asyncio.run(read())


def test_upgrade_downgrade_upgrade(scratch_database: str) -> None:
    models = {table.name for table in metadata.sorted_tables}
    upgrade(scratch_database)
    assert table_names(scratch_database) == models | {"alembic_version"}
    downgrade(scratch_database, "base")
    assert table_names(scratch_database) == {"alembic_version"}
    upgrade(scratch_database)
    assert table_names(scratch_database) == models | {"alembic_version"}


def test_models_and_migrations_do_not_drift(scratch_database: str) -> None:
    upgrade(scratch_database)
    # `alembic check` raises when autogenerate would write anything.
    command.check(alembic_config(scratch_database))


def test_migration_files_are_dated() -> None:
    versions = Path(__file__).resolve().parents[2] / "src/coinql/migrations/versions"
    names = sorted(path.name for path in versions.glob("*.py"))
    assert names, "no migrations"
    for name in names:
        assert name[:4].isdigit() and name[4] == "_" and name[7] == "_", name
