"""Stand-ins with ccxt's exchange interface and CoinGecko's provider interface, returning
ccxt-shaped data. No network: what the production path gets from real exchanges, these give."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ccxt

from coinql.domain.candles import DAY_MS
from coinql.exchanges.ccxt import Backoff, ExchangeAdapter
from coinql.exchanges.coingecko import MarketCap

TIMEFRAME_MS = {"1m": 60_000, "1h": 3_600_000, "1d": DAY_MS}


def ohlcv_rows(
    start: int, count: int, step: int = DAY_MS, base: float = 100.0
) -> list[list[float]]:
    """`count` ccxt OHLCV rows [timestamp, open, high, low, close, volume] from `start`."""
    rows = []
    price = base
    for i in range(count):
        close = price * (1.01 if i % 3 else 0.985)
        rows.append(
            [
                start + i * step,
                price,
                max(price, close) * 1.01,
                min(price, close) * 0.99,
                close,
                10.0 + i,
            ]
        )
        price = close
    return rows


@dataclass
class FakeExchange:
    """`fetch_ohlcv` over stored rows: pages of at most `max_page`, each page repeating the last
    row of the previous one (as exchanges do when `since` is that row's time), `failures` raised
    first, then `script` consumed one entry per call (an exception is raised, None answers),
    `BadSymbol` for an unknown pair."""

    rows: dict[tuple[str, str], list[list[float]]]
    id: str = "fakex"
    max_page: int = 500
    failures: list[Exception] = field(default_factory=list)
    script: list[Exception | None] = field(default_factory=list)
    always_fail: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[list[float]]:
        self.calls.append(
            {"symbol": symbol, "timeframe": timeframe, "since": since, "limit": limit}
        )
        if self.always_fail is not None:
            raise self.always_fail
        if self.failures:
            raise self.failures.pop(0)
        if self.script and (fault := self.script.pop(0)) is not None:
            raise fault
        if (symbol, timeframe) not in self.rows:
            raise ccxt.BadSymbol(f"{self.id} does not have market symbol {symbol}")
        rows = sorted(self.rows[(symbol, timeframe)], key=lambda row: row[0])
        step = TIMEFRAME_MS[timeframe]
        start = (since or 0) - step  # overlap one candle with the previous page
        page = [list(row) for row in rows if row[0] >= start]
        return page[: min(limit or self.max_page, self.max_page)]

    async def fetch_tickers(self, symbols: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """The last close of each pair, as ccxt tickers."""
        self.calls.append({"fetch_tickers": symbols})
        if self.always_fail is not None:
            raise self.always_fail
        found = {}
        for (pair, timeframe), rows in self.rows.items():
            if timeframe == "1d" and (symbols is None or pair in symbols) and rows:
                last = max(rows, key=lambda row: row[0])
                found[pair] = {"symbol": pair, "last": last[4], "timestamp": int(last[0])}
        return found

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeMarketCaps:
    caps: dict[str, MarketCap]
    calls: int = 0

    async def fetch(self, symbols: list[str]) -> dict[str, MarketCap]:
        self.calls += 1
        return {symbol: self.caps[symbol] for symbol in symbols if symbol in self.caps}


class Sleeps:
    """A backoff's sleep that only records the delays it was asked to wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def adapter_for(exchange: FakeExchange, sleeps: Sleeps | None = None) -> ExchangeAdapter:
    """The adapter over a fake exchange: small pages, four attempts, no real waits."""
    return ExchangeAdapter(
        exchange, page_limit=7, backoff=Backoff(sleep=sleeps or Sleeps(), max_attempts=4)
    )
