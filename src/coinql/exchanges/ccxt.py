"""Market data from exchanges through ccxt's async API.

`ExchangeAdapter` pages through `fetch_ohlcv`, lets ccxt's own rate limiter pace the requests,
and retries network failures (`NetworkError`, which covers `RateLimitExceeded`,
`ExchangeNotAvailable` and `RequestTimeout`) with exponential backoff and jitter. A bad symbol
is not retried. Only closed candles are returned: the forming one is still changing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import ccxt
import numpy as np
import structlog

from coinql.domain.candles import Candles, Interval

log = structlog.get_logger("coinql.exchange")
T = TypeVar("T")
RETRYABLE = (ccxt.NetworkError,)  # RateLimitExceeded, ExchangeNotAvailable, RequestTimeout, ...


class ExchangeClient(Protocol):
    """The part of a ccxt async exchange that coinql uses."""

    id: str

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[list[float]]: ...

    async def close(self) -> None: ...


def create_exchange(exchange_id: str) -> ExchangeClient:
    """A real ccxt async client with its rate limiter on."""
    import ccxt.async_support as ccxt_async

    exchange_class = getattr(ccxt_async, exchange_id, None)
    if exchange_class is None:
        raise ValueError(f"ccxt has no exchange {exchange_id!r}")
    client: ExchangeClient = exchange_class({"enableRateLimit": True})
    return client


@dataclass
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2^n))."""

    base_seconds: float = 1.0
    cap_seconds: float = 60.0
    max_attempts: int = 6
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = random.Random()  # noqa: RUF009 - one shared generator is fine here

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))


async def retrying(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    on_retry: Callable[[Exception, int, float], None],
) -> T:
    """Await `call`, again after a backoff delay while it raises a `RETRYABLE` error (rate
    limits, an unavailable exchange, timeouts), up to `backoff.max_attempts` in all; each
    retry is reported as (error, attempt, delay) first."""
    for attempt in range(backoff.max_attempts):
        try:
            return await call()
        except RETRYABLE as error:
            if attempt + 1 >= backoff.max_attempts:
                raise
            delay = backoff.delay(attempt)
            on_retry(error, attempt + 1, delay)
            await backoff.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class ExchangeAdapter:
    def __init__(
        self,
        client: ExchangeClient,
        *,
        quote: str = "USDT",
        page_limit: int = 1000,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.quote = quote
        self.page_limit = page_limit
        self.backoff = backoff or Backoff()
        self.clock = clock

    @property
    def exchange_id(self) -> str:
        return str(self.client.id)

    def pair(self, symbol: str) -> str:
        return f"{symbol.upper()}/{self.quote}"

    async def _retrying(self, call: Callable[[], Awaitable[T]], *, what: str) -> T:
        def report(error: Exception, attempt: int, delay: float) -> None:
            log.warning(
                "exchange retry",
                exchange=self.exchange_id,
                what=what,
                error=f"{type(error).__name__}: {error}",
                attempt=attempt,
                delay_s=round(delay, 2),
            )

        return await retrying(call, self.backoff, on_retry=report)

    async def fetch_candles(
        self, symbol: str, interval: Interval, *, since: int, until: int | None = None
    ) -> Candles:
        """Closed candles with open time in [since, until], oldest first, without duplicates."""
        step = interval.milliseconds
        now_ms = int(self.clock() * 1000)
        last_closed = int(interval.floor(np.asarray([now_ms], dtype=np.int64))[0]) - step
        until = last_closed if until is None else min(until, last_closed)
        pair = self.pair(symbol)
        rows: list[list[float]] = []
        cursor = since
        while cursor <= until:
            page = await self._retrying(
                partial(
                    self.client.fetch_ohlcv,
                    pair,
                    interval.ccxt_timeframe,
                    since=cursor,
                    limit=self.page_limit,
                ),
                what=f"fetch_ohlcv {pair} {interval.value} since {cursor}",
            )
            if not page:
                break
            rows.extend(page)
            newest = int(max(row[0] for row in page))
            if newest < cursor:
                break  # the exchange has nothing newer
            cursor = newest + step
        return _to_candles(rows, since=since, until=until)


def _to_candles(rows: list[list[float]], *, since: int, until: int) -> Candles:
    if not rows:
        return Candles.empty()
    table = np.array(
        [row[:6] for row in rows], dtype=np.float64
    )  # [timestamp, open, high, low, close, volume]
    timestamps = table[:, 0].astype(np.int64)
    # Keep the last copy of each timestamp (pages may overlap), in time order.
    order = np.argsort(timestamps, kind="stable")
    timestamps, table = timestamps[order], table[order]
    last_copy = np.append(timestamps[1:] != timestamps[:-1], True)
    keep = last_copy & (timestamps >= since) & (timestamps <= until)
    table, timestamps = table[keep], timestamps[keep]
    return Candles(
        timestamps,
        table[:, 1],
        table[:, 2],
        table[:, 3],
        table[:, 4],
        table[:, 5],
        np.full(timestamps.shape[0], np.nan),  # ccxt's OHLCV carries base volume only
    )
