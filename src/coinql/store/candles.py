"""Candles: one row per (market, interval, open time), read and written as packed arrays.

Writes are idempotent (`ON CONFLICT DO NOTHING`): writing the same candles twice adds nothing.
On PostgreSQL, large batches go through binary COPY (`copy_binary`): straight into the table
when nothing stored can conflict, else into a staging table, then one INSERT ... SELECT. On
SQLite, one executemany of plain tuples on the driver's connection.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Column, Float, ForeignKey, String, func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import DAY_MS, Candles, Interval

COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "quote_volume")
INSERT_BATCH = 5_000
COPY_THRESHOLD = 2_000
UNIQUE_VIOLATION = "23505"


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


def nullable(values: Any) -> list[float | None]:
    """The values as Python floats, None where NaN (stored as NULL)."""
    cells = values.astype(object)
    cells[np.isnan(values)] = None
    result: list[float | None] = cells.tolist()
    return result


def _rows(market_id: int, interval: Interval, candles: Candles) -> Iterator[tuple[Any, ...]]:
    """The candles as rows of `candles`, lazily (sqlite3 takes them in the driver's thread)."""
    return iter(
        zip(
            itertools.repeat(market_id, len(candles)),
            itertools.repeat(interval.value, len(candles)),
            candles.timestamps.tolist(),
            candles.open.tolist(),
            candles.high.tolist(),
            candles.low.tolist(),
            candles.close.tolist(),
            nullable(candles.volume),
            nullable(candles.quote_volume),
            strict=True,
        )
    )


async def write_candles(
    session: AsyncSession, *, market_id: int, interval: Interval, candles: Candles
) -> int:
    """Insert the candles that are not stored yet; returns how many were added."""
    if len(candles) == 0:
        return 0
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        return await sqlite_insert(connection, _SQLITE_INSERT, _rows(market_id, interval, candles))
    if len(candles) >= COPY_THRESHOLD:
        return await _copy_insert(session, market_id, interval, candles)
    start, end = int(candles.timestamps.min()), int(candles.timestamps.max())
    before = await count_candles(
        session, market_id=market_id, interval=interval, start=start, end=end
    )
    await _batched_insert(connection, list(_rows(market_id, interval, candles)))
    after = await count_candles(
        session, market_id=market_id, interval=interval, start=start, end=end
    )
    return after - before


_SQLITE_INSERT = (
    f"INSERT INTO candles (market_id, interval, {', '.join(COLUMNS)})"
    f" VALUES ({', '.join('?' * (len(COLUMNS) + 2))}) ON CONFLICT DO NOTHING"
)


async def sqlite_insert(
    connection: AsyncConnection, statement: str, rows: Iterator[tuple[Any, ...]]
) -> int:
    """One executemany of plain tuples on the driver's connection, inside the session's
    transaction; sqlite3 sums the rows each insert added into the cursor's rowcount."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    cursor = await driver.executemany(statement, rows)
    added = int(cursor.rowcount)
    await cursor.close()
    return added


async def _batched_insert(connection: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
    statement = pg_insert(Candle.__table__).on_conflict_do_nothing()  # type: ignore[attr-defined]
    names = ["market_id", "interval", *COLUMNS]
    for offset in range(0, len(rows), INSERT_BATCH):
        batch = [dict(zip(names, row, strict=True)) for row in rows[offset : offset + INSERT_BATCH]]
        await connection.execute(statement, batch)


# PostgreSQL's binary COPY: a signature, flags and header-extension length, then each row as
# its number of fields and each field as its byte length (-1 for NULL) and its big-endian
# value, then -1 for the end. https://www.postgresql.org/docs/current/sql-copy.html
PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
PGCOPY_TRAILER = b"\xff\xff"


def copy_binary(market_id: int, interval: Interval, candles: Candles) -> bytes:
    """The candles as rows of `candles` (market_id, interval, then COLUMNS) in PostgreSQL's
    binary COPY format, built with numpy: a NaN volume or quote volume is NULL, as in the
    other writes. Rows with the same NULLs share one record layout; COPY keeps no order."""
    label = interval.value.encode()
    fixed: list[tuple[str, Any]] = [
        ("fields", ">i2"),
        ("market_id_size", ">i4"),
        ("market_id", ">i4"),
        ("interval_size", ">i4"),
        ("interval", f"S{len(label)}"),
    ]
    numbers = {
        "open_time": (">i8", candles.timestamps),
        "open": (">f8", candles.open),
        "high": (">f8", candles.high),
        "low": (">f8", candles.low),
        "close": (">f8", candles.close),
        "volume": (">f8", candles.volume),
        "quote_volume": (">f8", candles.quote_volume),
    }
    missing_volume, missing_quote = np.isnan(candles.volume), np.isnan(candles.quote_volume)
    parts = [PGCOPY_HEADER]
    for volume_null, quote_null in itertools.product((False, True), repeat=2):
        rows = np.flatnonzero((missing_volume == volume_null) & (missing_quote == quote_null))
        if rows.size == 0:
            continue
        nulls = {"volume": volume_null, "quote_volume": quote_null}
        layout = list(fixed)
        for name, (kind, _) in numbers.items():
            layout.append((f"{name}_size", ">i4"))
            if not nulls.get(name, False):
                layout.append((name, kind))
        records = np.empty(rows.size, dtype=np.dtype(layout))
        records["fields"] = 2 + len(COLUMNS)
        records["market_id_size"], records["market_id"] = 4, market_id
        records["interval_size"], records["interval"] = len(label), label
        for name, (_, values) in numbers.items():
            if nulls.get(name, False):
                records[f"{name}_size"] = -1
            else:
                records[f"{name}_size"] = 8
                records[name] = values if rows.size == len(candles) else values[rows]
        parts.append(records.tobytes())
    parts.append(PGCOPY_TRAILER)
    return b"".join(parts)


async def _copy_insert(
    session: AsyncSession, market_id: int, interval: Interval, candles: Candles
) -> int:
    """COPY in binary. Straight into `candles` when none of its rows can conflict (distinct
    open times, none stored in their range), in a savepoint in case a concurrent writer adds
    some first; else into a temporary staging table, then insert what is new in one
    statement. Returns how many rows were added."""
    payload = copy_binary(market_id, interval, candles)
    names = ["market_id", "interval", *COLUMNS]
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    timestamps = candles.timestamps
    distinct = bool(np.all(np.diff(np.sort(timestamps)) > 0))
    start, end = int(timestamps.min()), int(timestamps.max())
    stored = select(Candle.open_time).where(*_where(market_id, interval, start, end)).limit(1)
    if distinct and (await session.exec(stored)).first() is None:
        # On the driver's connection, as the COPY is: the session would not emit a savepoint
        # for statements it does not see.
        await driver.execute("SAVEPOINT candles_copy")
        try:
            await driver.copy_to_table(
                "candles", source=io.BytesIO(payload), columns=names, format="binary"
            )
        except Exception as error:  # the driver's UniqueViolationError, SQLSTATE 23505
            if getattr(error, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            await driver.execute("ROLLBACK TO SAVEPOINT candles_copy")  # then the staging path
        else:
            await driver.execute("RELEASE SAVEPOINT candles_copy")
            return len(candles)
    await connection.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS candles_staging"
            " (LIKE candles INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
    )
    await connection.execute(text("TRUNCATE candles_staging"))
    await driver.copy_to_table(
        "candles_staging", source=io.BytesIO(payload), columns=names, format="binary"
    )
    result = await connection.execute(
        text("INSERT INTO candles SELECT * FROM candles_staging ON CONFLICT DO NOTHING")
    )
    return int(result.rowcount)


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
