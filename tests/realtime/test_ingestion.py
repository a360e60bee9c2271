"""Ingestion through an object with ccxt's interface: idempotent passes, a gap, the scheduler's
bookkeeping and its leader lock."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import DAY_MS, Interval
from coinql.realtime.ingestion import IngestionScheduler, backfill, ingest
from coinql.realtime.leader import DatabaseLeader
from coinql.store import candles as candle_store
from coinql.store import ingestion as ingestion_store
from coinql.store import market as market_store
from coinql.store.db import create_engine, create_session_factory
from tests.conftest import Backend
from tests.fakes import TODAY, FakeExchange, adapter_for, ohlcv_rows

START = TODAY - 30 * DAY_MS  # 30 closed daily candles: START .. TODAY - 1 day


@pytest.fixture
async def sessions(backend: Backend) -> async_sessionmaker[AsyncSession]:
    engine = create_engine(backend.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def test_ingestion_is_idempotent(sessions: async_sessionmaker[AsyncSession]) -> None:
    exchange = FakeExchange({("BTC/USDT", "1d"): ohlcv_rows(START, 30)})
    adapter = adapter_for(exchange)
    first = await ingest(sessions, adapter, symbol="BTC", interval=Interval.D1, since=START)
    again = await ingest(sessions, adapter, symbol="BTC", interval=Interval.D1, since=START)
    assert (first, again) == (30, 0)
    async with sessions() as session:
        asset = await market_store.get_asset(session, symbol="BTC")
        assert asset is not None and asset.data_source == "fakex"
        assert asset.last_price == ohlcv_rows(START, 30)[-1][4]


async def test_gap_found_then_backfilled(sessions: async_sessionmaker[AsyncSession]) -> None:
    rows = ohlcv_rows(START, 30)
    outage = [row for row in rows if row[0] not in (START + 10 * DAY_MS, START + 11 * DAY_MS)]
    exchange = FakeExchange({("BTC/USDT", "1d"): outage})
    adapter = adapter_for(exchange)
    await ingest(sessions, adapter, symbol="BTC", interval=Interval.D1, since=START)
    end = START + 29 * DAY_MS

    # While the exchange still lacks the two days, backfill finds the gap and cannot fix it.
    report = await backfill(
        sessions, adapter, symbol="BTC", interval=Interval.D1, start=START, end=end
    )
    assert (report.gaps_found, report.gaps_fixed, report.candles_added) == (1, 0, 0)

    exchange.rows[("BTC/USDT", "1d")] = rows  # the exchange has them now
    heard: list[tuple[int, int, int]] = []
    report = await backfill(
        sessions,
        adapter,
        symbol="BTC",
        interval=Interval.D1,
        start=START,
        end=end,
        progress=lambda *step: heard.append(step),
    )
    assert (report.gaps_found, report.gaps_fixed, report.candles_added) == (1, 1, 2)
    assert heard == [(0, 1, 0), (1, 1, 2)]  # the CLI shows these as it goes
    async with sessions() as session:
        market = await market_store.find_market(session, symbol="BTC", exchange="fakex")
        assert market is not None and market.id is not None
        stored = await candle_store.read_candles(session, market_id=market.id, interval=Interval.D1)
    assert stored.close.tolist() == [row[4] for row in rows]


async def test_scheduler_records_success_and_failure(
    backend: Backend, sessions: async_sessionmaker[AsyncSession]
) -> None:
    exchange = FakeExchange({("BTC/USDT", "1d"): ohlcv_rows(START, 30)}, failures=[])
    engine = create_engine(backend.database_url)
    scheduler = IngestionScheduler(
        leader=DatabaseLeader(engine),
        sessions=sessions,
        adapter=adapter_for(exchange),
        symbols=["BTC", "ETH"],  # ETH is not listed: BadSymbol, recorded as a failure
        intervals=[Interval.D1],
        history_days=40,
    )
    await scheduler.run_once()
    await scheduler.run_once()
    async with sessions() as session:
        states = {state.symbol: state for state in await ingestion_store.list_states(session)}
    assert states["BTC"].consecutive_failures == 0 and states["BTC"].candles_added == 30
    assert states["BTC"].last_success_at is not None
    assert states["ETH"].consecutive_failures == 2
    assert states["ETH"].last_error is not None and "BadSymbol" in states["ETH"].last_error
    await engine.dispose()


async def test_only_one_process_holds_the_leader_lock(backend: Backend) -> None:
    first_engine, second_engine = (
        create_engine(backend.database_url),
        create_engine(backend.database_url),
    )
    first = DatabaseLeader(first_engine)
    second = DatabaseLeader(second_engine)
    try:
        assert await first.acquire()
        assert not await second.acquire()
        await first.release()
        assert await second.acquire()
    finally:
        await first.release()
        await second.release()
        await first_engine.dispose()
        await second_engine.dispose()
