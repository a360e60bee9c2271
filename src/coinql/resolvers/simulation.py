"""Monte Carlo stress runs as jobs, of a backtest's equity or a portfolio's returns. Every
read is scoped to the caller."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from coinql.domain import simulation
from coinql.domain.bounds import Bounds
from coinql.domain.candles import Interval
from coinql.domain.errors import InvalidInput
from coinql.domain.metrics import equity_returns
from coinql.domain.runs import SimulationJob
from coinql.resolvers.auth import require_user
from coinql.resolvers.backtest import check_bounds, get_backtest_run
from coinql.resolvers.context import Context
from coinql.resolvers.jobs import submit
from coinql.resolvers.portfolio import get_portfolio, return_stream
from coinql.store import runs as run_store
from coinql.store.jobs import Job, JobKind
from coinql.store.runs import SimulationRun

MAX_PATHS = 100_000
MAX_HORIZON = 3_650

# A Monte Carlo run's parameters (SimulationInput).
PATHS = Bounds(1, MAX_PATHS)
HORIZON = Bounds(1, MAX_HORIZON)  # steps of the source's interval: ten years of days
BLOCK_LENGTH = Bounds(1, MAX_HORIZON)  # and at most the horizon
SEED = Bounds(0, 2**31 - 1)  # numpy takes any non-negative seed; GraphQL's Int ends here
RUIN_THRESHOLD = Bounds(0, 1, low_open=True, high_open=True)  # of the starting equity
LEVERAGE = Bounds(0, 100, low_open=True)
LIQUIDATION_THRESHOLD = Bounds(0, 1, high_open=True)  # of the starting equity
REGIME_WEIGHT = Bounds(1, 100)
SHOCK_PROBABILITY = Bounds(0, 1, high_open=True)  # per step
SHOCK_SIZE = Bounds(-1, 1, low_open=True, high_open=True)  # a return
SHOCK_VOLATILITY = Bounds(0, 100, low_open=True)  # a factor on returns
SHOCK_DURATION = Bounds(1, MAX_HORIZON)  # steps
SHOCK_SLIPPAGE_BPS = Bounds(0, 10_000)  # per shocked step: at most all of it


@dataclass(frozen=True)
class SimulationRequest:
    backtest_run_id: uuid.UUID | None
    portfolio_id: uuid.UUID | None
    config: simulation.SimulationConfig
    method: simulation.SimulationMethod = simulation.SimulationMethod.BLOCK_BOOTSTRAP
    extra: dict[str, Any] = field(default_factory=dict)


async def run_simulation(context: Context, request: SimulationRequest) -> Job:
    owner = (await require_user(context)).id
    config = request.config
    check_bounds(
        (config.paths, PATHS, "paths"),
        (config.horizon, HORIZON, "horizon"),
        (config.block_length, BLOCK_LENGTH, "blockLength"),
        (config.seed, SEED, "seed"),
        (config.ruin_threshold, RUIN_THRESHOLD, "ruinThreshold"),
        (config.leverage, LEVERAGE, "leverage"),
        (config.liquidation_threshold, LIQUIDATION_THRESHOLD, "liquidationThreshold"),
        (config.regime_weight, REGIME_WEIGHT, "regimeWeight"),
        (config.shock_probability, SHOCK_PROBABILITY, "shockProbability"),
        (config.shock_size, SHOCK_SIZE, "shockSize"),
        (config.shock_volatility, SHOCK_VOLATILITY, "shockVolatility"),
        (config.shock_duration, SHOCK_DURATION, "shockDuration"),
        (config.shock_slippage_bps, SHOCK_SLIPPAGE_BPS, "shockSlippageBps"),
    )
    if config.block_length > config.horizon:
        raise InvalidInput("blockLength", "blockLength must be at most the horizon")
    if (request.backtest_run_id is None) == (request.portfolio_id is None):
        raise InvalidInput("source", "give either backtestRunId or portfolioId")
    if request.backtest_run_id is not None:
        run = await get_backtest_run(context, run_id=request.backtest_run_id)
        stamps, equity = run_store.equity_of(run)
        returns = equity_returns(equity)
        step = Interval(run.input["interval"]).milliseconds
        source = {"backtest_run_id": str(run.id)}
    else:
        assert request.portfolio_id is not None
        portfolio = await get_portfolio(context, portfolio_id=request.portfolio_id)
        stream = await return_stream(
            context, portfolio, interval=Interval.D1, risk_free_rate=0.0, periods_per_year=None
        )
        stamps, returns, step = stream.timestamps, stream.returns, Interval.D1.milliseconds
        source = {"portfolio_id": str(portfolio.id)}
    job = SimulationJob.of(
        source=source,
        config=replace(config, method=request.method),
        returns=returns,
        timestamps=stamps,
        step_ms=step,
    )
    if job.returns.size < max(2, config.block_length):
        raise InvalidInput(
            "source",
            f"the source has {job.returns.size} returns; at least {config.block_length} needed",
        )
    return await submit(context, owner, JobKind.SIMULATION, job)


async def get_simulation_run(context: Context, *, run_id: uuid.UUID) -> SimulationRun | None:
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await run_store.get_simulation_run(session, run_id=run_id, owner_id=owner)
