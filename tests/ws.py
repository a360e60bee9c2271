"""A small graphql-transport-ws client over `websockets`, for tests against a real server."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

PROTOCOL = "graphql-transport-ws"


class Connection:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                    continue
                queue = self.queues.get(str(message.get("id")))
                if queue is not None:
                    await queue.put(message)
        finally:  # the server closed the socket: every open subscription ends with it
            for queue in self.queues.values():
                queue.put_nowait({"type": "closed", "code": self.ws.close_code})

    async def subscribe(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        operation_name: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """`data` of each `next` message; raises on `error`; ends on `complete`."""
        sub_id = str(next(self.ids))
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.queues[sub_id] = queue
        payload: dict[str, Any] = {"query": query, "variables": variables or {}}
        if operation_name:
            payload["operationName"] = operation_name
        await self.ws.send(json.dumps({"id": sub_id, "type": "subscribe", "payload": payload}))
        try:
            while True:
                message = await queue.get()
                if message["type"] == "next":
                    if message["payload"].get("errors"):
                        raise SubscriptionError(message["payload"]["errors"])
                    yield message["payload"]["data"]
                elif message["type"] == "error":
                    raise SubscriptionError(message["payload"])
                elif message["type"] == "complete":
                    return
                elif message["type"] == "closed":
                    raise SubscriptionError(f"the socket closed with code {message['code']}")
        finally:
            if not self.ws.close_code:
                await self.ws.send(json.dumps({"id": sub_id, "type": "complete"}))
            self.queues.pop(sub_id, None)


class SubscriptionError(Exception):
    pass


@asynccontextmanager
async def ws_connect(url: str, token: str | None = None) -> AsyncIterator[Connection]:
    async with connect(url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        connection = Connection(ws)
        try:
            yield connection
        finally:
            connection.reader.cancel()


async def take(
    stream: AsyncIterator[dict[str, Any]], count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    """The first `count` items of a subscription, within `timeout` seconds."""

    async def collect() -> list[dict[str, Any]]:
        found = []
        async for item in stream:
            found.append(item)
            if len(found) == count:
                break
        return found

    return await asyncio.wait_for(collect(), timeout)
