"""The broadcast hub: JSON messages on named channels, in memory or through Redis.

broadcaster 0.3.1 gives every subscriber an unbounded queue, and its Redis listener dies
silently when the connection drops (its issue #144). This hub keeps broadcaster's model (one
listener per process fanning out to local subscribers) without either flaw:

- each subscriber has a mailbox; a *conflating* one (prices, candles, portfolio values) keeps
  only the newest `capacity` messages, so a slow client gets the latest value, not a growing
  backlog; a *reliable* one (job progress, alerts) never drops a message;
- the Redis listener reconnects with backoff and re-subscribes by itself; while Redis is away
  `healthy` is False (shown in /health/ready) and every reconnect is counted (a metric).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import orjson
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger("coinql.hub")
PATTERN = "coinql.*"
DEFAULT_CAPACITY = 64
T = TypeVar("T")


class Mailbox(Generic[T]):
    """A subscriber's queue. Conflating: bounded, dropping the oldest. Reliable: unbounded."""

    def __init__(self, *, conflate: bool, capacity: int = DEFAULT_CAPACITY) -> None:
        self.conflate = conflate
        self.items: deque[T] = deque(maxlen=capacity if conflate else None)
        # The reader's wake-up, when it waits: a bare future is cheaper than an asyncio.Event
        # for the one-reader case, which runs once per message per subscriber.
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = 0

    def put(self, message: T) -> None:
        if self.conflate and len(self.items) == self.items.maxlen:
            self.dropped += 1
        self.items.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> T:
        while not self.items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.items.popleft()


class Hub:
    """One process's connection to the broadcast backend."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        on_reconnect: Callable[[], None] | None = None,
        reconnect_cap_seconds: float = 2.0,
    ) -> None:
        self.redis_url = redis_url
        self.kind = "redis" if redis_url else "memory"
        self.on_reconnect = on_reconnect
        self.reconnect_cap_seconds = reconnect_cap_seconds
        self._subscribers: dict[str, set[Mailbox[dict[str, Any]]]] = {}
        self._redis: aioredis.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self.healthy = redis_url is None
        self.reconnects = 0
        self.last_error: str | None = None

    @property
    def subscriber_count(self) -> int:
        return sum(len(boxes) for boxes in self._subscribers.values())

    async def connect(self) -> None:
        if self.redis_url is None:
            return
        self._redis = aioredis.Redis.from_url(
            self.redis_url, socket_connect_timeout=2, socket_keepalive=True, health_check_interval=5
        )
        connected = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(connected), name="coinql-hub-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), 5)  # up, or reconnecting in the background

    async def disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._redis is not None:
            await self._redis.aclose()

    async def ping(self) -> None:
        """Raise unless the backend answers (always answers in memory)."""
        if self._redis is not None:
            await self._redis.ping()
            if not self.healthy:
                raise ConnectionError(f"the Redis listener is reconnecting: {self.last_error}")

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        """Deliver to every subscriber of `channel`, in every process (with Redis)."""
        if self._redis is None:
            self._deliver(channel, payload)
            return
        await self._redis.publish(channel, orjson.dumps(payload))

    def _deliver(self, channel: str, payload: dict[str, Any]) -> None:
        for mailbox in list(self._subscribers.get(channel, ())):
            mailbox.put(payload)

    async def subscribe(
        self, channels: list[str], *, conflate: bool, capacity: int = DEFAULT_CAPACITY
    ) -> AsyncIterator[dict[str, Any]]:
        """Messages of any of `channels` until the caller stops iterating; then nothing of
        the subscription remains."""
        mailbox: Mailbox[dict[str, Any]] = Mailbox(conflate=conflate, capacity=capacity)
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(mailbox)
        try:
            while True:
                yield await mailbox.get()
        finally:
            for channel in channels:
                boxes = self._subscribers.get(channel)
                if boxes is not None:
                    boxes.discard(mailbox)
                    if not boxes:
                        del self._subscribers[channel]

    async def _listen(self, connected: asyncio.Event) -> None:
        """Pattern-subscribe to every coinql channel; reconnect forever on failure."""
        assert self._redis is not None
        attempt = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(PATTERN)
                if not self.healthy and attempt:
                    self.reconnects += 1
                    if self.on_reconnect is not None:
                        self.on_reconnect()
                    log.info("redis listener reconnected", reconnects=self.reconnects)
                self.healthy, self.last_error, attempt = True, None, 0
                connected.set()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    self._deliver(channel, orjson.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, ConnectionError) as error:
                self.healthy = False
                self.last_error = f"{type(error).__name__}: {error}"
                attempt += 1
                log.warning("redis listener lost its connection", error=self.last_error)
                await asyncio.sleep(
                    random.uniform(0, min(self.reconnect_cap_seconds, 0.1 * 2**attempt))
                )
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
