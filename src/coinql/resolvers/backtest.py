"""Backtests and parameter studies as jobs, backtests of uploaded files, and the run registry.
Every read is scoped to the caller."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from coinql.domain import backtest, book, research, signals
from coinql.domain.backtest_config import BacktestConfig
from coinql.domain.book import BookResult, TradeRow
from coinql.domain.bounds import Bounds
from coinql.domain.candles import Candles, Interval
from coinql.domain.errors import InvalidInput, NotFound
from coinql.domain.expression_syntax import parse
from coinql.domain.metrics import Metrics
from coinql.domain.runs import BacktestJob, StudyJob
from coinql.domain.strategies import SignalKind, StrategySpec
from coinql.resolvers.auth import require_user
from coinql.resolvers.context import Context
from coinql.resolvers.jobs import submit
from coinql.resolvers.market import parse_upload
from coinql.resolvers.owned import delete_owned, get_owned
from coinql.resolvers.performance import offload
from coinql.resolvers.strategies import StrategyInput, get_strategy, validate_strategy
from coinql.store import market as market_store
from coinql.store import runs as run_store
from coinql.store.jobs import Job, JobKind
from coinql.store.runs import BacktestRun, StudyRun

MAX_SYMBOLS = 20
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


@dataclass(frozen=True)
class BacktestRequest:
    symbols: list[str]
    interval: Interval
    start: int | None
    end: int | None
    config: BacktestConfig
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


def _check_config(config: BacktestConfig) -> None:
    check_bounds(
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


def check_bounds(*checks: tuple[float | None, Bounds, str]) -> None:
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
    job = BacktestJob(
        symbols=symbols,
        interval=request.interval,
        start=request.start,
        end=request.end,
        strategy=spec,
        config=request.config,
        name=(request.name or spec.kind)[:100],
        supply={
            symbol: asset.circulating_supply
            for symbol, asset in assets.items()
            if asset.circulating_supply
        },
    )
    return await submit(context, owner, JobKind.BACKTEST, job)


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
    config: BacktestConfig
    # What every combination shares (an expression's entry and exit, its other parameters).
    fixed: dict[str, Any] = field(default_factory=dict)
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
    grid |= {name: [value] for name, value in request.fixed.items() if name not in grid}
    if request.kind == SignalKind.EXPRESSION.value:
        if "entry" not in grid:
            raise InvalidInput("expression", 'strategy "expression" needs expression {entry exit}')
        for name in ("entry", "exit"):  # its syntax, named as the input has it, with the column
            parse(str(request.fixed.get(name, "")), f"expression.{name}")
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
    job = StudyJob(
        symbol=symbol,
        interval=request.interval,
        start=request.start,
        end=request.end,
        kind=request.kind,
        grid=grid,
        metric=request.metric,
        config=request.config,
        train_bars=request.train_bars,
        test_bars=request.test_bars,
        mode=request.mode,
    )
    return await submit(
        context, owner, JobKind.WALK_FORWARD if request.walk_forward else JobKind.SWEEP, job
    )


async def get_study_run(context: Context, *, run_id: uuid.UUID) -> StudyRun | None:
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await run_store.get_study_run(session, run_id=run_id, owner_id=owner)


async def get_backtest_run(context: Context, *, run_id: uuid.UUID) -> BacktestRun:
    return await get_owned(
        context, partial(run_store.get_backtest_run, run_id=run_id), f"no backtest run {run_id}"
    )


async def list_backtest_runs(
    context: Context, *, first: int, offset: int, name_contains: str | None, input_hash: str | None
) -> list[BacktestRun]:
    if not 0 < first <= 501:
        raise InvalidInput("first", "first must be between 1 and 500")
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await run_store.list_backtest_runs(
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
        found = await run_store.get_backtest_runs(session, run_ids=run_ids, owner_id=owner)
    missing = [str(run_id) for run_id in run_ids if run_id not in found]
    if missing:
        raise NotFound(f"no backtest runs {', '.join(missing)}")
    return [found[run_id] for run_id in run_ids]


async def delete_backtest_run(context: Context, *, run_id: uuid.UUID) -> None:
    await delete_owned(
        context, partial(run_store.get_backtest_run, run_id=run_id), f"no backtest run {run_id}"
    )


@dataclass(frozen=True)
class FileBacktest:
    symbol: str
    interval: Interval
    book: BookResult
    metrics: Metrics
    trades: list[TradeRow]


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
    found, metrics, trades = await offload(
        len(candles) * 20, _backtest_candles, spec, parsed.symbol, candles, config
    )
    return FileBacktest(parsed.symbol, parsed.interval, found, metrics, trades)


def _backtest_candles(
    spec: StrategySpec, symbol: str, candles: Candles, config: BacktestConfig
) -> tuple[BookResult, Metrics, list[TradeRow]]:
    """The book, its summary and its trades: all of it in the worker thread, as a million
    bars' summary and trade table are a second of CPU too."""
    found = book.run_book(spec, {symbol: candles}, config)
    return found, book.summary(found, config.periods_per_year), book.trade_table(found)
