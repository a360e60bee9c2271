"""Sliding windows, in memory on one process or in Redis across many.

Login throttling counts failures per account and per client address: once `limit` failures
fall inside the last `window` seconds, further attempts are refused until the oldest of them
leaves the window, and the caller is told how long that is.

Request budgets spend query cost per user and per address with a sliding-window counter (the
previous fixed window weighted by how much of it still overlaps, plus the current one), which
needs two counters per key instead of one entry per request.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog

log = structlog.get_logger("coinql.throttle")


class Throttle(Protocol):
    async def retry_after(self, key: str, *, limit: int, window: float) -> float | None:
        """Seconds until `key` may try again, or None when it is under its limit."""
        ...

    async def record(self, key: str, *, window: float) -> None:
        """Count one failure of `key` now."""
        ...

    async def clear(self, key: str) -> None:
        """Forget `key`'s failures (after it succeeds)."""
        ...

    async def spend(
        self, budgets: Sequence[tuple[str, int]], amount: int, *, window: float
    ) -> tuple[str, float] | None:
        """Spend `amount` from each (key, limit per `window` seconds) budget, all or none: when
        any would go over, spend nothing and return that key and the seconds until the current
        window ends."""
        ...

    async def close(self) -> None: ...


def _estimate(previous: float, current: float, elapsed: float, window: float) -> float:
    return previous * (1.0 - elapsed / window) + current


class MemoryThrottle:
    """One process's windows; keys whose failures have all expired are dropped as it goes."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._spent: dict[tuple[str, int], float] = {}

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    def _live(self, key: str, window: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        cutoff = self._now() - window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    async def retry_after(self, key: str, *, limit: int, window: float) -> float | None:
        failures = self._live(key, window)
        if len(failures) < limit:
            return None
        return failures[-limit] + window - self._now()

    async def record(self, key: str, *, window: float) -> None:
        self._live(key, window)
        self._failures.setdefault(key, deque()).append(self._now())

    async def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    async def spend(
        self, budgets: Sequence[tuple[str, int]], amount: int, *, window: float
    ) -> tuple[str, float] | None:
        index, elapsed = divmod(self._now(), window)
        window_index = int(index)
        for key, limit in budgets:  # no await until all are spent: atomic on the loop
            current = self._spent.get((key, window_index), 0.0)
            previous = self._spent.get((key, window_index - 1), 0.0)
            if _estimate(previous, current, elapsed, window) + amount > limit:
                return key, window - elapsed
        if len(self._spent) > 100_000:  # drop windows that no longer count
            self._spent = {k: v for k, v in self._spent.items() if k[1] >= window_index - 1}
        for key, _ in budgets:
            self._spent[(key, window_index)] = self._spent.get((key, window_index), 0.0) + amount
        return None

    async def close(self) -> None:
        self._failures.clear()
        self._spent.clear()


class RedisThrottle:
    """A sorted set per key, scored by time in milliseconds and expiring with its window."""

    def __init__(self, redis_url: str, *, prefix: str = "coinql:throttle:") -> None:
        self._redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
        self._prefix = prefix

    async def retry_after(self, key: str, *, limit: int, window: float) -> float | None:
        name = self._prefix + key
        now_ms = time.time() * 1000
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, 0, now_ms - window * 1000)
            pipe.zrange(name, -limit, -limit, withscores=True)
            _, edge = await pipe.execute()
        if not edge:
            return None
        return (float(edge[0][1]) + window * 1000 - now_ms) / 1000

    async def record(self, key: str, *, window: float) -> None:
        name = self._prefix + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(name, {uuid.uuid4().hex: time.time() * 1000})
            pipe.pexpire(name, int(window * 1000) + 1)
            await pipe.execute()

    async def clear(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    # Check every budget, then spend from all, in one step of the Redis server: replicas
    # spending at once cannot both slip under a limit. KEYS: previous and current window of
    # each budget; ARGV: amount, elapsed, window, expiry, then each budget's limit. Returns the
    # 1-based index of the budget that refuses, or 0 when all were spent.
    SPEND = """
    local amount, elapsed, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
    for i = 1, #KEYS / 2 do
        local previous = tonumber(redis.call('get', KEYS[2 * i - 1]) or '0')
        local current = tonumber(redis.call('get', KEYS[2 * i]) or '0')
        if previous * (1 - elapsed / window) + current + amount > tonumber(ARGV[4 + i]) then
            return i
        end
    end
    for i = 1, #KEYS / 2 do
        redis.call('incrby', KEYS[2 * i], amount)
        redis.call('expire', KEYS[2 * i], tonumber(ARGV[4]))
    end
    return 0
    """

    async def spend(
        self, budgets: Sequence[tuple[str, int]], amount: int, *, window: float
    ) -> tuple[str, float] | None:
        index, elapsed = divmod(time.time(), window)
        keys = [
            f"{self._prefix}budget:{key}:{int(index) + offset}"
            for key, _ in budgets
            for offset in (-1, 0)
        ]
        arguments = [amount, elapsed, window, int(2 * window) + 1, *(limit for _, limit in budgets)]
        refused = int(await self._redis.eval(self.SPEND, len(keys), *keys, *arguments))
        return (budgets[refused - 1][0], window - elapsed) if refused else None

    async def close(self) -> None:
        await self._redis.aclose()


class FallbackThrottle:
    """Redis while it answers, this process's memory while it does not: a Redis outage keeps
    requests flowing and still limited (per process instead of across replicas)."""

    def __init__(self, primary: Throttle, fallback: Throttle | None = None) -> None:
        self.primary = primary
        self.fallback = fallback or MemoryThrottle()
        self.degraded = False

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await getattr(self.primary, method)(*args, **kwargs)
        except (OSError, aioredis.RedisError) as error:
            if not self.degraded:
                log.warning("throttle falls back to memory: Redis is unavailable", error=str(error))
            self.degraded = True
            return await getattr(self.fallback, method)(*args, **kwargs)
        if self.degraded:
            log.info("throttle back on Redis")
            self.degraded = False
        return result

    async def retry_after(self, key: str, *, limit: int, window: float) -> float | None:
        found: float | None = await self._call("retry_after", key, limit=limit, window=window)
        return found

    async def record(self, key: str, *, window: float) -> None:
        await self._call("record", key, window=window)

    async def clear(self, key: str) -> None:
        await self._call("clear", key)

    async def spend(
        self, budgets: Sequence[tuple[str, int]], amount: int, *, window: float
    ) -> tuple[str, float] | None:
        found: tuple[str, float] | None = await self._call("spend", budgets, amount, window=window)
        return found

    async def close(self) -> None:
        await self.primary.close()
        await self.fallback.close()


def create_throttle(redis_url: str | None) -> Throttle:
    return FallbackThrottle(RedisThrottle(redis_url)) if redis_url else MemoryThrottle()
