from __future__ import annotations

import io
from pathlib import Path

import pytest

from coinql.cli import main
from tests.client import GraphQLClient
from tests.conftest import Backend

ROOT = Path(__file__).resolve().parents[1]


def test_exported_schema_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-schema", "--output", "-"]) == 0
    exported = capsys.readouterr().out
    assert exported == (ROOT / "schema.graphql").read_text(), (
        "schema.graphql is stale: run `make schema`"
    )


async def test_create_admin_then_log_in(
    backend: Backend, client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setenv("COINQL_DATABASE_URL", backend.database_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long admin password\n"))
    code = await asyncio.to_thread(
        main, ["create-user", "root@example.com", "--admin", "--password-stdin"]
    )
    assert code == 0
    login = await client.contract(
        "server", "Login", {"email": "root@example.com", "password": "a long admin password"}
    )
    token = login.ok()["login"]["accessToken"]
    me = await client.execute("{ me { email isAdmin } }", token=token)
    assert me.ok()["me"] == {"email": "root@example.com", "isAdmin": True}


async def test_create_user_rejects_a_weak_password(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    monkeypatch.setenv("COINQL_DATABASE_URL", backend.database_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code = await asyncio.to_thread(main, ["create-user", "x@example.com", "--password-stdin"])
    assert code == 1
    assert "at least 10 characters" in capsys.readouterr().err


def test_serve_names_the_urls_it_serves(tmp_path: Path) -> None:
    """A newcomer reads where GraphiQL is from the first lines `coinql serve` prints."""
    import os
    import subprocess
    import sys

    from coinql.migrations import upgrade
    from tests.conftest import TEST_SECRET, free_port

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'coinql.db'}"
    upgrade(database_url)
    port = free_port()
    env = {
        **os.environ,
        "COINQL_DATABASE_URL": database_url,
        "COINQL_SECRET_KEY": TEST_SECRET,
        "COINQL_SOURCE": "none",
        "COINQL_LOG_LEVEL": "INFO",
        "COINQL_LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "coinql.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        lines = []
        for raw in process.stdout:
            lines.append(raw.decode())
            if '"serving"' in lines[-1] or len(lines) > 50:
                break
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    serving = next(line for line in lines if '"serving"' in line)
    assert f'"graphiql": "http://127.0.0.1:{port}/graphql"' in serving.replace('":"', '": "')
