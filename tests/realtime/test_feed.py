"""The feed's parts: candle building, stored closes, exchange tickers, the leader lock, the hub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import DAY_MS, Candles, Interval
from coinql.realtime import channels
from coinql.realtime.feed import (
    CandleBuilder,
    ExchangeCandles,
    ExchangeTicks,
    FeedService,
    Tick,
)
from coinql.realtime.hub import Hub, Mailbox
from coinql.realtime.leader import LocalLeader, RedisLeader
from coinql.store import candles as candle_store
from coinql.store import market as market_store
from coinql.store.db import create_engine, create_session_factory
from tests.conftest import Backend, available_backends
from tests.fakes import FakeExchange, ohlcv_rows

MINUTE = 60_000
T0 = 1_700_000_000_000 // (60 * MINUTE) * (60 * MINUTE)  # on an hour boundary


def test_candle_builder_closes_each_interval_once() -> None:
    builder = CandleBuilder(intervals=(Interval.M1, Interval.M5))
    events = []
    for i, price in enumerate([10.0, 12.0, 9.0, 11.0]):
        events += builder.update(Tick("BTC", price, T0 + i * 20_000, 1.0))  # 0, 20, 40, 60 s
    closed = [(interval, candle) for interval, candle, is_closed in events if is_closed]
    assert [interval for interval, _ in closed] == [Interval.M1]
    _, first_minute = closed[0]
    assert (first_minute.open, first_minute.high, first_minute.low, first_minute.close) == (
        10.0,
        12.0,
        9.0,
        9.0,
    )
    assert first_minute.volume == 3.0 and first_minute.open_time == T0
    forming = builder.forming[("BTC", Interval.M5)]
    assert (forming.open, forming.close, forming.high, forming.low) == (10.0, 11.0, 12.0, 9.0)


class Script:
    """A tick source that plays a fixed script, then waits forever."""

    name = "demo"

    def __init__(self, batches: list[list[Tick]]) -> None:
        self.batches = batches

    async def next(self) -> list[Tick]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(3600)
        return []


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    """The in-memory hub (broadcaster's memory:// backend)."""
    found = Hub(None)
    await found.connect()
    yield found
    await found.disconnect()


@pytest.fixture
async def sessions(backend: Backend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(backend.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def seed_btc(sessions: async_sessionmaker[AsyncSession], *, source: str, pair: str) -> None:
    """BTC in the store (one daily candle), so that the feed has an asset to store under."""
    async with sessions() as session, session.begin():
        await market_store.save_candles(
            session,
            symbol="BTC",
            name="Bitcoin",
            data_source=source,
            exchange=source,
            pair=pair,
            interval=Interval.D1,
            candles=Candles.from_columns([0], [1.0], [1.0], [1.0], [1.0], [1.0], [None]),
            now=datetime.now(UTC),
        )


async def test_feed_publishes_and_stores_closed_minutes(
    sessions: async_sessionmaker[AsyncSession], hub: Hub
) -> None:
    await seed_btc(sessions, source="demo", pair="BTC/USD")
    received: list[dict[str, object]] = []

    async def listen() -> None:
        async for message in hub.subscribe([channels.prices("BTC")], conflate=False):
            received.append(message)

    listener = asyncio.create_task(listen())
    await hub.listening([channels.prices("BTC")])
    ticks = [[Tick("BTC", 100.0 + i, T0 + i * 30_000, 2.0)] for i in range(5)]  # 2.5 minutes
    stored: list[int] = []
    feed = FeedService(
        hub=hub,
        sessions=sessions,
        source=Script(ticks),
        leader=LocalLeader(),
        exchange="demo",
        on_candles=stored.append,
    )
    feed.start()
    for _ in range(50):
        if len(received) == 5:
            break
        await asyncio.sleep(0.02)
    await feed.stop()
    listener.cancel()
    assert [m["price"] for m in received] == [100.0, 101.0, 102.0, 103.0, 104.0]
    async with sessions() as session:
        market = await market_store.find_market(session, symbol="BTC", exchange="demo")
        assert market is not None and market.id is not None
        minutes = await candle_store.read_candles(
            session, market_id=market.id, interval=Interval.M1
        )
        asset = await market_store.get_asset(session, symbol="BTC")
    assert minutes.timestamps.tolist() == [T0, T0 + MINUTE]  # the third is still forming
    assert minutes.close.tolist() == [101.0, 103.0]
    assert asset is not None and asset.last_price == 103.0
    assert sum(stored) == 2  # what the candles-inserted metric counts
    assert feed.last_tick_ms == T0 + 4 * 30_000  # what feed lag is measured from


class CountingHub:
    """Counts the publishes in flight at once."""

    def __init__(self) -> None:
        self.in_flight = self.most_in_flight = 0
        self.channels: list[str] = []

    async def publish(self, channel: str, payload: dict[str, object]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0)  # a round trip to Redis
        self.in_flight -= 1
        self.channels.append(channel)


async def test_a_step_waits_once_for_all_its_messages(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Behind a leader's busy loop each wait is long: a step's messages (prices and forming
    candles of every asset) go out together, not one wait each."""
    hub = CountingHub()
    feed = FeedService(
        hub=hub,  # type: ignore[arg-type]
        sessions=sessions,
        source=Script([]),
        leader=LocalLeader(),
        exchange="demo",
    )
    await feed.publish([Tick("BTC", 100.0, T0, 1.0), Tick("ETH", 10.0, T0, 1.0)])
    assert channels.prices("BTC") in hub.channels and channels.prices("ETH") in hub.channels
    assert len(hub.channels) > 2  # the forming candles too
    assert hub.most_in_flight == len(hub.channels)
    assert feed.published == 2 and feed.last_tick_ms == T0


class StreamingExchange:
    """ccxt's streaming interface, answering `watch_ohlcv` from a script per (pair,
    timeframe): each entry is what ccxt holds at that moment, forming candle last."""

    id = "streamx"

    def __init__(self, answers: dict[tuple[str, str], list[list[list[float]]]]) -> None:
        self.has = {"watchOHLCV": True}
        self.answers = answers

    async def watch_ohlcv(self, pair: str, timeframe: str) -> list[list[float]]:
        script = self.answers.get((pair, timeframe))
        if not script:
            await asyncio.sleep(3600)
        assert script is not None
        await asyncio.sleep(0.01)
        return script.pop(0)


async def test_exchange_candles_come_from_watch_ohlcv(
    sessions: async_sessionmaker[AsyncSession], hub: Hub
) -> None:
    """The exchange's own minutes, volumes included: forming updates, the finished one closed
    (in its final form) when the next starts, and stored; tickers no longer build candles."""
    await seed_btc(sessions, source="streamx", pair="BTC/USDT")
    first_early = [T0, 100.0, 101.0, 99.5, 100.5, 3.0]
    first_final = [T0, 100.0, 102.0, 99.0, 101.5, 7.25]
    second = [T0 + MINUTE, 101.5, 101.6, 101.4, 101.5, 0.5]
    exchange = StreamingExchange({("BTC/USDT", "1m"): [[first_early], [first_final, second]]})
    received: list[dict[str, object]] = []

    async def listen() -> None:
        async for message in hub.subscribe([channels.candles("BTC", "M1")], conflate=False):
            received.append(message)

    listener = asyncio.create_task(listen())
    await hub.listening([channels.candles("BTC", "M1")])
    stored: list[int] = []
    feed = FeedService(
        hub=hub,
        sessions=sessions,
        source=Script([[Tick("BTC", 101.0, T0 + 1_000)]]),
        leader=LocalLeader(),
        exchange="streamx",
        pair_quote="USDT",
        on_candles=stored.append,
        candle_source=ExchangeCandles(exchange, ["BTC"], quote="USDT"),
    )
    feed.start()
    for _ in range(100):
        if len(received) == 3:
            break
        await asyncio.sleep(0.02)
    await feed.stop()
    listener.cancel()
    assert [(m["timestamp"], m["volume"], m["closed"]) for m in received] == [
        (T0, 3.0, False),
        (T0, 7.25, True),
        (T0 + MINUTE, 0.5, False),
    ]
    async with sessions() as session:
        market = await market_store.find_market(session, symbol="BTC", exchange="streamx")
        assert market is not None and market.id is not None
        minutes = await candle_store.read_candles(
            session, market_id=market.id, interval=Interval.M1
        )
    assert minutes.timestamps.tolist() == [T0] and minutes.volume.tolist() == [7.25]
    assert minutes.high.tolist() == [102.0] and sum(stored) == 1


def test_a_late_ohlcv_answer_changes_nothing() -> None:
    source = ExchangeCandles(StreamingExchange({}), ["BTC"], quote="USDT")
    newer = [[T0 + MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0]]
    assert [closed for _, closed in source.events("BTC", Interval.M1, newer)] == [False]
    assert source.events("BTC", Interval.M1, [[T0, 1.0, 1.0, 1.0, 1.0, 1.0]]) == []


async def test_exchange_ticks_poll_fetch_tickers() -> None:
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    exchange = FakeExchange({("BTC/USDT", "1d"): ohlcv_rows(today - 5 * DAY_MS, 5)})
    source = ExchangeTicks(exchange, ["BTC"], quote="USDT", poll_seconds=0.01)
    assert not source.streaming
    (tick,) = await source.next()
    assert tick.symbol == "BTC" and tick.price == ohlcv_rows(today - 5 * DAY_MS, 5)[-1][4]
    assert source.name == "fakex"


async def test_mailboxes_conflate_or_keep_everything() -> None:
    fast = Mailbox(conflate=True, capacity=3)
    safe = Mailbox(conflate=False)
    for i in range(10):
        fast.put({"i": i})
        safe.put({"i": i})
    assert [(await fast.get())["i"] for _ in range(3)] == [7, 8, 9]  # the latest, no backlog
    assert fast.dropped == 7
    assert [(await safe.get())["i"] for _ in range(10)] == list(range(10))


async def test_unsubscribing_leaves_nothing_behind(hub: Hub) -> None:
    names = [channels.prices("BTC"), channels.prices("ETH")]
    stream = hub.subscribe(names, conflate=True)
    waiting = asyncio.ensure_future(stream.__anext__())
    await hub.listening(names)
    assert hub.subscriber_count == 2 and hub.channel_count == 2
    await hub.publish(channels.prices("ETH"), {"p": 1})
    assert await waiting == {"p": 1}
    await stream.aclose()
    assert hub.subscriber_count == 0 and hub.channel_count == 0


REDIS = [name for name in available_backends() if name == "postgres"]


@pytest.mark.parametrize("backend", REDIS, indirect=True)
async def test_a_standby_takes_over_within_ten_seconds(backend: Backend) -> None:
    assert backend.redis_url is not None
    first = RedisLeader(backend.redis_url, key="coinql:test:leader", ttl_ms=3_000)
    second = RedisLeader(backend.redis_url, key="coinql:test:leader", ttl_ms=3_000)
    try:
        assert await first.acquire()
        assert not await second.acquire()
        assert await first.acquire()  # renews
        started = time.monotonic()  # the first dies: it stops renewing
        while not await second.acquire():
            await asyncio.sleep(0.2)
        assert time.monotonic() - started < 10
    finally:
        await first.release()
        await second.release()


@pytest.mark.parametrize("backend", REDIS, indirect=True)
async def test_redis_hub_delivers_across_hubs(backend: Backend) -> None:
    publisher, subscriber = Hub(backend.redis_url), Hub(backend.redis_url)
    await publisher.connect()
    await subscriber.connect()
    try:
        stream = subscriber.subscribe([channels.job("x")], conflate=False)
        waiting = asyncio.ensure_future(stream.__anext__())
        await subscriber.listening([channels.job("x")])  # broadcaster has subscribed in Redis
        await publisher.publish(channels.job("x"), {"status": "RUNNING"})
        assert await asyncio.wait_for(waiting, 5) == {"status": "RUNNING"}
        await stream.aclose()
        assert subscriber.reconnects == 0 and subscriber.healthy
    finally:
        await publisher.disconnect()
        await subscriber.disconnect()
