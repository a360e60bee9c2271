"""The market feed: ticks in, prices and forming candles out, closed candles into the store.
(Risk limits are watched by coinql.realtime.risk, whatever the source.)

One feed per deployment: its leader (coinql.realtime.leader) publishes; the other replicas
stand by and one takes over when it stops (with Redis, within the lease's lifetime, 6 s).

Sources: the demo replays the synthetic market forward (a tick a second per asset, labelled
"demo"); an exchange is read with ccxt's `watch_tickers` where the client supports it, else by
polling `fetch_tickers`. Candles are the exchange's own, from `watch_ohlcv`, where it streams
them (with their volumes); otherwise they are built from the ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import Candles, Interval
from coinql.realtime import channels
from coinql.realtime.clock import Clock, epoch_ms, utc_now
from coinql.realtime.hub import Hub
from coinql.realtime.leader import Leader
from coinql.store import market as market_store

log = structlog.get_logger("coinql.feed")
LIVE_INTERVALS = (Interval.M1, Interval.M5, Interval.M15, Interval.H1)


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    price: float
    timestamp: int  # epoch ms
    volume: float = 0.0


class TickSource(Protocol):
    name: str

    @property
    def symbols(self) -> Sequence[str]:
        """What it publishes."""
        ...

    async def next(self) -> list[Tick]: ...


class DemoTicks:
    """The demo market continued: each asset's price moves by a lognormal step whose
    volatility is the asset's recent daily volatility scaled to the tick interval."""

    name = "demo"

    def __init__(
        self,
        assets: dict[str, tuple[float, float]],
        *,
        interval_seconds: float = 1.0,
        speed: float = 1.0,
        seed: int = 0,
        clock: Clock = utc_now,
    ) -> None:
        self.symbols = sorted(assets)
        self.prices = np.array([assets[s][0] for s in self.symbols], dtype=np.float64)
        daily = np.array([assets[s][1] for s in self.symbols], dtype=np.float64)
        # A tick spans `speed` times its interval of market time (an accelerated demo).
        self.sigma = daily * np.sqrt(interval_seconds * speed / 86_400)
        self.interval_seconds = interval_seconds
        self.rng = np.random.default_rng(seed)
        self.clock = clock

    async def next(self) -> list[Tick]:
        await asyncio.sleep(self.interval_seconds)
        self.prices = self.prices * np.exp(
            self.rng.standard_normal(self.prices.size) * self.sigma - self.sigma**2 / 2
        )
        now = epoch_ms(self.clock)
        volume = self.rng.exponential(1.0, self.prices.size)
        return [
            Tick(symbol, float(price), now, float(amount))
            for symbol, price, amount in zip(self.symbols, self.prices, volume, strict=True)
        ]


class ExchangeTicks:
    """Tickers from a ccxt client: streamed when it can `watch_tickers`, else polled."""

    def __init__(
        self,
        client: Any,
        symbols: Sequence[str],
        *,
        quote: str,
        poll_seconds: float,
        clock: Clock = utc_now,
    ) -> None:
        self.client = client
        self.clock = clock
        self.name = str(client.id)
        self.symbols = list(symbols)
        self.pairs = {f"{symbol}/{quote}": symbol for symbol in symbols}
        self.poll_seconds = poll_seconds
        has = getattr(client, "has", {}) or {}
        self.streaming = bool(has.get("watchTickers")) and hasattr(client, "watch_tickers")

    async def next(self) -> list[Tick]:
        if self.streaming:
            tickers = await self.client.watch_tickers(list(self.pairs))
        else:
            await asyncio.sleep(self.poll_seconds)
            tickers = await self.client.fetch_tickers(list(self.pairs))
        now = epoch_ms(self.clock)
        ticks = []
        for pair, ticker in tickers.items():
            symbol = self.pairs.get(pair)
            price = ticker.get("last") or ticker.get("close")
            if symbol is None or price is None:
                continue
            ticks.append(Tick(symbol, float(price), int(ticker.get("timestamp") or now), 0.0))
        return ticks


class ExchangeCandles:
    """The exchange's own candles of the live intervals, through ccxt's `watch_ohlcv`, for
    exchanges that stream OHLCV: real volumes, where candles built from tickers have none.

    Each (pair, interval) is watched by a task of its own. ccxt answers each call with the
    candles it holds, the forming one last; when a newer candle starts forming, the one before
    it, in its final form from the same answer, is closed."""

    def __init__(
        self,
        client: Any,
        symbols: Sequence[str],
        *,
        quote: str,
        intervals: Sequence[Interval] = LIVE_INTERVALS,
        retry_seconds: float = 1.0,
    ) -> None:
        self.client = client
        self.pairs = {f"{symbol}/{quote}": symbol for symbol in symbols}
        self.intervals = intervals
        self.retry_seconds = retry_seconds
        has = getattr(client, "has", {}) or {}
        self.streaming = bool(has.get("watchOHLCV")) and hasattr(client, "watch_ohlcv")
        self.forming_since: dict[tuple[str, Interval], int] = {}

    async def updates(self) -> AsyncIterator[tuple[str, Interval, FormingCandle, bool]]:
        """(symbol, interval, candle, closed) as the exchange reports them, until cancelled."""
        queue: asyncio.Queue[tuple[str, Interval, list[list[float]]]] = asyncio.Queue()

        async def watch(pair: str, symbol: str, interval: Interval) -> None:
            while True:
                try:
                    rows = await self.client.watch_ohlcv(pair, interval.ccxt_timeframe)
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # ccxt reconnects on the next call
                    log.warning("watch_ohlcv failed", pair=pair, error=str(error))
                    await asyncio.sleep(self.retry_seconds)
                    continue
                queue.put_nowait((symbol, interval, rows))

        watchers = [
            asyncio.create_task(watch(pair, symbol, interval), name=f"coinql-ohlcv-{pair}")
            for pair, symbol in self.pairs.items()
            for interval in self.intervals
        ]
        try:
            while True:
                symbol, interval, rows = await queue.get()
                for candle, closed in self.events(symbol, interval, rows):
                    yield symbol, interval, candle, closed
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

    def events(
        self, symbol: str, interval: Interval, rows: list[list[float]]
    ) -> list[tuple[FormingCandle, bool]]:
        """The candles one answer closes (final values), then the forming one."""
        if not rows:
            return []
        ordered = sorted(rows, key=lambda row: row[0])
        forming = ordered[-1]
        key = (symbol, interval)
        since = self.forming_since.get(key)
        if since is not None and forming[0] < since:
            return []  # an older answer arriving late
        events = [
            (FormingCandle.from_row(row), True)
            for row in ordered[:-1]
            if since is not None and since <= row[0]
        ]
        self.forming_since[key] = int(forming[0])
        events.append((FormingCandle.from_row(forming), False))
        return events


@dataclass
class FormingCandle:
    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @classmethod
    def from_row(cls, row: Sequence[float]) -> FormingCandle:
        """From a ccxt OHLCV row: [timestamp, open, high, low, close, volume]."""
        return cls(int(row[0]), *(float(value or 0.0) for value in row[1:6]))

    def payload(self, symbol: str, interval: Interval, *, closed: bool) -> dict[str, Any]:
        return {
            "symbol": symbol,
            "interval": interval.value,
            "timestamp": self.open_time,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "closed": closed,
        }


@dataclass
class CandleBuilder:
    """Forming candles per (symbol, interval); a tick in a later bucket closes the current."""

    intervals: Sequence[Interval] = LIVE_INTERVALS
    forming: dict[tuple[str, Interval], FormingCandle] = field(default_factory=dict)

    def update(self, tick: Tick) -> list[tuple[Interval, FormingCandle, bool]]:
        events = []
        for interval in self.intervals:
            bucket = int(interval.floor(np.asarray([tick.timestamp], dtype=np.int64))[0])
            key = (tick.symbol, interval)
            current = self.forming.get(key)
            if current is not None and bucket > current.open_time:
                events.append((interval, current, True))
                current = None
            if current is None or bucket < current.open_time:
                current = FormingCandle(bucket, tick.price, tick.price, tick.price, tick.price, 0.0)
                self.forming[key] = current
            current.high = max(current.high, tick.price)
            current.low = min(current.low, tick.price)
            current.close = tick.price
            current.volume += tick.volume
            events.append((interval, current, False))
        return events


class FeedService:
    """Publishes ticks and candles while it leads."""

    def __init__(
        self,
        *,
        hub: Hub,
        sessions: async_sessionmaker[AsyncSession],
        source: TickSource,
        leader: Leader,
        exchange: str,
        pair_quote: str = "USD",
        on_status: Callable[[str], None] = lambda status: None,
        on_candles: Callable[[int], None] = lambda added: None,
        candle_source: ExchangeCandles | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.hub = hub
        self.clock = clock
        # With an exchange that streams OHLCV, candles come from it; else they are built here
        # from the ticks.
        self.candle_source = candle_source if candle_source and candle_source.streaming else None
        self.leading = False
        self.on_candles = on_candles
        self.last_tick_ms: int | None = None  # the newest published tick's time: feed lag
        self.sessions = sessions
        self.source = source
        self.leader = leader
        self.exchange = exchange
        self.pair_quote = pair_quote
        self.builder = CandleBuilder()
        self.latest: dict[str, float] = {}
        self.on_status = on_status
        self._tasks: list[asyncio.Task[None]] = []
        self._step = asyncio.Lock()  # held while a batch is published and stored
        self.published = 0

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name="coinql-feed"))
        if self.candle_source is not None:
            self._tasks.append(
                asyncio.create_task(self._run_candles(self.candle_source), name="coinql-candles")
            )

    async def stop(self) -> None:
        async with self._step:  # a batch in flight lands before the feed stops
            for task in self._tasks:
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.leader.release()

    async def _run(self) -> None:
        while True:
            self.leading = await self.leader.acquire()
            if not self.leading:
                self.on_status("standby")
                await asyncio.sleep(1.0)
                continue
            self.on_status("leader")
            try:
                ticks = await self.source.next()
                async with self._step:
                    await self.publish(ticks)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad batch must not stop the feed
                log.exception("feed step failed")
                await asyncio.sleep(1.0)

    async def _run_candles(self, source: ExchangeCandles) -> None:
        """The exchange's candles, published while this feed leads; closed M1 ones stored."""
        async for symbol, interval, candle, closed in source.updates():
            if not self.leading:
                continue
            try:
                async with self._step:
                    await self.hub.publish(
                        channels.candles(symbol, interval.value),
                        candle.payload(symbol, interval, closed=closed),
                    )
                    if closed and interval is Interval.M1:
                        await self._store({symbol: [candle]})
            except Exception:  # a bad update must not stop the candles
                log.exception("candle update failed", symbol=symbol, interval=interval.value)

    async def publish(self, ticks: list[Tick]) -> None:
        closed: dict[str, list[FormingCandle]] = {}
        messages: list[tuple[str, dict[str, Any]]] = []
        for tick in ticks:
            self.latest[tick.symbol] = tick.price
            messages.append(
                (
                    channels.prices(tick.symbol),
                    {
                        "symbol": tick.symbol,
                        "price": tick.price,
                        "timestamp": tick.timestamp,
                        "source": self.source.name,
                    },
                )
            )
            built = self.builder.update(tick) if self.candle_source is None else []
            for interval, candle, is_closed in built:
                messages.append(
                    (
                        channels.candles(tick.symbol, interval.value),
                        candle.payload(tick.symbol, interval, closed=is_closed),
                    )
                )
                if is_closed and interval is Interval.M1:
                    closed.setdefault(tick.symbol, []).append(candle)
        # One wait for the whole step: awaited one at a time, each publish (a Redis round trip)
        # queued behind the loop's other work, and a leader fanning ticks out to thousands of
        # its own subscribers managed under one step a second instead of ten.
        await asyncio.gather(*(self.hub.publish(channel, body) for channel, body in messages))
        self.published += len(ticks)
        if ticks:
            self.last_tick_ms = max(self.last_tick_ms or 0, *(tick.timestamp for tick in ticks))
        if closed:
            await self._store(closed)

    async def _store(self, closed: dict[str, list[FormingCandle]]) -> None:
        """Closed M1 candles into the store, under the feed's market of each asset."""
        now = self.clock()
        added = 0
        async with self.sessions() as session, session.begin():
            for symbol, found in closed.items():
                asset = await market_store.get_asset(session, symbol=symbol)
                if asset is None:
                    continue
                candles = Candles.from_columns(
                    [c.open_time for c in found],
                    [c.open for c in found],
                    [c.high for c in found],
                    [c.low for c in found],
                    [c.close for c in found],
                    [c.volume for c in found],
                    [np.nan] * len(found),
                )
                saved = await market_store.save_candles(
                    session,
                    symbol=symbol,
                    name=None,
                    data_source=asset.data_source,
                    exchange=self.exchange,
                    pair=f"{symbol}/{self.pair_quote}",
                    interval=Interval.M1,
                    candles=candles,
                    now=now,
                )
                added += saved.added
        self.on_candles(added)
