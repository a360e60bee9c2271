"""The broadcast hub: publish JSON payloads on named channels, in memory or through Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from broadcaster import Broadcast
from broadcaster._base import Unsubscribed


class Hub:
    """One process's connection to the broadcast backend.

    `memory://` when no Redis URL is given: every subscriber lives in this process. With Redis,
    every process publishing or subscribing on a channel sees the same messages.
    """

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self.kind = "redis" if redis_url else "memory"
        self._broadcast = Broadcast(redis_url or "memory://")
        self._redis: aioredis.Redis | None = (
            aioredis.Redis.from_url(redis_url) if redis_url else None
        )

    async def connect(self) -> None:
        await self._broadcast.connect()

    async def disconnect(self) -> None:
        await self._broadcast.disconnect()
        if self._redis is not None:
            await self._redis.aclose()

    async def ping(self) -> None:
        """Raise unless the backend answers (always answers in memory)."""
        if self._redis is not None:
            await self._redis.ping()

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        await self._broadcast.publish(channel, orjson.dumps(payload).decode())

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        async with self._broadcast.subscribe(channel) as subscriber:
            try:
                while True:
                    event = await subscriber.get()
                    yield orjson.loads(event.message)
            except Unsubscribed:
                return
