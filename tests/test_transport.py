"""GraphQL over WebSocket against a real uvicorn server, in both protocols."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from coinql.settings import Settings
from coinql.store.db import create_engine
from tests.client import GraphQLClient, contract_operations
from tests.conftest import (
    CONTRACT_DIR,
    Backend,
    Server,
    available_backends,
    start_server,
    stop_server,
)

REDIS_BACKENDS = [name for name in available_backends() if name == "postgres"]


async def receive(ws: Any) -> dict[str, Any]:
    """The next message, past keep-alives ("ka") of the legacy protocol."""
    while True:
        message = dict(json.loads(await ws.recv(decode=True)))
        if message.get("type") != "ka":
            return message


async def test_graphql_transport_ws(server: Server, backend: Backend) -> None:
    query = contract_operations(CONTRACT_DIR, "server")["ServerInfo"]
    async with connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        message = await receive(ws)
        assert message["type"] == "next"
        info = message["payload"]["data"]["serverInfo"]
        assert info["database"] == ("sqlite" if backend.name == "sqlite" else "postgresql")
        assert (await receive(ws)) == {"id": "1", "type": "complete"}


async def test_legacy_graphql_ws_handshake(server: Server) -> None:
    # The legacy protocol carries subscriptions only; a query gets a clear error message.
    query = contract_operations(CONTRACT_DIR, "server")["ServerInfo"]
    async with connect(server.ws_url, subprotocols=["graphql-ws"]) as ws:
        assert ws.subprotocol == "graphql-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": query}}))
        assert (await receive(ws)) == {
            "type": "error",
            "id": "1",
            "payload": {"message": "queries are not allowed"},
        }


async def test_unknown_subprotocol_is_refused(server: Server) -> None:
    async with connect(server.ws_url, subprotocols=["made-up"]) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4406


# Sessions: every operation on a socket is authorized when it runs, and the socket closes at
# expiry and at once on revocation.

ME = "query Me { me { email } }"


@pytest.fixture
def strict(settings: Settings) -> Iterator[Server]:
    """A server with short socket limits: 1 s to send connection_init, 2 anonymous sockets
    per address, 3 s access tokens."""
    running = start_server(
        settings,
        extra_env={
            "COINQL_WS_INIT_TIMEOUT_SECONDS": "1",
            "COINQL_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS": "2",
            "COINQL_ACCESS_TOKEN_TTL_SECONDS": "3",
        },
    )
    try:
        yield running
    finally:
        stop_server(running)


async def signed_up(server: Server, email: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return await GraphQLClient(http, CONTRACT_DIR).sign_up(email)


async def run(ws: Any, operation_id: str, query: str) -> dict[str, Any]:
    """A query or mutation over graphql-transport-ws: its `next` (or `error`) message."""
    await ws.send(
        json.dumps({"id": operation_id, "type": "subscribe", "payload": {"query": query}})
    )
    return await receive(ws)


@asynccontextmanager
async def signed_in_socket(url: str, token: str | None) -> AsyncIterator[Any]:
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert (await receive(ws))["type"] == "connection_ack"
        yield ws


async def closed_within(ws: Any, seconds: float) -> int | None:
    """The close code once the server closes the socket, waiting at most `seconds`."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(seconds):
            while True:
                await ws.recv()
    return cast(int | None, ws.close_code)


async def test_logout_closes_the_socket_within_a_second(server: Server) -> None:
    registered = await signed_up(server, "leaver@example.com")
    async with signed_in_socket(server.ws_url, registered["accessToken"]) as ws:
        answer = await run(ws, "1", ME)
        assert answer["payload"]["data"] == {"me": {"email": "leaver@example.com"}}
        assert (await receive(ws))["type"] == "complete"
        async with httpx.AsyncClient(base_url=server.url) as http:
            logout = contract_operations(CONTRACT_DIR, "server")["Logout"]
            response = await http.post(
                "/graphql",
                json={"query": logout, "variables": {"refreshToken": registered["refreshToken"]}},
            )
            assert response.json()["data"]["logout"] is True
        assert await closed_within(ws, 1.0) == 4403
        assert ws.close_reason == "session revoked"


async def test_a_revoked_api_keys_socket_closes_within_a_second(server: Server) -> None:
    registered = await signed_up(server, "scripter@example.com")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        client = GraphQLClient(http, CONTRACT_DIR)
        made = await client.contract("accounts", "CreateApiKey", token=registered["accessToken"])
        key = made.ok()["createApiKey"]
        async with connect(server.ws_url, subprotocols=["graphql-transport-ws"]) as ws:
            init = {"type": "connection_init", "payload": {"Authorization": f"ApiKey {key['key']}"}}
            await ws.send(json.dumps(init))
            assert (await receive(ws))["type"] == "connection_ack"
            answer = await run(ws, "1", ME)
            assert answer["payload"]["data"] == {"me": {"email": "scripter@example.com"}}
            assert (await receive(ws))["type"] == "complete"
            variables = {"apiKeyId": key["apiKey"]["id"]}
            revoked = await client.contract(
                "accounts", "RevokeApiKey", variables, token=registered["accessToken"]
            )
            assert revoked.ok()["revokeApiKey"]["__typename"] == "Deleted"
            assert await closed_within(ws, 1.0) == 4403


async def test_a_password_change_closes_the_other_sessions_sockets(server: Server) -> None:
    registered = await signed_up(server, "mover@example.com")
    async with signed_in_socket(server.ws_url, registered["accessToken"]) as ws:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            passwords = {
                "currentPassword": "correct horse battery staple",
                "newPassword": "another long passphrase",
            }
            changed = await client.contract(
                "accounts", "ChangePassword", passwords, token=registered["accessToken"]
            )
            assert changed.ok()["changePassword"]["__typename"] == "AuthPayload"
        assert await closed_within(ws, 1.0) == 4403


async def test_refresh_token_reuse_closes_the_sockets_of_the_family(server: Server) -> None:
    registered = await signed_up(server, "victim@example.com")
    async with signed_in_socket(server.ws_url, registered["accessToken"]) as ws:
        async with httpx.AsyncClient(base_url=server.url) as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            variables = {"refreshToken": registered["refreshToken"]}
            assert (await client.contract("server", "Refresh", variables)).ok()
            reused = await client.contract("server", "Refresh", variables)
            assert reused.ok()["refreshToken"]["__typename"] == "InvalidToken"
        assert await closed_within(ws, 1.0) == 4403


async def test_each_operation_is_authorized_when_it_starts(
    server: Server, backend: Backend
) -> None:
    """A revocation that no broadcast announced (written straight to the store) still stops
    the socket at its next operation: a query and a mutation get no answer but the close."""
    operations = (ME, 'mutation { createPortfolio(input: {name: "x"}) { __typename } }')
    for number, operation in enumerate(operations):
        email = f"quiet{number}@example.com"
        registered = await signed_up(server, email)
        async with signed_in_socket(server.ws_url, registered["accessToken"]) as ws:
            await revoke_in_store(backend, email)
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": operation}})
            )
            assert await closed_within(ws, 5.0) == 4403
    assert await portfolio_count(backend) == 0


async def test_the_socket_closes_when_its_access_token_expires(strict: Server) -> None:
    registered = await signed_up(strict, "brief@example.com")
    async with signed_in_socket(strict.ws_url, registered["accessToken"]) as ws:
        assert (await run(ws, "1", ME))["payload"]["data"]["me"] is not None
        started = asyncio.get_running_loop().time()
        assert await closed_within(ws, 6.0) == 4403
        assert ws.close_reason == "access token expired"
        assert asyncio.get_running_loop().time() - started <= 4.0


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_a_revocation_reaches_sockets_on_every_replica(settings: Settings) -> None:
    first, second = start_server(settings), start_server(settings)
    try:
        registered = await signed_up(first, "roamer@example.com")
        async with signed_in_socket(second.ws_url, registered["accessToken"]) as ws:
            async with httpx.AsyncClient(base_url=first.url) as http:
                logout = contract_operations(CONTRACT_DIR, "server")["Logout"]
                await http.post(
                    "/graphql",
                    json={
                        "query": logout,
                        "variables": {"refreshToken": registered["refreshToken"]},
                    },
                )
            assert await closed_within(ws, 1.0) == 4403
    finally:
        stop_server(first)
        stop_server(second)


# Bounded messages and connections.


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_socket_without_connection_init_is_closed(strict: Server, protocol: str) -> None:
    async with connect(strict.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        assert await closed_within(ws, 3.0) == 4408


async def test_anonymous_sockets_are_capped_per_address(strict: Server) -> None:
    registered = await signed_up(strict, "owner@example.com")
    async with (
        signed_in_socket(strict.ws_url, None) as one,
        signed_in_socket(strict.ws_url, None) as two,
    ):
        async with connect(strict.ws_url, subprotocols=["graphql-transport-ws"]) as third:
            await third.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert await closed_within(third, 2.0) == 4429
            assert "COINQL_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS" in (third.close_reason or "")
        # A signed-in socket is not anonymous: it does not count against the cap.
        async with signed_in_socket(strict.ws_url, registered["accessToken"]) as mine:
            assert (await run(mine, "1", ME))["payload"]["data"]["me"] is not None
        assert (await run(one, "1", "{ serverInfo { version } }"))["type"] == "next"
        assert (await run(two, "1", "{ serverInfo { version } }"))["type"] == "next"
    # Closed sockets free their places.
    async with signed_in_socket(strict.ws_url, None) as again:
        assert (await run(again, "1", "{ serverInfo { version } }"))["type"] == "next"


async def test_sockets_waiting_for_connection_init_are_capped_per_address(strict: Server) -> None:
    async with (
        connect(strict.ws_url, subprotocols=["graphql-transport-ws"]),
        connect(strict.ws_url, subprotocols=["graphql-transport-ws"]),
        connect(strict.ws_url, subprotocols=["graphql-transport-ws"]) as third,
    ):
        assert await closed_within(third, 0.9) == 4429


async def test_subscribe_payloads_are_held_to_the_http_limits(server: Server) -> None:
    big = "{ serverInfo { version } }" + " " * 30_000
    many_tokens = "{ " + " ".join(f"a{i}: serverInfo {{ version }}" for i in range(600)) + " }"
    async with signed_in_socket(server.ws_url, None) as ws:
        too_big = await run(ws, "1", big)
        assert too_big["type"] == "error"
        assert "COINQL_MAX_DOCUMENT_BYTES" in too_big["payload"][0]["message"]
        assert len(many_tokens.encode()) < 20_000
        too_many = await run(ws, "2", many_tokens)
        assert too_many["type"] in ("error", "next")
        assert "token" in json.dumps(too_many["payload"]).lower()
        await ws.send(json.dumps({"id": "3", "type": "subscribe", "payload": {"query": 5}}))
        not_text = await receive(ws)
        assert not_text == {
            "id": "3",
            "type": "error",
            "payload": [
                {"message": "the payload's query must be a string holding a GraphQL document"}
            ],
        }
        # The socket still serves.
        assert (await run(ws, "4", "{ serverInfo { version } }"))["type"] == "next"


async def test_the_legacy_protocol_is_held_to_the_same_limits(server: Server) -> None:
    async with connect(server.ws_url, subprotocols=["graphql-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await receive(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": None}}))
        assert (await receive(ws))["payload"]["message"].startswith("the payload's query must")
        big = 'subscription { prices(symbols: ["BTC"]) { price } }' + " " * 30_000
        await ws.send(json.dumps({"id": "2", "type": "start", "payload": {"query": big}}))
        assert "COINQL_MAX_DOCUMENT_BYTES" in (await receive(ws))["payload"]["message"]


async def test_a_message_over_the_socket_limit_closes_the_socket(server: Server) -> None:
    async with signed_in_socket(server.ws_url, None) as ws:
        huge = {"id": "1", "type": "subscribe", "payload": {"query": "x" * (8 * 1024 * 1024)}}
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(huge))
        assert await closed_within(ws, 5.0) == 1009


async def revoke_in_store(backend: Backend, email: str) -> None:
    engine = create_engine(backend.database_url)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE refresh_tokens SET revoked_at = CURRENT_TIMESTAMP WHERE user_id ="
                " (SELECT id FROM users WHERE email = :email)"
            ),
            {"email": email},
        )
    await engine.dispose()


async def portfolio_count(backend: Backend) -> int:
    engine = create_engine(backend.database_url)
    async with engine.connect() as connection:
        found = (await connection.execute(text("SELECT count(*) FROM portfolios"))).scalar_one()
    await engine.dispose()
    return int(found)


async def test_several_operations_without_an_operation_name_are_refused_on_a_socket(
    server: Server,
) -> None:
    source = (CONTRACT_DIR / "server.graphql").read_text()
    async with signed_in_socket(server.ws_url, None) as ws:
        refused = await run(ws, "1", source)
        assert refused["type"] == "error"
        assert "name the one to run in operationName" in refused["payload"][0]["message"]
        payload = {"query": source, "operationName": "ServerInfo"}
        await ws.send(json.dumps({"id": "2", "type": "subscribe", "payload": payload}))
        assert (await receive(ws))["payload"]["data"]["serverInfo"]["version"]
