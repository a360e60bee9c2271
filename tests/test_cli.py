from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from starlette.applications import Starlette
from strawberry import relay

from coinql.cli import main
from coinql.store.secrets import generate_key
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


async def test_rotate_encryption_key_moves_every_secret_to_the_new_key(
    app: Starlette, client: GraphQLClient, monkeypatch: pytest.MonkeyPatch, backend: Backend
) -> None:
    import asyncio

    from coinql.store import accounts as account_store
    from coinql.store.secrets import SecretBox

    [old] = app.state.services.settings.resolved_encryption_keys()
    token = (await client.sign_up("ada@example.com"))["accessToken"]
    added = await client.contract("accounts", "AddExchangeConnection", token=token)
    assert added.ok()["addExchangeConnection"]["__typename"] == "ExchangeConnection"
    new = generate_key()
    monkeypatch.setenv("COINQL_DATABASE_URL", backend.database_url)
    monkeypatch.setenv("COINQL_ENCRYPTION_KEY", f"{new},{old}")
    assert await asyncio.to_thread(main, ["rotate-encryption-key"]) == 0
    async with app.state.services.reader() as session:
        [connection] = await account_store.list_connections(
            session, owner_id=(await client_user_id(client, token))
        )
    secret = account_store.connection_credentials(connection, SecretBox([new]))[1]
    assert secret == "sk-0123456789abcdefghijklmnopqrstuv"  # readable under the new key alone
    assert await asyncio.to_thread(main, ["rotate-encryption-key"]) == 0  # nothing left to do


async def client_user_id(client: GraphQLClient, token: str) -> uuid.UUID:
    me = (await client.execute("{ me { id } }", token=token)).ok()["me"]["id"]
    return uuid.UUID(relay.GlobalID.from_id(me).node_id)


async def test_emergency_stop_stops_every_users_bots(
    app: Starlette,
    client: GraphQLClient,
    admin: str,
    monkeypatch: pytest.MonkeyPatch,
    backend: Backend,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    from tests.conftest import COINS_DIR, upload

    report = await upload(client, (COINS_DIR / "coin_Bitcoin.csv").read_bytes(), token=admin)
    assert report["__typename"] == "ImportReport", report
    bots = []
    for email in ("ada@example.com", "bob@example.com"):
        token = (await client.sign_up(email))["accessToken"]
        strategy = (
            await client.execute(
                'mutation { createStrategy(input: {name: "t", kind: {smaCross:'
                " {fast: 10, slow: 30}}}) { ... on Strategy { id } } }",
                token=token,
            )
        ).ok()["createStrategy"]["id"]
        created = await client.contract(
            "trading", "CreateBot", {"strategyId": strategy}, token=token
        )
        bot = created.ok()["createBot"]["id"]
        await client.contract("trading", "StartBot", {"botId": bot}, token=token)
        bots.append((bot, token))
    monkeypatch.setenv("COINQL_DATABASE_URL", backend.database_url)
    if backend.redis_url:
        monkeypatch.setenv("COINQL_REDIS_URL", backend.redis_url)
    assert await asyncio.to_thread(main, ["emergency-stop", "--close-positions"]) == 0
    assert "stopped 2 bots, cancelled 0 orders, closed 0 positions" in capsys.readouterr().out
    for bot, token in bots:
        found = await client.execute(
            "query($b: ID!) { bot(id: $b) { status reason } }", {"b": bot}, token=token
        )
        assert found.ok()["bot"] == {"status": "STOPPED", "reason": "emergency stop"}
