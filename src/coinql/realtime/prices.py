"""The latest price of each asset, one view for queries and subscriptions alike.

Every process listens to the feed's price channels on the broadcast (in memory, or through
Redis from whichever replica leads the feed), so `Asset.lastPrice`, a portfolio's `value` and
the `prices` and `portfolioValue` streams all read the same tick. The store keeps the newest
candle's close (the feed writes closed minute candles, so it trails by at most a minute): a
process that has heard no tick yet, or a server without a feed, answers from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from coinql.realtime import channels
from coinql.realtime.hub import Hub
from coinql.realtime.tasks import cancel
from coinql.store import market as market_store


@dataclass(frozen=True, slots=True)
class Quote:
    price: float
    timestamp: int  # epoch ms


class LatestPrices:
    """This process's newest tick per symbol, fed by the broadcast."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._quotes: dict[str, Quote] = {}
        self._listener: asyncio.Task[None] | None = None
        self._moved = asyncio.Event()

    async def start(self, symbols: Sequence[str]) -> None:
        """Listen to the price channels of `symbols` (the feed's) from now on."""
        names = [channels.prices(symbol) for symbol in symbols]
        if not names:
            return
        self._listener = asyncio.create_task(self._listen(names), name="coinql-latest-prices")
        await self._hub.listening(names)

    async def stop(self) -> None:
        await cancel(self._listener)

    async def _listen(self, names: list[str]) -> None:
        async for tick in self._hub.subscribe(names, conflate=True, capacity=len(names) * 4):
            self.record(str(tick["symbol"]), float(tick["price"]), int(tick["timestamp"]))

    def record(self, symbol: str, price: float, timestamp: int) -> None:
        known = self._quotes.get(symbol)
        if known is None or timestamp >= known.timestamp:
            self._quotes[symbol] = Quote(price, timestamp)
            self._moved.set()

    async def moved(self, *, timeout: float) -> bool:
        """Wait until a price moves (True), at most `timeout` seconds (False)."""
        self._moved.clear()
        try:
            await asyncio.wait_for(self._moved.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def snapshot(self) -> dict[str, float]:
        """Every symbol's live price now."""
        return {symbol: quote.price for symbol, quote in self._quotes.items()}

    def get(self, symbol: str) -> Quote | None:
        return self._quotes.get(symbol)

    def apply(self, asset: market_store.Asset) -> market_store.Asset:
        """`asset` with the newest of its stored and its live price. Rows are read-only here
        (their sessions are closed), so a copy carries the live price, never the row."""
        quote = self._quotes.get(asset.symbol)
        if quote is None or (
            asset.last_price_at is not None and asset.last_price_at > quote.timestamp
        ):
            return asset
        return asset.model_copy(
            update={"last_price": quote.price, "last_price_at": quote.timestamp}
        )
