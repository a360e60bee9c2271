"""GraphQL over WebSocket against a real uvicorn server, in both protocols."""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.client import connect

from tests.client import contract_operations
from tests.conftest import CONTRACT_DIR, Backend, Server


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
