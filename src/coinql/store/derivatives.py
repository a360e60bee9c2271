"""Perpetual futures: the contracts, their fundings and their bars, read and written as packed
arrays. Nothing here commits.

A perpetual is an asset's contract on an exchange ("BTC/USDT:USDT" on binance; the demo's
"BTC/USD:USD" on "demo"), as a market is its spot pair. Its fundings are one row per funding
time; its bars one row per (interval, open time), holding open interest, mark and index price
at the bar's close, each NULL when the source does not give it (ingestion may fetch them
separately).

Writes are idempotent (`ON CONFLICT DO NOTHING`): writing the same times again adds nothing and
changes nothing. On SQLite, one executemany of plain tuples on the driver's connection (as
candles); on PostgreSQL, one INSERT ... SELECT FROM unnest() of the columns as arrays.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Column, Float, ForeignKey, String, UniqueConstraint, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import Interval, source_intervals
from coinql.domain.demo_derivatives import DemoPerpetual
from coinql.domain.derivatives import FundingRates, PerpetualBars, last_per_bucket
from coinql.store.candles import nullable, sqlite_insert
from coinql.store.db import insert, parent_key

BAR_COLUMNS = ("open_time", "open_interest", "mark_price", "index_price")


class Perpetual(SQLModel, table=True):
    """An asset's perpetual contract on an exchange. `data_source` says where its data comes
    from: "demo" (synthetic, not market data) or an exchange id."""

    __tablename__ = "perpetuals"
    __table_args__ = (UniqueConstraint("asset_id", "exchange", "contract"),)

    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = parent_key("assets.id")
    exchange: str = Field(max_length=40)
    contract: str = Field(max_length=60)
    data_source: str = Field(max_length=40)


class FundingRate(SQLModel, table=True):
    """One funding of a perpetual: the rate per funding period, positive when longs pay."""

    __tablename__ = "funding_rates"

    perpetual_id: int = Field(
        sa_column=Column(ForeignKey("perpetuals.id", ondelete="CASCADE"), primary_key=True)
    )
    funding_time: int = Field(sa_column=Column(BigInteger, primary_key=True))
    rate: float = Field(sa_column=Column(Float, nullable=False))


class PerpetualBar(SQLModel, table=True):
    """A perpetual's open interest (USD), mark and index price at the close of a bar."""

    __tablename__ = "perpetual_bars"

    perpetual_id: int = Field(
        sa_column=Column(ForeignKey("perpetuals.id", ondelete="CASCADE"), primary_key=True)
    )
    interval: str = Field(sa_column=Column(String(3), primary_key=True))
    open_time: int = Field(sa_column=Column(BigInteger, primary_key=True))
    open_interest: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    mark_price: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    index_price: float | None = Field(default=None, sa_column=Column(Float, nullable=True))


async def get_or_add_perpetual(
    session: AsyncSession, *, asset_id: int, exchange: str, contract: str, data_source: str
) -> Perpetual:
    statement = select(Perpetual).where(
        Perpetual.asset_id == asset_id,
        Perpetual.exchange == exchange,
        Perpetual.contract == contract,
    )
    found = (await session.exec(statement)).first()
    if found is None:
        found = await insert(
            session,
            Perpetual(
                asset_id=asset_id, exchange=exchange, contract=contract, data_source=data_source
            ),
        )
    return found


async def perpetuals_of(
    session: AsyncSession, *, asset_ids: Sequence[int]
) -> dict[int, list[Perpetual]]:
    """Each asset's perpetuals, oldest first (every asset asked for has a list)."""
    statement = (
        select(Perpetual).where(col(Perpetual.asset_id).in_(asset_ids)).order_by(col(Perpetual.id))
    )
    by_asset: dict[int, list[Perpetual]] = {asset_id: [] for asset_id in asset_ids}
    for perpetual in (await session.exec(statement)).all():
        by_asset[perpetual.asset_id].append(perpetual)
    return by_asset


def primary_perpetual(data_source: str, perpetuals: list[Perpetual]) -> Perpetual | None:
    """Of an asset's perpetuals, the first on its data source's exchange, else the first."""
    for perpetual in perpetuals:
        if perpetual.exchange == data_source:
            return perpetual
    return perpetuals[0] if perpetuals else None


async def read_funding(
    session: AsyncSession, *, perpetual_id: int, start: int | None, end: int | None
) -> FundingRates:
    """Fundings paid in [start, end], oldest first."""
    statement = select(FundingRate.funding_time, FundingRate.rate).where(
        FundingRate.perpetual_id == perpetual_id
    )
    if start is not None:
        statement = statement.where(col(FundingRate.funding_time) >= start)
    if end is not None:
        statement = statement.where(col(FundingRate.funding_time) <= end)
    rows = (await session.exec(statement.order_by(col(FundingRate.funding_time)))).all()
    if not rows:
        return FundingRates.empty()
    times, rates = zip(*rows, strict=True)
    return FundingRates(np.array(times, dtype=np.int64), np.array(rates, dtype=np.float64))


async def read_bars(
    session: AsyncSession,
    *,
    perpetual_id: int,
    interval: Interval,
    start: int | None,
    end: int | None,
) -> PerpetualBars:
    """Stored bars of `interval` with open time in [start, end], oldest first; NULL is NaN."""
    columns = [getattr(PerpetualBar, name) for name in BAR_COLUMNS]
    statement = select(*columns).where(
        PerpetualBar.perpetual_id == perpetual_id, PerpetualBar.interval == interval.value
    )
    if start is not None:
        statement = statement.where(col(PerpetualBar.open_time) >= start)
    if end is not None:
        statement = statement.where(col(PerpetualBar.open_time) <= end)
    rows = (await session.exec(statement.order_by(col(PerpetualBar.open_time)))).all()
    if not rows:
        return PerpetualBars.empty()
    # Column by column, as candles are read: numpy converts tuples (None -> NaN) fast.
    times, *values = zip(*rows, strict=True)
    return PerpetualBars(
        np.array(times, dtype=np.int64), *(np.array(v, dtype=np.float64) for v in values)
    )


async def bar_intervals(session: AsyncSession, *, perpetual_id: int) -> set[Interval]:
    statement = (
        select(PerpetualBar.interval).where(PerpetualBar.perpetual_id == perpetual_id).distinct()
    )
    return {Interval(value) for value in (await session.exec(statement)).all()}


async def load_bars(
    session: AsyncSession,
    *,
    perpetual_id: int,
    interval: Interval,
    start: int | None,
    end: int | None,
) -> PerpetualBars:
    """The perpetual's bars of `interval` in [start, end]: stored ones, else the last bar of
    each bucket of the largest smaller stored interval; none when neither is stored."""
    stored = await bar_intervals(session, perpetual_id=perpetual_id)
    if interval in stored:
        return await read_bars(
            session, perpetual_id=perpetual_id, interval=interval, start=start, end=end
        )
    for source in source_intervals(interval):
        if source in stored:
            # Widen to whole buckets: the last one's closing bar opens after `end`.
            lower = None if start is None else int(interval.floor(np.asarray([start]))[0])
            upper = None if end is None else end + interval.milliseconds - 1
            finer = await read_bars(
                session, perpetual_id=perpetual_id, interval=source, start=lower, end=upper
            )
            return last_per_bucket(finer, source, interval).between(start, end)
    return PerpetualBars.empty()


async def write_funding(session: AsyncSession, *, perpetual_id: int, funding: FundingRates) -> int:
    """Insert the fundings that are not stored yet; returns how many were added."""
    if len(funding) == 0:
        return 0
    times, rates = funding.timestamps.tolist(), funding.rates.tolist()
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        rows = zip(itertools.repeat(perpetual_id, len(times)), times, rates, strict=True)
        return await sqlite_insert(connection, _SQLITE_FUNDING, iter(rows))
    return await _unnest_insert(
        connection,
        _PG_FUNDING,
        {"perpetual_id": perpetual_id, "times": times, "rates": rates},
    )


async def write_bars(
    session: AsyncSession, *, perpetual_id: int, interval: Interval, bars: PerpetualBars
) -> int:
    """Insert the bars that are not stored yet (NaN stored as NULL); returns how many were
    added. A bar stored already is kept as it is, whatever its new values."""
    if len(bars) == 0:
        return 0
    columns = (
        bars.timestamps.tolist(),
        nullable(bars.open_interest),
        nullable(bars.mark_price),
        nullable(bars.index_price),
    )
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        rows = _bar_rows(perpetual_id, interval, columns)
        return await sqlite_insert(connection, _SQLITE_BARS, rows)
    return await _unnest_insert(
        connection,
        _PG_BARS,
        {
            "perpetual_id": perpetual_id,
            "interval": interval.value,
            **dict(zip(BAR_COLUMNS, columns, strict=True)),
        },
    )


def _bar_rows(
    perpetual_id: int, interval: Interval, columns: tuple[list[Any], ...]
) -> Iterator[tuple[Any, ...]]:
    count = len(columns[0])
    return iter(
        zip(
            itertools.repeat(perpetual_id, count),
            itertools.repeat(interval.value, count),
            *columns,
            strict=True,
        )
    )


_SQLITE_FUNDING = (
    "INSERT INTO funding_rates (perpetual_id, funding_time, rate) VALUES (?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)
_SQLITE_BARS = (
    f"INSERT INTO perpetual_bars (perpetual_id, interval, {', '.join(BAR_COLUMNS)})"
    f" VALUES ({', '.join('?' * (len(BAR_COLUMNS) + 2))}) ON CONFLICT DO NOTHING"
)
_PG_FUNDING = (
    "INSERT INTO funding_rates (perpetual_id, funding_time, rate)"
    " SELECT CAST(:perpetual_id AS INTEGER), funding_time, rate"
    " FROM unnest(CAST(:times AS BIGINT[]), CAST(:rates AS DOUBLE PRECISION[]))"
    " AS given (funding_time, rate)"
    " ON CONFLICT DO NOTHING"
)
_PG_BARS = (
    f"INSERT INTO perpetual_bars (perpetual_id, interval, {', '.join(BAR_COLUMNS)})"
    f" SELECT CAST(:perpetual_id AS INTEGER), CAST(:interval AS VARCHAR), {', '.join(BAR_COLUMNS)}"
    " FROM unnest(CAST(:open_time AS BIGINT[]), CAST(:open_interest AS DOUBLE PRECISION[]),"
    " CAST(:mark_price AS DOUBLE PRECISION[]), CAST(:index_price AS DOUBLE PRECISION[]))"
    f" AS given ({', '.join(BAR_COLUMNS)})"
    " ON CONFLICT DO NOTHING"
)


async def _unnest_insert(
    connection: AsyncConnection, statement: str, parameters: dict[str, Any]
) -> int:
    """One statement however many rows: the columns travel as arrays (no per-row parameters,
    which would cap a batch at 32767 of them)."""
    result = await connection.execute(text(statement), parameters)
    return int(result.rowcount)


async def save_demo_perpetuals(
    session: AsyncSession, *, perpetuals: Sequence[DemoPerpetual], asset_ids: dict[str, int]
) -> int:
    """Store generated demo perpetuals (hourly bars), each marked `data_source="demo"`, for
    the assets of `asset_ids` (by symbol); returns how many fundings and bars were added."""
    added = 0
    for demo in perpetuals:
        perpetual = await get_or_add_perpetual(
            session,
            asset_id=asset_ids[demo.symbol],
            exchange="demo",
            contract=demo.contract,
            data_source="demo",
        )
        assert perpetual.id is not None
        added += await write_funding(session, perpetual_id=perpetual.id, funding=demo.funding)
        added += await write_bars(
            session, perpetual_id=perpetual.id, interval=Interval.H1, bars=demo.bars
        )
    return added
