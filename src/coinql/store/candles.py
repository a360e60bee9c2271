"""Candles: one row per (market, interval, open time), read and written as packed arrays.

Writes are idempotent (`ON CONFLICT DO NOTHING`): writing the same candles twice adds nothing.
On PostgreSQL, large batches go through COPY into a staging table, then one INSERT ... SELECT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Column, Float, ForeignKey, String, func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import DAY_MS, Candles, Interval

COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "quote_volume")
INSERT_BATCH = 5_000
COPY_THRESHOLD = 2_000


class Candle(SQLModel, table=True):
    __tablename__ = "candles"

    market_id: int = Field(
        sa_column=Column(ForeignKey("markets.id", ondelete="CASCADE"), primary_key=True)
    )
    interval: str = Field(sa_column=Column(String(3), primary_key=True))
    open_time: int = Field(sa_column=Column(BigInteger, primary_key=True))
    open: float = Field(sa_column=Column(Float, nullable=False))
    high: float = Field(sa_column=Column(Float, nullable=False))
    low: float = Field(sa_column=Column(Float, nullable=False))
    close: float = Field(sa_column=Column(Float, nullable=False))
    volume: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    quote_volume: float | None = Field(default=None, sa_column=Column(Float, nullable=True))


def _where(market_id: int, interval: Interval, start: int | None, end: int | None) -> list[Any]:
    conditions: list[Any] = [Candle.market_id == market_id, Candle.interval == interval.value]
    if start is not None:
        conditions.append(col(Candle.open_time) >= start)
    if end is not None:
        conditions.append(col(Candle.open_time) <= end)
    return conditions


async def read_candles(
    session: AsyncSession,
    *,
    market_id: int,
    interval: Interval,
    start: int | None = None,
    end: int | None = None,
    limit: int | None = None,
) -> Candles:
    """Candles with open time in [start, end], oldest first; the newest `limit` if given."""
    columns = [getattr(Candle, name) for name in COLUMNS]
    statement = select(*columns).where(*_where(market_id, interval, start, end))
    if limit is not None:
        statement = statement.order_by(col(Candle.open_time).desc()).limit(limit)
    else:
        statement = statement.order_by(col(Candle.open_time))
    rows = (await session.exec(statement)).all()
    if not rows:
        return Candles.empty()
    if limit is not None:
        rows = rows[::-1]
    # Column by column: numpy converts a tuple of floats (None -> NaN) ~40x faster than it
    # iterates Row objects.
    columns = list(zip(*rows, strict=True))
    return Candles(
        np.array(columns[0], dtype=np.int64),
        *(np.array(column, dtype=np.float64) for column in columns[1:]),
    )


async def open_times(
    session: AsyncSession, *, market_id: int, interval: Interval, start: int | None, end: int | None
) -> Any:
    statement = (
        select(Candle.open_time)
        .where(*_where(market_id, interval, start, end))
        .order_by(col(Candle.open_time))
    )
    return np.asarray((await session.exec(statement)).all(), dtype=np.int64)


async def count_candles(
    session: AsyncSession, *, market_id: int, interval: Interval, start: int | None, end: int | None
) -> int:
    statement = (
        select(func.count()).select_from(Candle).where(*_where(market_id, interval, start, end))
    )
    return int((await session.exec(statement)).one())


async def stored_intervals(session: AsyncSession, *, market_id: int) -> set[Interval]:
    statement = select(Candle.interval).where(Candle.market_id == market_id).distinct()
    return {Interval(value) for value in (await session.exec(statement)).all()}


def _optional(value: float) -> float | None:
    return None if math.isnan(value) else value


def _rows(market_id: int, interval: Interval, candles: Candles) -> list[tuple[Any, ...]]:
    return list(
        zip(
            [market_id] * len(candles),
            [interval.value] * len(candles),
            candles.timestamps.tolist(),
            candles.open.tolist(),
            candles.high.tolist(),
            candles.low.tolist(),
            candles.close.tolist(),
            [_optional(value) for value in candles.volume.tolist()],
            [_optional(value) for value in candles.quote_volume.tolist()],
            strict=True,
        )
    )


async def write_candles(
    session: AsyncSession, *, market_id: int, interval: Interval, candles: Candles
) -> int:
    """Insert the candles that are not stored yet; returns how many were added."""
    if len(candles) == 0:
        return 0
    start, end = int(candles.timestamps.min()), int(candles.timestamps.max())
    before = await count_candles(
        session, market_id=market_id, interval=interval, start=start, end=end
    )
    rows = _rows(market_id, interval, candles)
    connection = await session.connection()
    if connection.dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
        await _copy_insert(connection, rows)
    else:
        await _batched_insert(connection, rows)
    after = await count_candles(
        session, market_id=market_id, interval=interval, start=start, end=end
    )
    return after - before


async def _batched_insert(connection: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(Candle.__table__).on_conflict_do_nothing()  # type: ignore[attr-defined]
    names = ["market_id", "interval", *COLUMNS]
    for offset in range(0, len(rows), INSERT_BATCH):
        batch = [dict(zip(names, row, strict=True)) for row in rows[offset : offset + INSERT_BATCH]]
        await connection.execute(statement, batch)


async def _copy_insert(connection: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
    """COPY into a temporary staging table, then insert what is new in one statement."""
    await connection.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS candles_staging"
            " (LIKE candles INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
    )
    await connection.execute(text("TRUNCATE candles_staging"))
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    await driver.copy_records_to_table(
        "candles_staging", records=rows, columns=["market_id", "interval", *COLUMNS]
    )
    await connection.execute(
        text("INSERT INTO candles SELECT * FROM candles_staging ON CONFLICT DO NOTHING")
    )


@dataclass(frozen=True, slots=True)
class Quote:
    open_time: int
    close: float
    change_24h: float | None
    quote_volume_24h: float | None


async def latest_quote(
    session: AsyncSession, *, market_id: int, interval: Interval
) -> Quote | None:
    """The newest candle's close, its change from 24 h earlier, and the quote volume of the
    24 h up to it (None where the candles do not say)."""
    latest = await read_candles(session, market_id=market_id, interval=interval, limit=1)
    if len(latest) == 0:
        return None
    open_time = int(latest.timestamps[0])
    day = await read_candles(
        session, market_id=market_id, interval=interval, start=open_time - DAY_MS, end=open_time
    )
    close = float(day.close[-1])
    change = float(close / day.close[0] - 1.0) if day.timestamps[0] == open_time - DAY_MS else None
    volumes = day.quote_volume[day.timestamps > open_time - DAY_MS]
    volume = float(np.nansum(volumes)) if np.isfinite(volumes).any() else None
    return Quote(open_time, close, change, volume)
