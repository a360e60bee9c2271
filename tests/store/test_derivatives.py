"""Perpetuals: fundings and bars round trip exactly (NaN as NULL), writes are idempotent, and
coarser intervals are the last bar of each bucket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import DAY_MS, Interval
from coinql.domain.derivatives import FUNDING_PERIOD_MS, HOUR_MS, FundingRates, PerpetualBars
from coinql.store import derivatives as derivatives_store
from coinql.store import market as market_store
from coinql.store.db import create_engine, create_session_factory
from tests.conftest import Backend

NOW = datetime(2026, 1, 1, tzinfo=UTC)
START = 1_735_689_600_000  # 2025-01-01T00:00Z


@pytest.fixture
async def sessions(backend: Backend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(backend.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


def hourly_bars(count: int, seed: int = 0) -> PerpetualBars:
    rng = np.random.default_rng(seed)
    index = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, count)))
    mark = index * (1 + rng.normal(0.0003, 0.0005, count))
    open_interest = 1e9 * np.exp(rng.normal(0, 0.01, count))
    open_interest[::5] = np.nan  # fetched separately, not known for every bar
    mark[3] = np.nan
    return PerpetualBars(
        START + np.arange(count, dtype=np.int64) * HOUR_MS, open_interest, mark, index
    )


def fundings(count: int, seed: int = 1) -> FundingRates:
    rng = np.random.default_rng(seed)
    times = START + np.arange(1, count + 1, dtype=np.int64) * FUNDING_PERIOD_MS
    return FundingRates(times, rng.normal(0.0001, 0.0001, count))


async def perpetual_id(session: AsyncSession, *, contract: str = "BTC/USDT:USDT") -> int:
    asset = await market_store.upsert_asset(
        session, symbol="BTC", name="Bitcoin", data_source="binance", now=NOW
    )
    assert asset.id is not None
    perpetual = await derivatives_store.get_or_add_perpetual(
        session, asset_id=asset.id, exchange="binance", contract=contract, data_source="binance"
    )
    assert perpetual.id is not None
    return perpetual.id


def assert_same_bars(found: PerpetualBars, expected: PerpetualBars) -> None:
    np.testing.assert_array_equal(found.timestamps, expected.timestamps)
    for name in ("open_interest", "mark_price", "index_price"):
        np.testing.assert_array_equal(getattr(found, name), getattr(expected, name))


async def count_rows(session: AsyncSession, table: type) -> int:
    return int((await session.exec(select(func.count()).select_from(table))).one())


@pytest.mark.parametrize("count", [10, 40_000])  # one statement, beyond any parameter cap
async def test_bars_round_trip_and_rewriting_them_changes_nothing(
    sessions: async_sessionmaker[AsyncSession], count: int
) -> None:
    bars = hourly_bars(count)
    async with sessions() as session, session.begin():
        perpetual = await perpetual_id(session)
        added = await derivatives_store.write_bars(
            session, perpetual_id=perpetual, interval=Interval.H1, bars=bars
        )
    assert added == count
    changed = PerpetualBars(
        bars.timestamps, bars.open_interest * 2, bars.mark_price, bars.index_price
    )
    async with sessions() as session, session.begin():
        again = await derivatives_store.write_bars(
            session, perpetual_id=perpetual, interval=Interval.H1, bars=bars
        )
        different = await derivatives_store.write_bars(
            session, perpetual_id=perpetual, interval=Interval.H1, bars=changed
        )
    assert again == different == 0
    async with sessions() as session:
        found = await derivatives_store.read_bars(
            session, perpetual_id=perpetual, interval=Interval.H1, start=None, end=None
        )
        assert await count_rows(session, derivatives_store.PerpetualBar) == count
    assert_same_bars(found, bars)  # exact floats, NaN back as NaN


async def test_fundings_round_trip_and_overlapping_writes_add_only_the_new_ones(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    funding = fundings(30)
    async with sessions() as session, session.begin():
        perpetual = await perpetual_id(session)
        first = await derivatives_store.write_funding(
            session,
            perpetual_id=perpetual,
            funding=FundingRates(funding.timestamps[:20], funding.rates[:20]),
        )
        rest = await derivatives_store.write_funding(
            session, perpetual_id=perpetual, funding=funding
        )
        again = await derivatives_store.write_funding(
            session, perpetual_id=perpetual, funding=funding
        )
    assert (first, rest, again) == (20, 10, 0)
    async with sessions() as session:
        found = await derivatives_store.read_funding(
            session, perpetual_id=perpetual, start=None, end=None
        )
        window = await derivatives_store.read_funding(
            session,
            perpetual_id=perpetual,
            start=int(funding.timestamps[5]),
            end=int(funding.timestamps[9]),
        )
        nothing = await derivatives_store.read_funding(
            session, perpetual_id=perpetual + 1, start=None, end=None
        )
    np.testing.assert_array_equal(found.timestamps, funding.timestamps)
    np.testing.assert_array_equal(found.rates, funding.rates)
    np.testing.assert_array_equal(window.rates, funding.rates[5:10])  # inclusive bounds
    assert len(nothing) == 0 and found.timestamps.dtype == np.int64


async def test_a_coarser_interval_is_the_last_bar_of_each_complete_bucket(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bars = hourly_bars(24 * 3 + 5)  # three whole days and the start of a fourth
    async with sessions() as session, session.begin():
        perpetual = await perpetual_id(session)
        await derivatives_store.write_bars(
            session, perpetual_id=perpetual, interval=Interval.H1, bars=bars
        )
    async with sessions() as session:
        daily = await derivatives_store.load_bars(
            session, perpetual_id=perpetual, interval=Interval.D1, start=None, end=None
        )
        second = await derivatives_store.load_bars(
            session,
            perpetual_id=perpetual,
            interval=Interval.D1,
            start=START + DAY_MS,
            end=START + DAY_MS,
        )
        finer = await derivatives_store.load_bars(
            session, perpetual_id=perpetual, interval=Interval.M5, start=None, end=None
        )
    closing = [23, 47, 71]  # the fourth day has no closing bar yet
    np.testing.assert_array_equal(daily.timestamps, START + np.arange(3) * DAY_MS)
    np.testing.assert_array_equal(daily.index_price, bars.index_price[closing])
    np.testing.assert_array_equal(daily.open_interest, bars.open_interest[closing])
    np.testing.assert_array_equal(second.mark_price, bars.mark_price[[47]])
    assert len(finer) == 0  # nothing is made up below the stored interval


async def test_an_asset_lists_its_perpetuals_and_the_primary_is_its_sources(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        first = await perpetual_id(session, contract="BTC/USD:BTC")
        second = await perpetual_id(session, contract="BTC/USDT:USDT")
        again = await perpetual_id(session, contract="BTC/USDT:USDT")
        asset = await market_store.get_asset(session, symbol="BTC")
        assert asset is not None and asset.id is not None
        found = await derivatives_store.perpetuals_of(session, asset_ids=[asset.id, asset.id + 1])
    assert again == second
    assert [p.id for p in found[asset.id]] == [first, second] and found[asset.id + 1] == []
    primary = derivatives_store.primary_perpetual("binance", found[asset.id])
    assert primary is not None and primary.id == first
    other = derivatives_store.primary_perpetual("okx", found[asset.id])
    assert other is not None and other.id == first
    assert derivatives_store.primary_perpetual("okx", []) is None
