"""Candle writes: idempotent, NaN volumes stored as NULL, and PostgreSQL's COPY path."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import text
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


@pytest.mark.parametrize("count", [100, 2 * candle_store.COPY_THRESHOLD + 500])
async def test_overlapping_write_adds_only_the_new_part(
    sessions: async_sessionmaker[AsyncSession], count: int
) -> None:
    candles = minutes(count)
    async with sessions() as session, session.begin():
        saved = await market_store.save_candles(
            session,
            symbol="ETH",
            name=None,
            data_source="import",
            exchange="import",
            pair="ETH/USD",
            interval=Interval.M1,
            candles=candles.select(np.arange(count * 6 // 10)),
            now=NOW,
        )
        assert saved.market.id is not None
        added = await candle_store.write_candles(
            session,
            market_id=saved.market.id,
            interval=Interval.M1,
            candles=candles.select(np.arange(count * 4 // 10, count)),
        )
        stored = await candle_store.read_candles(
            session, market_id=saved.market.id, interval=Interval.M1
        )
    assert (saved.added, added) == (count * 6 // 10, count - count * 6 // 10)
    assert stored.close.tolist() == candles.close.tolist()


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


def every_null_pattern(count: int) -> Candles:
    """Candles whose (volume, quote volume) are both given, both NaN, or either NaN."""
    candles = minutes(count)
    rows = np.arange(count)
    volume = np.where(rows % 4 < 2, candles.volume, np.nan)
    quote = np.where(rows % 2 == 0, np.linspace(1.0, 2.0, count), np.nan)
    return Candles(
        candles.timestamps, candles.open, candles.high, candles.low, candles.close, volume, quote
    )


def decode_copy_binary(payload: bytes) -> list[tuple[object, ...]]:
    """PostgreSQL's binary COPY format read back field by field (the format's reference)."""
    assert payload[:11] == b"PGCOPY\n\xff\r\n\x00"
    flags, extension = struct.unpack(">ii", payload[11:19])
    assert (flags, extension) == (0, 0)
    offset, rows = 19, []
    kinds = [">i", None, ">q", *[">d"] * 6]
    while True:
        (fields,) = struct.unpack_from(">h", payload, offset)
        offset += 2
        if fields == -1:
            break
        assert fields == len(kinds)
        row: list[object] = []
        for kind in kinds:
            (size,) = struct.unpack_from(">i", payload, offset)
            offset += 4
            if size == -1:
                row.append(None)
                continue
            raw = payload[offset : offset + size]
            offset += size
            row.append(raw.decode() if kind is None else struct.unpack(kind, raw)[0])
        rows.append(tuple(row))
    assert offset == len(payload)
    return rows


def test_copy_binary_holds_every_row_and_null() -> None:
    candles = every_null_pattern(41)
    rows = decode_copy_binary(candle_store.copy_binary(7, Interval.M1, candles))
    expected = [
        (7, "M1", t, o, h, lo, c, None if np.isnan(v) else v, None if np.isnan(q) else q)
        for t, o, h, lo, c, v, q in zip(
            candles.timestamps.tolist(),
            candles.open.tolist(),
            candles.high.tolist(),
            candles.low.tolist(),
            candles.close.tolist(),
            candles.volume.tolist(),
            candles.quote_volume.tolist(),
            strict=True,
        )
    ]
    assert sorted(rows, key=lambda row: row[2]) == expected  # COPY keeps no order


@pytest.mark.parametrize("count", [10, candle_store.COPY_THRESHOLD + 500])
async def test_every_null_pattern_round_trips(
    sessions: async_sessionmaker[AsyncSession], count: int
) -> None:
    candles = every_null_pattern(count)
    async with sessions() as session, session.begin():
        saved = await market_store.save_candles(
            session,
            symbol="ADA",
            name=None,
            data_source="import",
            exchange="import",
            pair="ADA/USD",
            interval=Interval.M1,
            candles=candles,
            now=NOW,
        )
        assert saved.market.id is not None
        stored = await candle_store.read_candles(
            session, market_id=saved.market.id, interval=Interval.M1
        )
    assert saved.added == count
    for name in ("timestamps", "open", "high", "low", "close", "volume", "quote_volume"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(candles, name), strict=True)


async def test_duplicate_open_times_in_one_large_write_are_added_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    candles = minutes(candle_store.COPY_THRESHOLD + 500)
    twice = candles.select(np.concatenate([np.arange(len(candles)), np.arange(100)]))
    async with sessions() as session, session.begin():
        saved = await market_store.save_candles(
            session,
            symbol="XRP",
            name=None,
            data_source="import",
            exchange="import",
            pair="XRP/USD",
            interval=Interval.M1,
            candles=twice,
            now=NOW,
        )
    assert saved.added == len(candles)


async def test_a_concurrent_writer_of_the_same_candles_is_not_an_error(
    sessions: async_sessionmaker[AsyncSession], backend: Backend
) -> None:
    """The second writer saw nothing stored when it started (the first had not committed):
    on PostgreSQL its COPY straight into the table meets the first one's rows, rolls back to
    its savepoint and inserts only the rest through the staging table."""
    candles = minutes(2 * candle_store.COPY_THRESHOLD + 1_000)
    half, rest = len(candles) // 2, np.arange(len(candles) // 2 - 500, len(candles))
    async with sessions() as session, session.begin():
        saved = await market_store.save_candles(
            session,
            symbol="DOT",
            name=None,
            data_source="import",
            exchange="import",
            pair="DOT/USD",
            interval=Interval.M1,
            candles=candles.select(np.arange(0)),
            now=NOW,
        )
    assert saved.market.id is not None
    market_id = saved.market.id

    async def write(rows: np.ndarray, started: asyncio.Event | None = None) -> int:
        async with sessions() as session, session.begin():
            added = await candle_store.write_candles(
                session, market_id=market_id, interval=Interval.M1, candles=candles.select(rows)
            )
            if started is not None:
                started.set()
                await asyncio.sleep(0.2)
                while backend.name == "postgres" and not await _someone_waits(session):
                    await asyncio.sleep(0.05)
            return added

    started = asyncio.Event()
    first = asyncio.create_task(write(np.arange(half), started))
    await started.wait()
    second = await asyncio.wait_for(write(rest), timeout=60)
    assert (await first, second) == (half, len(candles) - half)
    async with sessions() as session:
        stored = await candle_store.read_candles(session, market_id=market_id, interval=Interval.M1)
    assert stored.close.tolist() == candles.close.tolist()


async def _someone_waits(session: AsyncSession) -> bool:
    """Whether another connection waits for a lock (the second writer's COPY)."""
    statement = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database() AND pid <> pg_backend_pid()"
    )
    connection = await session.connection()
    return bool((await connection.execute(statement)).scalar_one())
