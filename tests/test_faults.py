"""Faults caused for real: SQLite locked by another process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from coinql.app import create_app
from coinql.store import db
from tests.client import GraphQLClient
from tests.conftest import CONTRACT_DIR, Backend, make_settings
from tests.schema.test_server import count

HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
"""


async def test_a_locked_sqlite_database_is_a_clear_error_not_a_hang(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "locked.db"
    shutil.copy(sqlite_template, path)
    backend = Backend("sqlite", f"sqlite+aiosqlite:///{path}", None)
    app = create_app(make_settings(backend, tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLD_LOCK, str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
                register = await client.contract(
                    "server",
                    "Register",
                    {"email": "ada@example.com", "password": "correct horse battery staple"},
                )
            finally:
                assert holder.stdin is not None
                holder.stdin.write("\n")
                holder.stdin.close()
                holder.wait(timeout=10)
                assert holder.stdout is not None
                holder.stdout.close()
            (error,) = register.errors
            assert error["message"] == (
                "the database is locked by another process; nothing was changed, try again"
            )
            assert error["extensions"]["code"] == "Unavailable"
            from coinql.store.auth import User

            assert await count(app, User) == 0
            await client.sign_up()  # and once the lock is gone, it works
            assert await count(app, User) == 1
