"""The inputs of the runs that go through the job queue, as typed records.

A resolver validates a request and builds one of these; the job stores its `to_json()` (the
run registry hashes that JSON to find runs with the same input), and the job body reads it
back with `from_json`. The JSON keys are the stored format: renaming a field means a
migration of the stored jobs and runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coinql.domain.backtest_config import BacktestConfig
from coinql.domain.candles import Interval
from coinql.domain.research import SplitMode
from coinql.domain.simulation import SimulationConfig, SimulationMethod
from coinql.domain.strategies import StrategySpec
from coinql.domain.typing import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class BacktestJob:
    """A backtest of a strategy over `symbols` between `start` and `end`.

    `start` and `end` are epoch ms, inclusive, None for unbounded; `supply` holds the
    circulating supplies that rank an allocation universe by market cap.
    """

    symbols: list[str]
    interval: Interval
    start: int | None
    end: int | None
    strategy: StrategySpec
    config: BacktestConfig
    name: str
    supply: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Encode the job's input as stored (and hashed, for a backtest)."""
        return {
            "symbols": list(self.symbols),
            "interval": self.interval.value,
            "start": self.start,
            "end": self.end,
            "strategy": self.strategy.to_json(),
            "config": self.config.to_json(),
            "name": self.name,
            "supply": dict(self.supply),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BacktestJob:
        """Decode the input `to_json` wrote."""
        strategy = StrategySpec.from_json(data["strategy"])
        return cls(
            symbols=[str(symbol) for symbol in data["symbols"]],
            interval=Interval(data["interval"]),
            start=data.get("start"),
            end=data.get("end"),
            strategy=strategy,
            config=BacktestConfig.from_json(data["config"]),
            name=str(data.get("name") or strategy.kind),
            supply=dict(data.get("supply") or {}),
        )


@dataclass(frozen=True, slots=True)
class StudyJob:
    """A parameter sweep, or a walk-forward validation, of a signal strategy on one symbol.

    `train_bars`, `test_bars` and `mode` are the walk-forward's windows.
    """

    symbol: str
    interval: Interval
    start: int | None
    end: int | None
    kind: str
    grid: dict[str, list[Any]]
    metric: str
    config: BacktestConfig
    train_bars: int = 365
    test_bars: int = 90
    mode: SplitMode = SplitMode.ROLLING

    def to_json(self) -> dict[str, Any]:
        """Encode the job's input as stored (and hashed, for a backtest)."""
        return {
            "symbols": [self.symbol],
            "interval": self.interval.value,
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "grid": self.grid,
            "metric": self.metric,
            "config": self.config.to_json(),
            "train_bars": self.train_bars,
            "test_bars": self.test_bars,
            "mode": self.mode.value,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyJob:
        """Decode the input `to_json` wrote."""
        return cls(
            symbol=str(data["symbols"][0]),
            interval=Interval(data["interval"]),
            start=data.get("start"),
            end=data.get("end"),
            kind=str(data["kind"]),
            grid=dict(data["grid"]),
            metric=str(data["metric"]),
            config=BacktestConfig.from_json(data["config"]),
            train_bars=int(data["train_bars"]),
            test_bars=int(data["test_bars"]),
            mode=SplitMode(data["mode"]),
        )


@dataclass(frozen=True, slots=True)
class SimulationJob:
    """A Monte Carlo stress of a return stream.

    `returns` are finite, of shape (n_observations,); their last bar is `last_timestamp`,
    bars `step_ms` apart. `source` names where they came from ({"backtest_run_id": ...} or
    {"portfolio_id": ...}).
    """

    source: dict[str, str]
    config: SimulationConfig
    returns: FloatArray
    last_timestamp: int
    step_ms: int

    @classmethod
    def of(
        cls,
        *,
        source: dict[str, str],
        config: SimulationConfig,
        returns: FloatArray,
        timestamps: IntArray,
        step_ms: int,
    ) -> SimulationJob:
        """Build the job for a return stream: its finite returns, and its last timestamp.

        Parameters
        ----------
        returns : ndarray of shape (n_observations,)
            NaN and infinite returns are dropped.
        timestamps : ndarray of shape (n_observations,) or (n_observations + 1,)
            The stream's bars (epoch ms); the paths start at the last one (0 when empty).
        """
        return cls(
            source=source,
            config=config,
            returns=returns[np.isfinite(returns)],
            last_timestamp=int(timestamps[-1]) if timestamps.size else 0,
            step_ms=step_ms,
        )

    @property
    def method(self) -> SimulationMethod:
        """The path model (block bootstrap or regime switching)."""
        return self.config.method

    def to_json(self, *, with_returns: bool = True) -> dict[str, Any]:
        """Encode the job's input; without the returns, what the finished run keeps of it."""
        data: dict[str, Any] = {
            "source": dict(self.source),
            "method": self.method.value,
            "config": self.config.to_json(),
            "returns": self.returns.tolist(),
            "last_timestamp": self.last_timestamp,
            "step_ms": self.step_ms,
        }
        if not with_returns:
            del data["returns"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimulationJob:
        """Decode the input `to_json` wrote."""
        return cls(
            source={str(key): str(value) for key, value in data["source"].items()},
            config=SimulationConfig.from_json(data["config"]),
            returns=np.asarray(data["returns"], dtype=np.float64),
            last_timestamp=int(data["last_timestamp"]),
            step_ms=int(data["step_ms"]),
        )


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """One chunk of a job: its `index` among `count`, the items [start, stop) it runs."""

    index: int
    count: int
    start: int
    stop: int

    @property
    def part(self) -> tuple[int, int]:
        """The chunk's items as a (start, stop) pair."""
        return (self.start, self.stop)

    def to_json(self) -> dict[str, Any]:
        """Encode the chunk's input as stored."""
        return {"index": self.index, "count": self.count, "start": self.start, "stop": self.stop}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkJob:
        """Decode the input `to_json` wrote."""
        return cls(
            index=int(data["index"]),
            count=int(data["count"]),
            start=int(data["start"]),
            stop=int(data["stop"]),
        )
