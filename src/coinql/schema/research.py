"""Monte Carlo simulations and parameter studies (sweeps, walk-forward): their results and
their inputs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Self

import numpy as np
import strawberry
from strawberry.scalars import JSON

from coinql.domain import backtest, simulation
from coinql.domain.bounds import Bounds
from coinql.domain.strategies import MAX_WINDOW
from coinql.resolvers import backtest as backtest_resolvers
from coinql.resolvers.context import Context
from coinql.schema.bounds import bounded
from coinql.schema.enums import FillPrice, Interval, SimulationMethod, SplitMode
from coinql.schema.nodes import OwnedNode, decode_id
from coinql.schema.scalars import FloatArray, TimestampArray, finite, to_millis
from coinql.store import jobs as job_store

# A grid value is a window, a threshold or an RSI level: no strategy takes more (each
# combination is then checked as a strategy).
GRID_VALUE = Bounds(-MAX_WINDOW, MAX_WINDOW)


@strawberry.type
class DrawdownPercentiles:
    p5: float
    p50: float
    p95: float


@strawberry.type
class TimeUnderWater:
    p50: float
    p95: float


@strawberry.type(description="Percentile bands of equity (starting at 1) at each step.")
class Bands:
    timestamps: TimestampArray
    p5: FloatArray
    p25: FloatArray
    p50: FloatArray
    p75: FloatArray
    p95: FloatArray


@strawberry.type(description="Monte Carlo stress of a return stream.")
class SimulationRun(OwnedNode):
    created_at: datetime
    input: JSON
    model: strawberry.Private[job_store.SimulationRun]

    @classmethod
    def from_model(cls, run: job_store.SimulationRun) -> Self:
        return cls(created_at=run.created_at, input=JSON(run.input), model=run)

    @staticmethod
    async def load_owned(context: Context, run_id: uuid.UUID) -> Any:
        return await backtest_resolvers.get_simulation_run(context, run_id=run_id)

    @strawberry.field(description="Percentiles of each path's maximum drawdown.")
    def max_drawdown_percentiles(self) -> DrawdownPercentiles:
        values = self.model.statistics["max_drawdown_percentiles"]
        return DrawdownPercentiles(p5=values["5"], p50=values["50"], p95=values["95"])

    @strawberry.field(description="Mean loss of the worst 1 % of horizon returns.")
    def expected_shortfall_99(self) -> float | None:
        return finite(self.model.statistics["expected_shortfall_99"])

    @strawberry.field(description="Share of paths whose equity fell below the ruin threshold.")
    def ruin_probability(self) -> float:
        return float(self.model.statistics["ruin_probability"])

    @strawberry.field(description="With leverage: share of paths liquidated.")
    def liquidation_probability(self) -> float:
        return float(self.model.statistics["liquidation_probability"])

    @strawberry.field(description="Steps spent below a previous peak, percentiles over paths.")
    def time_under_water_percentiles(self) -> TimeUnderWater:
        values = self.model.statistics["time_under_water_percentiles"]
        return TimeUnderWater(p50=values["50"], p95=values["95"])

    @strawberry.field
    def final_return_percentiles(self) -> DrawdownPercentiles:
        values = self.model.statistics["final_return_percentiles"]
        return DrawdownPercentiles(p5=values["5"], p50=values["50"], p95=values["95"])

    @strawberry.field
    def bands(self) -> Bands:
        bands = np.frombuffer(self.model.bands, dtype=np.float64).reshape(5, -1)
        stamps = np.frombuffer(self.model.band_timestamps, dtype=np.int64)
        return Bands(
            timestamps=stamps, p5=bands[0], p25=bands[1], p50=bands[2], p75=bands[3], p95=bands[4]
        )


@strawberry.type
class StudyMetrics:
    total_return: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float | None
    trade_count: int | None

    @classmethod
    def from_model(cls, metrics: dict[str, Any]) -> Self:
        count = metrics.get("trade_count")
        return cls(
            total_return=finite(metrics.get("total_return")),
            sharpe=finite(metrics.get("sharpe")),
            sortino=finite(metrics.get("sortino")),
            calmar=finite(metrics.get("calmar")),
            max_drawdown=finite(metrics.get("max_drawdown")),
            trade_count=None if count is None else int(count),
        )


@strawberry.type
class SweepRow:
    params: JSON
    metrics: StudyMetrics


@strawberry.type(description="Every combination of a parameter grid, and the best one.")
class SweepRun(OwnedNode):
    metric: str
    rows: list[SweepRow]
    best: SweepRow | None
    model: strawberry.Private[job_store.StudyRun]

    @staticmethod
    async def load_owned(context: Context, run_id: uuid.UUID) -> Any:
        return await backtest_resolvers.get_study_run(context, run_id=run_id)

    @classmethod
    def from_model(cls, run: job_store.StudyRun) -> Self:
        def row(item: dict[str, Any]) -> SweepRow:
            return SweepRow(
                params=JSON(item["params"]), metrics=StudyMetrics.from_model(item["metrics"])
            )

        best = run.result.get("best")
        return cls(
            metric=run.result["metric"],
            rows=[row(item) for item in run.result["rows"]],
            best=row(best) if best else None,
            model=run,
        )


@strawberry.type
class WalkForwardSplit:
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    params: JSON = strawberry.field(description="The best on the train window.")
    in_sample: StudyMetrics
    out_of_sample: StudyMetrics


@strawberry.type(description="Optimised in sample, evaluated out of sample, window by window.")
class WalkForwardRun(OwnedNode):
    metric: str
    decay: float | None = strawberry.field(description="Mean OOS metric / mean IS metric.")
    splits: list[WalkForwardSplit]
    model: strawberry.Private[job_store.StudyRun]

    @staticmethod
    async def load_owned(context: Context, run_id: uuid.UUID) -> Any:
        return await backtest_resolvers.get_study_run(context, run_id=run_id)

    @classmethod
    def from_model(cls, run: job_store.StudyRun) -> Self:
        def moment(millis: int) -> datetime:
            return datetime.fromtimestamp(millis / 1000, UTC)

        return cls(
            metric=run.result["metric"],
            decay=finite(run.result.get("decay")),
            splits=[
                WalkForwardSplit(
                    train_start=moment(item["train"][0]),
                    train_end=moment(item["train"][1]),
                    test_start=moment(item["test"][0]),
                    test_end=moment(item["test"][1]),
                    params=JSON(item["params"]),
                    in_sample=StudyMetrics.from_model(item["in_sample"]),
                    out_of_sample=StudyMetrics.from_model(item["out_of_sample"]),
                )
                for item in run.result["splits"]
            ],
            model=run,
        )


@strawberry.input
class GridParameter:
    name: str = strawberry.field(description='e.g. "fast".')
    values: list[float] = bounded(
        GRID_VALUE, description="Windows, thresholds or levels the strategy takes, each."
    )


@strawberry.input
class StudyInput:
    symbol: str
    strategy: str = strawberry.field(description='A signal kind, e.g. "smaCross".')
    grid: list[GridParameter]
    metric: str = strawberry.field(default="sharpe", description="What the best maximises.")
    interval: Interval = Interval.D1
    start: datetime | None = None
    end: datetime | None = None
    initial_capital: float = bounded(backtest_resolvers.INITIAL_CAPITAL, default=10_000.0)
    fee_bps: float = bounded(backtest_resolvers.FEE_BPS, default=0.0)
    slippage_bps: float = bounded(backtest_resolvers.SLIPPAGE_BPS, default=0.0)
    fill_price: FillPrice = FillPrice.NEXT_OPEN
    train_bars: int = bounded(
        backtest_resolvers.WALK_FORWARD_BARS, default=365, description="Walk-forward only."
    )
    test_bars: int = bounded(
        backtest_resolvers.WALK_FORWARD_BARS, default=90, description="Walk-forward only."
    )
    mode: SplitMode = strawberry.field(default=SplitMode.ROLLING, description="Walk-forward only.")

    def to_model(self, *, walk_forward: bool) -> backtest_resolvers.StudyRequest:
        return backtest_resolvers.StudyRequest(
            symbol=self.symbol,
            interval=self.interval,
            start=to_millis(self.start),
            end=to_millis(self.end),
            kind=self.strategy,
            grid={item.name: list(item.values) for item in self.grid},
            metric=self.metric,
            config=backtest.BacktestConfig(
                initial_capital=self.initial_capital,
                fee_bps=self.fee_bps,
                slippage_bps=self.slippage_bps,
                fill=self.fill_price,
                periods_per_year=self.interval.periods_per_year,
            ),
            walk_forward=walk_forward,
            train_bars=self.train_bars,
            test_bars=self.test_bars,
            mode=self.mode,
        )


@strawberry.input(one_of=True)
class SimulationSource:
    backtest_run_id: strawberry.ID | None = strawberry.UNSET
    portfolio_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class SimulationInput:
    source: SimulationSource
    method: SimulationMethod = SimulationMethod.BLOCK_BOOTSTRAP
    paths: int = bounded(backtest_resolvers.PATHS, default=5_000)
    horizon: int = bounded(
        backtest_resolvers.HORIZON, default=365, description="Steps of the source's interval."
    )
    block_length: int = bounded(
        backtest_resolvers.BLOCK_LENGTH, default=10, description="Steps; at most the horizon."
    )
    seed: int = bounded(
        backtest_resolvers.SEED, default=0, description="The same seed, the same paths."
    )
    ruin_threshold: float = bounded(
        backtest_resolvers.RUIN_THRESHOLD, default=0.5, description="Of the starting equity."
    )
    leverage: float = bounded(backtest_resolvers.LEVERAGE, default=1.0)
    liquidation_threshold: float = bounded(
        backtest_resolvers.LIQUIDATION_THRESHOLD,
        default=0.0,
        description="With leverage: of the starting equity.",
    )
    volatility_scaling: bool = strawberry.field(
        default=False, description="Scale returns to the recent volatility (r x s_now / s)."
    )
    regime_weight: float = bounded(
        backtest_resolvers.REGIME_WEIGHT,
        default=1.0,
        description="> 1 draws blocks from the current volatility regime more often.",
    )
    shock_probability: float = bounded(
        backtest_resolvers.SHOCK_PROBABILITY,
        default=0.0,
        description="Per step: a black swan (gap move) starts.",
    )
    shock_size: float = bounded(
        backtest_resolvers.SHOCK_SIZE, default=-0.2, description="The gap move, a return."
    )
    shock_volatility: float = bounded(
        backtest_resolvers.SHOCK_VOLATILITY, default=3.0, description="Volatility spike factor."
    )
    shock_duration: int = bounded(
        backtest_resolvers.SHOCK_DURATION, default=10, description="Steps a shock lasts."
    )
    shock_slippage_bps: float = bounded(
        backtest_resolvers.SHOCK_SLIPPAGE_BPS,
        default=50.0,
        description="Liquidity cost on each shocked step.",
    )

    def to_model(self) -> backtest_resolvers.SimulationRequest:
        run = self.source.backtest_run_id
        portfolio = self.source.portfolio_id
        return backtest_resolvers.SimulationRequest(
            backtest_run_id=decode_id(run, "BacktestRun") if run else None,
            portfolio_id=decode_id(portfolio, "Portfolio") if portfolio else None,
            method=self.method,
            config=simulation.SimulationConfig(
                paths=self.paths,
                horizon=self.horizon,
                block_length=self.block_length,
                seed=self.seed,
                ruin_threshold=self.ruin_threshold,
                leverage=self.leverage,
                liquidation_threshold=self.liquidation_threshold,
                volatility_scaling=self.volatility_scaling,
                regime_weight=self.regime_weight,
                shock_probability=self.shock_probability,
                shock_size=self.shock_size,
                shock_volatility=self.shock_volatility,
                shock_duration=self.shock_duration,
                shock_slippage_bps=self.shock_slippage_bps,
            ),
        )
