"""The run registry: finished backtests, simulations and studies. Nothing here commits.

Arrays (equity curves, positions, percentile bands) are stored as raw little-endian bytes;
this module alone encodes them (`new_backtest_run`, `new_simulation_run`) and decodes them
into records of arrays (`equity_of`, `positions_of`, `bands_of`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import JSON, Column, ForeignKey, LargeBinary, func
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.book import TradeRow
from coinql.domain.metrics import Metrics
from coinql.domain.typing import FloatArray, IntArray
from coinql.store.db import UTCDateTime


class BacktestRun(SQLModel, table=True):
    """A finished backtest: its canonical input and hash, metrics, equity and trades."""

    __tablename__ = "backtest_runs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    job_id: uuid.UUID | None = Field(default=None)
    name: str = Field(max_length=100)
    input: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    input_hash: str = Field(max_length=64, index=True)
    metrics: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    timestamps: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    equity: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    positions: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, nullable=True)
    )  # float64 (n_bars, n_symbols): units (signal books) or weights (allocation books)
    trades: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    code_version: str = Field(max_length=80)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class SimulationRun(SQLModel, table=True):
    __tablename__ = "simulation_runs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    job_id: uuid.UUID | None = Field(default=None)
    input: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    statistics: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    bands: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    band_timestamps: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class StudyRun(SQLModel, table=True):
    """The result of a parameter sweep or a walk-forward validation."""

    __tablename__ = "study_runs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    job_id: uuid.UUID | None = Field(default=None)
    kind: str = Field(max_length=20)
    input: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


async def add_backtest_run(session: AsyncSession, *, run: BacktestRun) -> BacktestRun:
    session.add(run)
    await session.flush()
    return run


def canonical_hash(value: dict[str, Any]) -> str:
    """SHA-256 of a run's input as canonical JSON (sorted keys): the same input, the same hash."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def new_backtest_run(
    *,
    owner_id: uuid.UUID,
    job_id: uuid.UUID | None,
    name: str,
    run_input: dict[str, Any],
    metrics: Metrics,
    timestamps: IntArray,
    equity: FloatArray,
    positions: FloatArray,
    trades: list[TradeRow],
    code_version: str,
    created_at: datetime,
) -> BacktestRun:
    """A backtest run to add: its input hashed, its arrays encoded.

    positions : shape (n_bars, n_symbols), in the order of `run_input["symbols"]`.
    """
    return BacktestRun(
        owner_id=owner_id,
        job_id=job_id,
        name=name,
        input=run_input,
        input_hash=canonical_hash(run_input),
        metrics=metrics.to_json(),
        timestamps=timestamps.astype(np.int64).tobytes(),
        equity=equity.astype(np.float64).tobytes(),
        positions=np.ascontiguousarray(positions, dtype=np.float64).tobytes(),
        trades=[trade.to_json() for trade in trades],
        code_version=code_version,
        created_at=created_at,
    )


def equity_of(run: BacktestRun) -> tuple[IntArray, FloatArray]:
    """A run's equity curve: its timestamps and values."""
    return (
        np.frombuffer(run.timestamps, dtype=np.int64),
        np.frombuffer(run.equity, dtype=np.float64),
    )


def trades_of(run: BacktestRun, *, offset: int = 0, limit: int | None = None) -> list[TradeRow]:
    """A run's trades in entry order, from `offset`, at most `limit`."""
    end = None if limit is None else offset + limit
    return [TradeRow.from_json(row) for row in run.trades[offset:end]]


def metrics_of(run: BacktestRun) -> Metrics:
    return Metrics.from_json(run.metrics)


@dataclass(frozen=True, slots=True)
class Positions:
    """A run's positions: units (signal books) or weights (allocation books) per symbol.

    values : shape (n_bars, n_symbols), columns in the order of `symbols`.
    """

    symbols: list[str]
    timestamps: IntArray
    values: FloatArray

    def by_symbol(self) -> list[tuple[str, FloatArray]]:
        return [(symbol, self.values[:, column]) for column, symbol in enumerate(self.symbols)]


def positions_of(run: BacktestRun) -> Positions | None:
    """None for a run stored without positions."""
    if run.positions is None:
        return None
    symbols = [str(symbol) for symbol in run.input["symbols"]]
    values = np.frombuffer(run.positions, dtype=np.float64).reshape(-1, len(symbols))
    return Positions(symbols, np.frombuffer(run.timestamps, dtype=np.int64), values)


async def get_backtest_run(
    session: AsyncSession, *, run_id: uuid.UUID, owner_id: uuid.UUID
) -> BacktestRun | None:
    statement = select(BacktestRun).where(
        BacktestRun.id == run_id, BacktestRun.owner_id == owner_id
    )
    return (await session.exec(statement)).first()


async def get_backtest_runs(
    session: AsyncSession, *, run_ids: Sequence[uuid.UUID], owner_id: uuid.UUID
) -> dict[uuid.UUID, BacktestRun]:
    statement = select(BacktestRun).where(
        col(BacktestRun.id).in_(run_ids), BacktestRun.owner_id == owner_id
    )
    return {run.id: run for run in (await session.exec(statement)).all()}


async def list_backtest_runs(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    offset: int,
    limit: int,
    name_contains: str | None = None,
    input_hash: str | None = None,
) -> list[BacktestRun]:
    statement = select(BacktestRun).where(BacktestRun.owner_id == owner_id)
    if name_contains:
        statement = statement.where(func.lower(BacktestRun.name).like(f"%{name_contains.lower()}%"))
    if input_hash:
        statement = statement.where(BacktestRun.input_hash == input_hash)
    statement = (
        statement.order_by(col(BacktestRun.created_at).desc(), col(BacktestRun.id))
        .offset(offset)
        .limit(limit)
    )
    return list((await session.exec(statement)).all())


async def delete_backtest_run(session: AsyncSession, *, run: BacktestRun) -> None:
    await session.delete(run)
    await session.flush()


async def add_simulation_run(session: AsyncSession, *, run: SimulationRun) -> SimulationRun:
    session.add(run)
    await session.flush()
    return run


def new_simulation_run(
    *,
    owner_id: uuid.UUID,
    job_id: uuid.UUID | None,
    run_input: dict[str, Any],
    statistics: dict[str, Any],
    bands: FloatArray,
    band_timestamps: IntArray,
    created_at: datetime,
) -> SimulationRun:
    """A simulation run to add, its bands (shape (5, n_steps)) encoded."""
    return SimulationRun(
        owner_id=owner_id,
        job_id=job_id,
        input=run_input,
        statistics=statistics,
        bands=bands.astype(np.float64).tobytes(),
        band_timestamps=band_timestamps.astype(np.int64).tobytes(),
        created_at=created_at,
    )


@dataclass(frozen=True, slots=True)
class Bands:
    """Percentile bands of equity: values of shape (5, n_steps), the 5/25/50/75/95th."""

    timestamps: IntArray
    values: FloatArray


def bands_of(run: SimulationRun) -> Bands:
    return Bands(
        np.frombuffer(run.band_timestamps, dtype=np.int64),
        np.frombuffer(run.bands, dtype=np.float64).reshape(5, -1),
    )


async def get_simulation_run(
    session: AsyncSession, *, run_id: uuid.UUID, owner_id: uuid.UUID
) -> SimulationRun | None:
    statement = select(SimulationRun).where(
        SimulationRun.id == run_id, SimulationRun.owner_id == owner_id
    )
    return (await session.exec(statement)).first()


async def add_study_run(session: AsyncSession, *, run: StudyRun) -> StudyRun:
    session.add(run)
    await session.flush()
    return run


async def get_study_run(
    session: AsyncSession, *, run_id: uuid.UUID, owner_id: uuid.UUID
) -> StudyRun | None:
    statement = select(StudyRun).where(StudyRun.id == run_id, StudyRun.owner_id == owner_id)
    return (await session.exec(statement)).first()
