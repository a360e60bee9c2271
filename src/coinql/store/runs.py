"""The run registry: finished backtests, simulations and studies. Nothing here commits.

Metrics, trades, study results and statistics are stored as JSON, written and read back here
as the domain's records (`Metrics`, `TradeRow`, `SweepResult`, `SimulationResult`).

Arrays (equity curves, positions, percentile bands) are stored as raw little-endian bytes;
this module alone encodes them (`new_backtest_run`, `new_simulation_run`) and decodes them
into records of arrays (`equity_of`, `positions_of`, `simulation_result_of`).
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
from sqlalchemy import JSON, Column, LargeBinary, func
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.book import TradeRow
from coinql.domain.metrics import Metrics
from coinql.domain.research import SweepResult, SweepRow, WalkForwardResult
from coinql.domain.simulation import SimulationResult
from coinql.domain.typing import FloatArray, IntArray
from coinql.store.db import UTCDateTime, parent_key


class BacktestRun(SQLModel, table=True):
    """A finished backtest: its canonical input and hash, metrics, equity and trades."""

    __tablename__ = "backtest_runs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = parent_key("users.id")
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
    owner_id: uuid.UUID = parent_key("users.id")
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
    owner_id: uuid.UUID = parent_key("users.id")
    job_id: uuid.UUID | None = Field(default=None)
    kind: str = Field(max_length=20)
    input: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


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


_PERCENTILES = (
    "max_drawdown_percentiles",
    "time_under_water_percentiles",
    "final_return_percentiles",
)
_SCALARS = ("expected_shortfall_99", "ruin_probability", "liquidation_probability")


def new_simulation_run(
    *,
    owner_id: uuid.UUID,
    job_id: uuid.UUID | None,
    run_input: dict[str, Any],
    result: SimulationResult,
    band_timestamps: IntArray,
    created_at: datetime,
) -> SimulationRun:
    """A simulation run to add: its statistics as JSON (percentiles keyed "5", "50", ...),
    its bands (shape (5, n_steps)) and their timestamps encoded."""
    statistics: dict[str, Any] = {}
    for name in _PERCENTILES:
        values = getattr(result, name)
        statistics[name] = {str(key): float(value) for key, value in values.items()}
    statistics.update({name: float(getattr(result, name)) for name in _SCALARS})
    return SimulationRun(
        owner_id=owner_id,
        job_id=job_id,
        input=run_input,
        statistics=statistics,
        bands=result.bands.astype(np.float64).tobytes(),
        band_timestamps=band_timestamps.astype(np.int64).tobytes(),
        created_at=created_at,
    )


def simulation_result_of(run: SimulationRun) -> SimulationResult:
    """A simulation run's statistics and bands, as the simulation returned them."""
    statistics = run.statistics
    percentiles = {
        name: {int(key): float(value) for key, value in statistics[name].items()}
        for name in _PERCENTILES
    }
    return SimulationResult(
        max_drawdown_percentiles=percentiles["max_drawdown_percentiles"],
        time_under_water_percentiles=percentiles["time_under_water_percentiles"],
        expected_shortfall_99=float(statistics["expected_shortfall_99"]),
        ruin_probability=float(statistics["ruin_probability"]),
        liquidation_probability=float(statistics["liquidation_probability"]),
        bands=np.frombuffer(run.bands, dtype=np.float64).reshape(5, -1),
        final_return_percentiles=percentiles["final_return_percentiles"],
    )


def band_timestamps_of(run: SimulationRun) -> IntArray:
    """The timestamps of a simulation run's bands: the source's last bar, then each step."""
    return np.frombuffer(run.band_timestamps, dtype=np.int64)


async def get_simulation_run(
    session: AsyncSession, *, run_id: uuid.UUID, owner_id: uuid.UUID
) -> SimulationRun | None:
    statement = select(SimulationRun).where(
        SimulationRun.id == run_id, SimulationRun.owner_id == owner_id
    )
    return (await session.exec(statement)).first()


def new_study_run(
    *,
    owner_id: uuid.UUID,
    job_id: uuid.UUID | None,
    kind: str,
    run_input: dict[str, Any],
    result: SweepResult | WalkForwardResult,
    timestamps: IntArray,
    created_at: datetime,
) -> StudyRun:
    """A sweep or walk-forward run to add, as JSON; `timestamps` are the candles' (epoch ms),
    of which a walk-forward keeps each window's first and last."""
    if isinstance(result, SweepResult):
        encoded: dict[str, Any] = {
            "metric": result.metric,
            "rows": [_sweep_row(row) for row in result.rows],
            "best": None if result.best is None else _sweep_row(result.best),
        }
    else:
        encoded = {
            "metric": result.metric,
            "decay": result.decay,
            "splits": [
                {
                    "train": [
                        int(timestamps[s.split.train[0]]),
                        int(timestamps[s.split.train[1] - 1]),
                    ],
                    "test": [
                        int(timestamps[s.split.test[0]]),
                        int(timestamps[s.split.test[1] - 1]),
                    ],
                    "params": s.params,
                    "in_sample": s.in_sample.to_json(),
                    "out_of_sample": s.out_of_sample.to_json(),
                }
                for s in result.splits
            ],
        }
    return StudyRun(
        owner_id=owner_id,
        job_id=job_id,
        kind=kind,
        input=run_input,
        result=encoded,
        created_at=created_at,
    )


def _first_and_last(timestamps: IntArray, bars: tuple[int, int]) -> list[int]:
    """The first and last timestamp of the bars [start, end)."""
    return [int(timestamps[bars[0]]), int(timestamps[bars[1] - 1])]


def _sweep_row(row: SweepRow) -> dict[str, Any]:
    return {"params": row.params, "metrics": row.metrics.to_json()}


def sweep_of(run: StudyRun) -> SweepResult:
    """A sweep run's rows and best row, as the sweep returned them."""

    def row(item: dict[str, Any]) -> SweepRow:
        return SweepRow(item["params"], Metrics.from_json(item["metrics"]))

    best = run.result.get("best")
    return SweepResult(
        run.result["metric"],
        [row(item) for item in run.result["rows"]],
        row(best) if best else None,
    )


@dataclass(frozen=True, slots=True)
class WalkForwardWindow:
    """One walk-forward split: the first and last bar (epoch ms) of its train and test windows,
    the parameters chosen in sample, and the metrics in and out of sample."""

    train: tuple[int, int]
    test: tuple[int, int]
    params: dict[str, Any]
    in_sample: Metrics
    out_of_sample: Metrics


@dataclass(frozen=True, slots=True)
class WalkForwardRecord:
    """A walk-forward run: the metric optimised, its decay (mean OOS / mean IS), its splits."""

    metric: str
    decay: float | None
    windows: list[WalkForwardWindow]


def walk_forward_of(run: StudyRun) -> WalkForwardRecord:
    decay = run.result.get("decay")
    return WalkForwardRecord(
        metric=run.result["metric"],
        decay=None if decay is None else float(decay),
        windows=[
            WalkForwardWindow(
                train=(int(item["train"][0]), int(item["train"][1])),
                test=(int(item["test"][0]), int(item["test"][1])),
                params=item["params"],
                in_sample=Metrics.from_json(item["in_sample"]),
                out_of_sample=Metrics.from_json(item["out_of_sample"]),
            )
            for item in run.result["splits"]
        ],
    )


async def get_study_run(
    session: AsyncSession, *, run_id: uuid.UUID, owner_id: uuid.UUID
) -> StudyRun | None:
    statement = select(StudyRun).where(StudyRun.id == run_id, StudyRun.owner_id == owner_id)
    return (await session.exec(statement)).first()
