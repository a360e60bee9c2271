"""The broadcast hub: JSON messages on named channels, through broadcaster (`memory://` on the
embedded default, `redis://` when COINQL_REDIS_URL is set).

broadcaster 0.3.1 gives every subscriber an unbounded queue, and its Redis listener dies
silently when the connection drops (read in its source; its issue #144). coinql uses it without
inheriting either:

- broadcaster subscribes once per channel per process, and a pump drains that one queue at once
  into the local subscribers' mailboxes: a *conflating* one (prices, candles, portfolio values)
  keeps only the newest `capacity` messages, so a slow client gets the latest value, not a
  growing backlog; a *reliable* one (job progress, alerts) never drops a message;
- a supervisor watches the Redis listener and the connection; when either is lost, `healthy` is
  False (shown in /health/ready) and it reconnects with backoff, on a fresh Broadcast, and
  re-subscribes every channel; each reconnect is counted (a metric).
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
from broadcaster import Broadcast
from redis.exceptions import RedisError

from coinql.realtime.tasks import cancel

log = structlog.get_logger("coinql.hub")
DEFAULT_CAPACITY = 64
T = TypeVar("T")
WATCH_SECONDS = 0.5


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
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._listening: dict[str, asyncio.Future[None]] = {}  # done once broadcaster listens
        self._broadcast: Broadcast | None = None
        self._redis: aioredis.Redis | None = None  # for health checks
        self._supervisor: asyncio.Task[None] | None = None
        self.healthy = redis_url is None
        self.reconnects = 0
        self.last_error: str | None = None

    @property
    def subscriber_count(self) -> int:
        return sum(len(boxes) for boxes in self._subscribers.values())

    @property
    def channel_count(self) -> int:
        """Channels broadcaster is subscribed to for this process (one per channel)."""
        return len(self._pumps)

    async def connect(self) -> None:
        if self.redis_url is None:
            self._broadcast = Broadcast("memory://")
            await self._broadcast.connect()
            return
        self._redis = aioredis.Redis.from_url(
            self.redis_url, socket_connect_timeout=2, socket_timeout=2
        )
        connected = asyncio.Event()
        self._supervisor = asyncio.create_task(
            self._supervise(connected), name="coinql-hub-supervisor"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), 5)  # up, or reconnecting in the background

    async def disconnect(self) -> None:
        await cancel(self._supervisor)
        await self._close_broadcast()
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
        if self._broadcast is None:
            raise ConnectionError(f"the broadcast is not connected: {self.last_error}")
        await self._broadcast.publish(channel, orjson.dumps(payload).decode())

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
            self._start_pump(channel)
        try:
            await self.listening(channels)
            while True:
                yield await mailbox.get()
        finally:
            for channel in channels:
                boxes = self._subscribers.get(channel)
                if boxes is not None:
                    boxes.discard(mailbox)
                    if not boxes:
                        del self._subscribers[channel]
                        self._stop_pump(channel)

    async def listening(self, channels: list[str], timeout: float = 5.0) -> None:
        """Return once broadcaster listens on each of `channels` (subscribed first): from then
        on nothing published on them is missed. While Redis is away, give up after `timeout`
        (the subscription starts listening when the supervisor reconnects)."""
        for channel in channels:
            self._start_pump(channel)
        waiting = {self._listening[c] for c in channels if c in self._listening}
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)

    def _start_pump(self, channel: str) -> None:
        """One broadcaster subscription for `channel` in this process, drained at once."""
        if channel in self._pumps or self._broadcast is None:
            return
        self._listening[channel] = asyncio.get_running_loop().create_future()
        self._pumps[channel] = asyncio.create_task(
            self._pump(self._broadcast, channel), name=f"coinql-hub-{channel}"
        )

    def _stop_pump(self, channel: str) -> None:
        pump = self._pumps.pop(channel, None)
        if pump is not None:
            pump.cancel()
        listening = self._listening.pop(channel, None)
        if listening is not None and not listening.done():
            listening.cancel()

    async def _pump(self, broadcast: Broadcast, channel: str) -> None:
        try:
            async with broadcast.subscribe(channel) as subscriber:
                listening = self._listening.get(channel)
                if listening is not None and not listening.done():
                    listening.set_result(None)
                async for event in subscriber:  # type: ignore[union-attr]
                    if event is not None:
                        self._deliver(channel, orjson.loads(event.message))
        except (RedisError, OSError, ConnectionError) as error:
            # The connection went: the supervisor reconnects and starts a new pump. (Leaving
            # broadcaster's subscription unsubscribes on a dead connection, which raises too.)
            log.debug("hub pump ended", channel=channel, error=str(error))

    async def _close_broadcast(self) -> None:
        pumps = list(self._pumps.values())
        for channel in list(self._pumps):
            self._stop_pump(channel)
        for pump in pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        if self._broadcast is not None:
            broadcast, self._broadcast = self._broadcast, None
            with contextlib.suppress(Exception):  # a dead listener re-raises its error here
                await broadcast.disconnect()

    def _listener_alive(self) -> bool:
        """broadcaster's Redis listener task (a private attribute of its backend): once it has
        died it never restarts, and nothing else says so."""
        backend = getattr(self._broadcast, "_backend", None)
        listener = getattr(backend, "_listener", None)
        if not isinstance(listener, asyncio.Task):
            return self._broadcast is not None  # another version: the pings still watch
        return not listener.done()

    async def _supervise(self, connected: asyncio.Event) -> None:
        """Connect, re-subscribe every channel, then watch; reconnect forever on failure."""
        assert self._redis is not None and self.redis_url is not None
        attempt = 0
        while True:
            try:
                await self._close_broadcast()
                broadcast = Broadcast(self.redis_url)
                await broadcast.connect()
                self._broadcast = broadcast
                for channel in list(self._subscribers):
                    self._start_pump(channel)
                if not self.healthy and attempt:
                    self.reconnects += 1
                    if self.on_reconnect is not None:
                        self.on_reconnect()
                    log.info("redis broadcast reconnected", reconnects=self.reconnects)
                self.healthy, self.last_error, attempt = True, None, 0
                connected.set()
                while self._listener_alive():
                    await asyncio.sleep(WATCH_SECONDS)
                    await self._redis.ping()
                raise ConnectionError("broadcaster's Redis listener stopped")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, ConnectionError) as error:
                self.healthy = False
                self.last_error = f"{type(error).__name__}: {error}"
                attempt += 1
                log.warning("redis broadcast lost its connection", error=self.last_error)
                await asyncio.sleep(
                    random.uniform(0, min(self.reconnect_cap_seconds, 0.1 * 2**attempt))
                )
