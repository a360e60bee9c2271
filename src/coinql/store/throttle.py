"""Sliding windows, in memory on one process or in Redis across many.

Login throttling counts attempts per account and per client address: an attempt is reserved
in every window it counts in, all or none and in one step (a Lua script in Redis; no await
between check and count in memory), before the password is verified, so no interleaving of
batches, aliases or replicas verifies more than the limit. Once `limit` attempts fall inside
the last `window` seconds, further ones are refused until the oldest leaves the window, and the
caller is told how long that is. An attempt that succeeds is released again.

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
    async def reserve(
        self, limits: Sequence[tuple[str, int]], *, window: float
    ) -> tuple[str | None, float]:
        """Count one attempt now in each (key, limit per `window` seconds), all or none: the
        attempt's id and 0, or, when any key is at its limit, None and the seconds until it
        may try again (nothing counted)."""
        ...

    async def release(self, keys: Sequence[str], attempt: str) -> None:
        """Take back a reserved attempt from `keys` (it did not fail)."""
        ...

    async def clear(self, key: str) -> None:
        """Forget every attempt of `key` (after it succeeds)."""
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
        self._attempts: dict[str, deque[tuple[float, str]]] = {}
        self._spent: dict[tuple[str, int], float] = {}

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    def _live(self, key: str, window: float) -> deque[tuple[float, str]]:
        attempts = self._attempts.get(key)
        if attempts is None:
            return deque()
        cutoff = self._now() - window
        while attempts and attempts[0][0] <= cutoff:
            attempts.popleft()
        if not attempts:
            del self._attempts[key]
        return attempts

    async def reserve(
        self, limits: Sequence[tuple[str, int]], *, window: float
    ) -> tuple[str | None, float]:
        now = self._now()  # no await until every key is counted: atomic on the loop
        waits = [
            attempts[-limit][0] + window - now
            for key, limit in limits
            if len(attempts := self._live(key, window)) >= limit
        ]
        if waits:
            return None, max(waits)
        attempt = uuid.uuid4().hex
        for key, _ in limits:
            self._attempts.setdefault(key, deque()).append((now, attempt))
        return attempt, 0.0

    async def release(self, keys: Sequence[str], attempt: str) -> None:
        for key in keys:
            attempts = self._attempts.get(key)
            if attempts is not None:
                kept = deque(entry for entry in attempts if entry[1] != attempt)
                if kept:
                    self._attempts[key] = kept
                else:
                    del self._attempts[key]

    async def clear(self, key: str) -> None:
        self._attempts.pop(key, None)

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
        self._attempts.clear()
        self._spent.clear()


class RedisThrottle:
    """A sorted set per key, scored by time in milliseconds and expiring with its window."""

    def __init__(self, redis_url: str, *, prefix: str = "coinql:throttle:") -> None:
        self._redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
        self._prefix = prefix

    # Check every key's window, then count the attempt in all, in one step of the Redis server.
    # KEYS: the sorted sets; ARGV: now (ms), window (ms), the attempt's id, then each limit.
    # Returns -1 when counted, else the milliseconds until the last key at its limit frees.
    RESERVE = """
    local now, window, attempt = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
    local wait = -1
    for i, key in ipairs(KEYS) do
        redis.call('zremrangebyscore', key, 0, now - window)
        local limit = tonumber(ARGV[3 + i])
        if redis.call('zcard', key) >= limit then
            local edge = redis.call('zrange', key, -limit, -limit, 'WITHSCORES')
            wait = math.max(wait, tonumber(edge[2]) + window - now)
        end
    end
    if wait >= 0 then
        return tostring(wait)
    end
    for _, key in ipairs(KEYS) do
        redis.call('zadd', key, now, attempt)
        redis.call('pexpire', key, math.ceil(window) + 1)
    end
    return '-1'
    """

    async def reserve(
        self, limits: Sequence[tuple[str, int]], *, window: float
    ) -> tuple[str | None, float]:
        attempt = uuid.uuid4().hex
        keys = [self._prefix + key for key, _ in limits]
        arguments = [time.time() * 1000, window * 1000, attempt, *(limit for _, limit in limits)]
        wait_ms = float(await self._redis.eval(self.RESERVE, len(keys), *keys, *arguments))
        return (attempt, 0.0) if wait_ms < 0 else (None, wait_ms / 1000)

    async def release(self, keys: Sequence[str], attempt: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.zrem(self._prefix + key, attempt)
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

    async def reserve(
        self, limits: Sequence[tuple[str, int]], *, window: float
    ) -> tuple[str | None, float]:
        found: tuple[str | None, float] = await self._call("reserve", limits, window=window)
        return found

    async def release(self, keys: Sequence[str], attempt: str) -> None:
        await self._call("release", keys, attempt)

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
