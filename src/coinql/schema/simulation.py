"""Monte Carlo stress runs: their statistics and percentile bands, and their input."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Self

import strawberry
from strawberry.scalars import JSON

from coinql.domain import simulation
from coinql.resolvers import simulation as simulation_resolvers
from coinql.resolvers.context import Context
from coinql.schema.bounds import bounded
from coinql.schema.enums import SimulationMethod
from coinql.schema.nodes import OwnedNode, decode_id
from coinql.schema.scalars import FloatArray, TimestampArray, finite
from coinql.store import runs as run_store


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
    model: strawberry.Private[run_store.SimulationRun]

    @classmethod
    def from_model(cls, run: run_store.SimulationRun) -> Self:
        return cls(created_at=run.created_at, input=JSON(run.input), model=run)

    @staticmethod
    async def load_owned(context: Context, run_id: uuid.UUID) -> Any:
        return await simulation_resolvers.get_simulation_run(context, run_id=run_id)

    @property
    def _result(self) -> simulation.SimulationResult:
        return run_store.simulation_result_of(self.model)

    @strawberry.field(description="Percentiles of each path's maximum drawdown.")
    def max_drawdown_percentiles(self) -> DrawdownPercentiles:
        values = self._result.max_drawdown_percentiles
        return DrawdownPercentiles(p5=values[5], p50=values[50], p95=values[95])

    @strawberry.field(description="Mean loss of the worst 1 % of horizon returns.")
    def expected_shortfall_99(self) -> float | None:
        return finite(self._result.expected_shortfall_99)

    @strawberry.field(description="Share of paths whose equity fell below the ruin threshold.")
    def ruin_probability(self) -> float:
        return self._result.ruin_probability

    @strawberry.field(description="With leverage: share of paths liquidated.")
    def liquidation_probability(self) -> float:
        return self._result.liquidation_probability

    @strawberry.field(description="Steps spent below a previous peak, percentiles over paths.")
    def time_under_water_percentiles(self) -> TimeUnderWater:
        values = self._result.time_under_water_percentiles
        return TimeUnderWater(p50=values[50], p95=values[95])

    @strawberry.field
    def final_return_percentiles(self) -> DrawdownPercentiles:
        values = self._result.final_return_percentiles
        return DrawdownPercentiles(p5=values[5], p50=values[50], p95=values[95])

    @strawberry.field
    def bands(self) -> Bands:
        bands = self._result.bands
        return Bands(
            timestamps=run_store.band_timestamps_of(self.model),
            p5=bands[0],
            p25=bands[1],
            p50=bands[2],
            p75=bands[3],
            p95=bands[4],
        )


@strawberry.input(one_of=True)
class SimulationSource:
    backtest_run_id: strawberry.ID | None = strawberry.UNSET
    portfolio_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class SimulationInput:
    source: SimulationSource
    method: SimulationMethod = SimulationMethod.BLOCK_BOOTSTRAP
    paths: int = bounded(simulation_resolvers.PATHS, default=5_000)
    horizon: int = bounded(
        simulation_resolvers.HORIZON, default=365, description="Steps of the source's interval."
    )
    block_length: int = bounded(
        simulation_resolvers.BLOCK_LENGTH, default=10, description="Steps; at most the horizon."
    )
    seed: int = bounded(
        simulation_resolvers.SEED, default=0, description="The same seed, the same paths."
    )
    ruin_threshold: float = bounded(
        simulation_resolvers.RUIN_THRESHOLD, default=0.5, description="Of the starting equity."
    )
    leverage: float = bounded(simulation_resolvers.LEVERAGE, default=1.0)
    liquidation_threshold: float = bounded(
        simulation_resolvers.LIQUIDATION_THRESHOLD,
        default=0.0,
        description="With leverage: of the starting equity.",
    )
    volatility_scaling: bool = strawberry.field(
        default=False, description="Scale returns to the recent volatility (r x s_now / s)."
    )
    regime_weight: float = bounded(
        simulation_resolvers.REGIME_WEIGHT,
        default=1.0,
        description="> 1 draws blocks from the current volatility regime more often.",
    )
    shock_probability: float = bounded(
        simulation_resolvers.SHOCK_PROBABILITY,
        default=0.0,
        description="Per step: a black swan (gap move) starts.",
    )
    shock_size: float = bounded(
        simulation_resolvers.SHOCK_SIZE, default=-0.2, description="The gap move, a return."
    )
    shock_volatility: float = bounded(
        simulation_resolvers.SHOCK_VOLATILITY, default=3.0, description="Volatility spike factor."
    )
    shock_duration: int = bounded(
        simulation_resolvers.SHOCK_DURATION, default=10, description="Steps a shock lasts."
    )
    shock_slippage_bps: float = bounded(
        simulation_resolvers.SHOCK_SLIPPAGE_BPS,
        default=50.0,
        description="Liquidity cost on each shocked step.",
    )

    def to_model(self) -> simulation_resolvers.SimulationRequest:
        run = self.source.backtest_run_id
        portfolio = self.source.portfolio_id
        return simulation_resolvers.SimulationRequest(
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
