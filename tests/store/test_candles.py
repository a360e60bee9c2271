"""Candle writes: idempotent, NaN volumes stored as NULL, and PostgreSQL's COPY path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import Candles, Interval
from coinql.store import candles as candle_store
from coinql.store import market as market_store
from coinql.store.db import create_engine, create_session_factory
from tests.conftest import Backend

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def sessions(backend: Backend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(backend.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


def minutes(count: int, seed: int = 0) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, count)))
    volume = rng.random(count)
    volume[::7] = np.nan
    return Candles(
        np.arange(count, dtype=np.int64) * 60_000,
        close,
        close * 1.001,
        close * 0.999,
        close,
        volume,
        np.full(count, np.nan),
    )


@pytest.mark.parametrize("count", [10, candle_store.COPY_THRESHOLD + 500])
async def test_write_is_idempotent_and_exact(
    sessions: async_sessionmaker[AsyncSession], count: int
) -> None:
    candles = minutes(count)
    async with sessions() as session, session.begin():
        saved = await market_store.save_candles(
            session,
            symbol="BTC",
            name="Bitcoin",
            data_source="import",
            exchange="import",
            pair="BTC/USD",
            interval=Interval.M1,
            candles=candles,
            now=NOW,
        )
        assert saved.added == count
    async with sessions() as session, session.begin():
        assert saved.market.id is not None
        again = await candle_store.write_candles(
            session, market_id=saved.market.id, interval=Interval.M1, candles=candles
        )
        assert again == 0
        stored = await candle_store.read_candles(
            session, market_id=saved.market.id, interval=Interval.M1
        )
    np.testing.assert_array_equal(stored.timestamps, candles.timestamps)
    assert stored.close.tolist() == candles.close.tolist()  # bit for bit
    np.testing.assert_array_equal(np.isnan(stored.volume), np.isnan(candles.volume))
    assert np.isnan(stored.quote_volume).all()


async def test_overlapping_write_adds_only_the_new_part(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    candles = minutes(100)
    async with sessions() as session, session.begin():
        saved = await market_store.save_candles(
            session,
            symbol="ETH",
            name=None,
            data_source="import",
            exchange="import",
            pair="ETH/USD",
            interval=Interval.M1,
            candles=candles.select(np.arange(60)),
            now=NOW,
        )
        assert saved.market.id is not None
        added = await candle_store.write_candles(
            session,
            market_id=saved.market.id,
            interval=Interval.M1,
            candles=candles.select(np.arange(40, 100)),
        )
    assert (saved.added, added) == (60, 40)


async def test_a_failed_transaction_writes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await market_store.save_candles(
                session,
                symbol="LTC",
                name=None,
                data_source="import",
                exchange="import",
                pair="LTC/USD",
                interval=Interval.M1,
                candles=minutes(50),
                now=NOW,
            )
            raise RuntimeError("a later step failed")
    async with sessions() as session:
        assert await market_store.get_asset(session, symbol="LTC") is None
