"""Backtest and simulation jobs, and the run registry. Every read is scoped to the caller."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from coinql.domain import backtest, research, signals, simulation
from coinql.domain.bounds import Bounds
from coinql.domain.candles import Candles, Interval
from coinql.domain.errors import InvalidInput, NotFound, QuotaExceeded
from coinql.domain.strategies import SignalKind, StrategySpec
from coinql.resolvers.auth import require_user
from coinql.resolvers.context import Context
from coinql.resolvers.market import parse_upload
from coinql.resolvers.performance import offload
from coinql.resolvers.portfolio import get_portfolio, return_stream
from coinql.resolvers.strategies import StrategyInput, get_strategy, validate_strategy
from coinql.store import jobs as job_store
from coinql.store import market as market_store
from coinql.store.jobs import BacktestRun, Job, JobKind, JobStatus, SimulationRun, StudyRun

MAX_SYMBOLS = 20
MAX_PATHS = 100_000
MAX_HORIZON = 3_650
MAX_CAPITAL = 10**15
MAX_BARS = 1_000_000  # more than any series holds (a year of M1 is 525,600)

# A backtest's costs and sizing (BacktestInput, StudyInput): checked here for every caller,
# and declared on the GraphQL inputs, which refuse the same values before anything runs.
INITIAL_CAPITAL = Bounds(0, MAX_CAPITAL, low_open=True)
FEE_BPS = Bounds(0, 1_000)
SLIPPAGE_BPS = Bounds(0, 1_000)
SLIPPAGE_RANGE = Bounds(0, 1)  # a fraction of the bar's high - low
FRACTION = Bounds(0, 1, low_open=True)
VOLATILITY_TARGET = Bounds(0, 5, low_open=True)  # annual
MAX_LEVERAGE = Bounds(0, 10, low_open=True)
STOP_LOSS = Bounds(0, 1, low_open=True, high_open=True)  # a fall of the entry price
TAKE_PROFIT = Bounds(0, 100, low_open=True)  # a rise, up to 10,000 %
WALK_FORWARD_BARS = Bounds(2, MAX_BARS)

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
class BacktestRequest:
    symbols: list[str]
    interval: Interval
    start: int | None
    end: int | None
    config: backtest.BacktestConfig
    strategy: StrategyInput | None = None
    strategy_id: uuid.UUID | None = None
    name: str | None = None


async def _spec(context: Context, request: BacktestRequest) -> StrategySpec:
    if (request.strategy is None) == (request.strategy_id is None):
        raise InvalidInput("strategy", "give either strategy or strategyId")
    if request.strategy_id is not None:
        saved = await get_strategy(context, strategy_id=request.strategy_id)
        spec = StrategySpec.from_json(saved.spec)
    else:
        assert request.strategy is not None
        spec = validate_strategy(request.strategy)
    return spec


def _lookback(spec: StrategySpec) -> int:
    if spec.family == "signal":
        return signals.lookback(spec)
    return int(spec.params.get("lookback", 90))


def _check_config(config: backtest.BacktestConfig) -> None:
    _check_bounds(
        (config.initial_capital, INITIAL_CAPITAL, "initialCapital"),
        (config.fee_bps, FEE_BPS, "feeBps"),
        (config.slippage_bps, SLIPPAGE_BPS, "slippageBps"),
        (config.slippage_range, SLIPPAGE_RANGE, "slippageRange"),
        (config.fraction, FRACTION, "fraction"),
        (config.volatility_target, VOLATILITY_TARGET, "volatilityTarget"),
        (config.max_leverage, MAX_LEVERAGE, "maxLeverage"),
        (config.stop_loss, STOP_LOSS, "stopLoss"),
        (config.take_profit, TAKE_PROFIT, "takeProfit"),
    )


def _check_bounds(*checks: tuple[float | None, Bounds, str]) -> None:
    for value, bounds, name in checks:
        problem = None if value is None else bounds.problem(value)
        if problem is not None:
            raise InvalidInput(name, f"{name} {problem}, not {value}")


async def run_backtest(context: Context, request: BacktestRequest) -> Job:
    """Validate, check that the data suffices (InsufficientData otherwise), queue the job."""
    owner = (await require_user(context)).id
    symbols = [symbol.strip().upper() for symbol in request.symbols]
    if not 0 < len(symbols) <= MAX_SYMBOLS or len(set(symbols)) != len(symbols):
        raise InvalidInput("symbols", f"give 1 to {MAX_SYMBOLS} distinct symbols")
    _check_config(request.config)
    spec = await _spec(context, request)
    needed = _lookback(spec) + 2
    async with context.services.reader() as session:
        assets = await market_store.get_assets(session, symbols=symbols)
        unknown = [symbol for symbol in symbols if symbol not in assets]
        if unknown:
            raise InvalidInput("symbols", f"unknown symbols: {', '.join(unknown)}")
        for symbol in symbols:
            candles = await market_store.load_candles(
                session,
                asset=assets[symbol],
                interval=request.interval,
                start=request.start,
                end=request.end,
            )
            if len(candles) < needed:
                everything = await market_store.load_candles(
                    session, asset=assets[symbol], interval=request.interval, start=None, end=None
                )
                raise _insufficient(request, needed, len(candles), everything.timestamps)
    job_input = {
        "symbols": symbols,
        "interval": request.interval.value,
        "start": request.start,
        "end": request.end,
        "strategy": spec.to_json(),
        "config": request.config.to_json(),
        "name": (request.name or spec.kind)[:100],
        "supply": {
            symbol: asset.circulating_supply
            for symbol, asset in assets.items()
            if asset.circulating_supply
        },
    }
    return await submit(context, owner, JobKind.BACKTEST, job_input)


async def submit(
    context: Context, owner: uuid.UUID, kind: JobKind, job_input: dict[str, Any]
) -> Job:
    """Store a QUEUED job within the owner's quota and hand it to the queue (the process pool
    or arq workers). The count and the insert hold the owner's lock together, so concurrent
    submissions (a batch, aliases, parallel requests, several replicas) cannot pass it."""
    settings = context.services.settings
    async with context.services.transaction() as session:
        await job_store.lock_owner(session, owner_id=owner)
        counts = await job_store.count_active(session, owner_id=owner)
        if counts.active >= settings.max_jobs_per_user:
            raise QuotaExceeded(
                f"you have {counts.active} jobs queued or running, the most a user may have"
                f" (COINQL_MAX_JOBS_PER_USER={settings.max_jobs_per_user}); wait for one to"
                " end or cancel one",
                max_jobs=settings.max_jobs_per_user,
                max_running=settings.max_running_jobs_per_user,
                queued=counts.queued,
                running=counts.running,
            )
        job = await job_store.add_job(
            session, owner_id=owner, kind=kind, job_input=job_input, now=context.services.now()
        )
    context.services.metrics.jobs.labels(kind.value, JobStatus.QUEUED.value).inc()
    await context.services.jobs.enqueue(job.id)
    return job


def _insufficient(
    request: BacktestRequest, needed: int, received: int, available: Any
) -> backtest.InsufficientData:
    """What is wrong, and a start that would give the lookback room (when the data has it)."""
    first = int(available[0]) if available.size else None
    last = int(available[-1]) if available.size else None
    suggested = None
    if available.size >= needed and last is not None and first is not None:
        end = request.end if request.end is not None else last
        suggested = max(first, end - (needed + 30) * request.interval.milliseconds)
    return backtest.InsufficientData(
        required=needed,
        received=received,
        lookback=needed - 2,
        first=first,
        last=last,
        suggested_start=suggested,
    )


@dataclass(frozen=True)
class StudyRequest:
    symbol: str
    interval: Interval
    start: int | None
    end: int | None
    kind: str
    grid: dict[str, list[float]]
    metric: str
    config: backtest.BacktestConfig
    walk_forward: bool = False
    train_bars: int = 365
    test_bars: int = 90
    mode: research.SplitMode = research.SplitMode.ROLLING


async def run_study(context: Context, request: StudyRequest) -> Job:
    """Queue a parameter sweep, or a walk-forward validation, of a signal strategy."""
    owner = (await require_user(context)).id
    _check_config(request.config)
    if request.kind not in SignalKind._value2member_map_:
        raise InvalidInput("strategy", f"strategy must be one of {', '.join(SignalKind)}")
    if request.metric not in research.METRICS:
        raise InvalidInput("metric", f"metric must be one of {', '.join(research.METRICS)}")
    grid = {
        name: [int(v) if float(v).is_integer() else v for v in values]
        for name, values in request.grid.items()
    }
    combinations = research.combinations(request.kind, grid)
    symbol = request.symbol.strip().upper()
    async with context.services.reader() as session:
        asset = await market_store.get_asset(session, symbol=symbol)
        if asset is None:
            raise InvalidInput("symbol", f"unknown symbol {symbol}")
        candles = await market_store.load_candles(
            session, asset=asset, interval=request.interval, start=request.start, end=request.end
        )
    longest = max(signals.lookback(StrategySpec(request.kind, params)) for params in combinations)
    needed = (request.train_bars + request.test_bars) if request.walk_forward else longest + 2
    if len(candles) < needed:
        raise _insufficient(
            BacktestRequest([symbol], request.interval, request.start, request.end, request.config),
            needed,
            len(candles),
            candles.timestamps,
        )
    if request.walk_forward:
        research.splits(
            len(candles), train=request.train_bars, test=request.test_bars, mode=request.mode
        )
    job_input = {
        "symbols": [symbol],
        "interval": request.interval.value,
        "start": request.start,
        "end": request.end,
        "kind": request.kind,
        "grid": grid,
        "metric": request.metric,
        "config": request.config.to_json(),
        "train_bars": request.train_bars,
        "test_bars": request.test_bars,
        "mode": request.mode.value,
    }
    return await submit(
        context, owner, JobKind.WALK_FORWARD if request.walk_forward else JobKind.SWEEP, job_input
    )


async def get_study_run(context: Context, *, run_id: uuid.UUID) -> StudyRun | None:
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await job_store.get_study_run(session, run_id=run_id, owner_id=owner)


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
    _check_bounds(
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
        stamps = np.frombuffer(run.timestamps, dtype=np.int64)
        equity = np.frombuffer(run.equity, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            returns = np.diff(equity) / equity[:-1]
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
    clean = returns[np.isfinite(returns)]
    if clean.size < max(2, config.block_length):
        raise InvalidInput(
            "source", f"the source has {clean.size} returns; at least {config.block_length} needed"
        )
    job_input = {
        "source": source,
        "method": request.method.value,
        "config": replace(config, method=request.method).to_json(),
        "returns": clean.tolist(),
        "last_timestamp": int(stamps[-1]) if stamps.size else 0,
        "step_ms": step,
    }
    return await submit(context, owner, JobKind.SIMULATION, job_input)


async def get_job(context: Context, *, job_id: uuid.UUID) -> Job | None:
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await job_store.get_job(session, job_id=job_id, owner_id=owner)


async def list_jobs(context: Context, *, status: JobStatus | None, first: int) -> list[Job]:
    if not 0 < first <= 500:
        raise InvalidInput("first", "first must be between 1 and 500")
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await job_store.list_jobs(session, owner_id=owner, status=status, limit=first)


async def cancel_job(context: Context, *, job_id: uuid.UUID) -> Job:
    """Cancel a queued or running job; a finished one is returned as it is."""
    owner = (await require_user(context)).id
    async with context.services.transaction() as session:
        job = await job_store.get_job(session, job_id=job_id, owner_id=owner)
        if job is None:
            raise NotFound(f"no job {job_id}")
        await job_store.finish(
            session, job_id=job_id, status=JobStatus.CANCELLED, now=context.services.now()
        )
    async with context.services.reader() as session:
        found = await job_store.get_job(session, job_id=job_id, owner_id=owner)
    assert found is not None
    return found


async def get_backtest_run(context: Context, *, run_id: uuid.UUID) -> BacktestRun:
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        run = await job_store.get_backtest_run(session, run_id=run_id, owner_id=owner)
    if run is None:
        raise NotFound(f"no backtest run {run_id}")
    return run


async def get_simulation_run(context: Context, *, run_id: uuid.UUID) -> SimulationRun | None:
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await job_store.get_simulation_run(session, run_id=run_id, owner_id=owner)


async def list_backtest_runs(
    context: Context, *, first: int, offset: int, name_contains: str | None, input_hash: str | None
) -> list[BacktestRun]:
    if not 0 < first <= 501:
        raise InvalidInput("first", "first must be between 1 and 500")
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await job_store.list_backtest_runs(
            session,
            owner_id=owner,
            offset=offset,
            limit=first,
            name_contains=name_contains,
            input_hash=input_hash,
        )


async def compare_backtests(context: Context, *, run_ids: list[uuid.UUID]) -> list[BacktestRun]:
    if not 1 <= len(run_ids) <= 50:
        raise InvalidInput("ids", "compare 1 to 50 runs")
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        found = await job_store.get_backtest_runs(session, run_ids=run_ids, owner_id=owner)
    missing = [str(run_id) for run_id in run_ids if run_id not in found]
    if missing:
        raise NotFound(f"no backtest runs {', '.join(missing)}")
    return [found[run_id] for run_id in run_ids]


async def delete_backtest_run(context: Context, *, run_id: uuid.UUID) -> None:
    owner = (await require_user(context)).id
    async with context.services.transaction() as session:
        run = await job_store.get_backtest_run(session, run_id=run_id, owner_id=owner)
        if run is None:
            raise NotFound(f"no backtest run {run_id}")
        await job_store.delete_backtest_run(session, run=run)


@dataclass(frozen=True)
class FileBacktest:
    symbol: str
    interval: Interval
    book: backtest.BookResult
    metrics: dict[str, Any]
    trades: list[dict[str, object]]


async def backtest_file(
    context: Context,
    *,
    data: bytes,
    symbol: str | None,
    interval: Interval | None,
    request: BacktestRequest,
) -> FileBacktest:
    """Backtest candles from an uploaded file without storing them (one-off research). The
    cheap checks come first, then the file is parsed (off the event loop)."""
    await require_user(context)
    limit = context.services.settings.import_max_bytes
    if len(data) > limit:
        raise InvalidInput("file", f"file is larger than the limit of {limit:,} bytes")
    _check_config(request.config)
    spec = await _spec(context, request)
    if spec.family != "signal":
        raise InvalidInput("strategy", "a file holds one symbol: use a signal strategy")
    parsed = await parse_upload(
        data,
        symbol=symbol,
        interval=interval,
        max_rows=context.services.settings.max_upload_rows,
    )
    candles = parsed.candles
    needed = _lookback(spec) + 2
    if len(candles) < needed:
        raise _insufficient(request, needed, len(candles), candles.timestamps)
    config = replace(request.config, periods_per_year=parsed.interval.periods_per_year)
    book, metrics, trades = await offload(
        len(candles) * 20, _backtest_candles, spec, parsed.symbol, candles, config
    )
    return FileBacktest(parsed.symbol, parsed.interval, book, metrics, trades)


def _backtest_candles(
    spec: StrategySpec, symbol: str, candles: Candles, config: backtest.BacktestConfig
) -> tuple[backtest.BookResult, dict[str, Any], list[dict[str, object]]]:
    """The book, its summary and its trades: all of it in the worker thread, as a million
    bars' summary and trade table are a second of CPU too."""
    book = backtest.run_book(spec, {symbol: candles}, config)
    trades = backtest.trade_table([trade for _, trade in book.trades], book.timestamps)
    return book, backtest.summary(book, config.periods_per_year), trades
