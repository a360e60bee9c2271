"""Backtests as jobs, the jobs themselves, and the run registry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Self

import numpy as np
import strawberry
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON
from strawberry.types import Info

from coinql.domain import backtest, errors
from coinql.domain import performance as pf
from coinql.domain.bounds import Bounds
from coinql.domain.errors import NotFound as NotFoundError
from coinql.domain.tearsheet import ReturnStream
from coinql.resolvers import backtest as backtest_resolvers
from coinql.resolvers.benchmarks import benchmark_loader
from coinql.resolvers.context import Context
from coinql.resolvers.strategies import StrategyInput
from coinql.schema.bounds import (
    PageSizeArgument,
    RiskFreeRateArgument,
    bounded,
    bounded_argument,
)
from coinql.schema.enums import (
    Direction,
    ExitReason,
    FillPrice,
    Interval,
    JobKind,
    JobStatus,
    Sizing,
)
from coinql.schema.errors import (
    Error,
    ImportRejected,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    naming,
)
from coinql.schema.nodes import (
    Connection,
    Deleted,
    DeleteResult,
    OwnedNode,
    decode_id,
    offset_after,
)
from coinql.schema.performance import Performance, Series
from coinql.schema.permissions import IsAuthenticated
from coinql.schema.research import (
    SimulationInput,
    SimulationRun,
    StudyInput,
    SweepRun,
    WalkForwardRun,
)
from coinql.schema.scalars import (
    FloatArray,
    TimestampArray,
    finite,
    from_millis,
    read_upload,
    to_millis,
)
from coinql.schema.strategies import StrategyKindInput
from coinql.store import jobs as job_store


@strawberry.type(description="Too few candles for the strategy: what is needed and what exists.")
class InsufficientData(Error):
    required: int
    received: int
    lookback: int
    first: datetime | None = strawberry.field(description="The first candle available.")
    last: datetime | None
    suggested_start: datetime | None = strawberry.field(
        description="A start that leaves room for the lookback, when the data has it."
    )

    @classmethod
    def from_exception(cls, error: backtest.InsufficientData) -> Self:
        return cls(
            message=error.message,
            required=error.required,
            received=error.received,
            lookback=error.lookback,
            first=from_millis(error.first),
            last=from_millis(error.last),
            suggested_start=from_millis(error.suggested_start),
        )


@strawberry.type(
    description="As many jobs queued or running as a user may have: one must end (or be"
    " cancelled) before another is accepted."
)
class QuotaExceeded(Error):
    max_jobs: int = strawberry.field(
        description="Jobs a user may have queued or running (COINQL_MAX_JOBS_PER_USER)."
    )
    active_jobs: int = strawberry.field(description="The caller's jobs queued or running now.")
    queued_jobs: int
    running_jobs: int
    max_running_jobs: int = strawberry.field(
        description="Of those, how many run at once (COINQL_MAX_RUNNING_JOBS_PER_USER); the"
        " others wait QUEUED."
    )

    @classmethod
    def from_exception(cls, error: errors.QuotaExceeded) -> Self:
        return cls(
            message=error.message,
            max_jobs=error.max_jobs,
            active_jobs=error.queued + error.running,
            queued_jobs=error.queued,
            running_jobs=error.running,
            max_running_jobs=error.max_running,
        )


@strawberry.type
class RegimeStats:
    regime: str = strawberry.field(description='e.g. "volatility:2" (HIGH) or "trend:1" (UP).')
    periods: int
    total_return: float | None
    sharpe: float | None


@strawberry.type(description="Headline metrics; conventions as in Performance.")
class BacktestMetrics:
    total_return: float | None
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float | None
    trade_count: int
    win_rate: float | None = strawberry.field(description="Share of trades with a profit.")
    exposure: float = strawberry.field(description="Share of bars with a position.")
    turnover: float | None = strawberry.field(description="Traded notional / mean equity / year.")
    by_regime: list[RegimeStats]

    @classmethod
    def from_model(cls, metrics: dict[str, Any]) -> Self:
        return cls(
            total_return=finite(metrics.get("total_return")),
            cagr=finite(metrics.get("cagr")),
            volatility=finite(metrics.get("volatility")),
            sharpe=finite(metrics.get("sharpe")),
            sortino=finite(metrics.get("sortino")),
            calmar=finite(metrics.get("calmar")),
            max_drawdown=finite(metrics.get("max_drawdown")),
            trade_count=int(metrics.get("trade_count", 0)),
            win_rate=finite(metrics.get("win_rate")),
            exposure=float(metrics.get("exposure", 0.0)),
            turnover=finite(metrics.get("turnover")),
            by_regime=[
                RegimeStats(
                    regime=name,
                    periods=int(stats["periods"]),
                    total_return=finite(stats.get("total_return")),
                    sharpe=finite(stats.get("sharpe")),
                )
                for name, stats in sorted(metrics.get("by_regime", {}).items())
            ],
        )


@strawberry.type
class BacktestTrade:
    symbol: str
    side: str = strawberry.field(description="LONG or SHORT.")
    entry_time: datetime
    exit_time: datetime
    entry_price: float
    exit_price: float
    quantity: float
    pnl: float = strawberry.field(description="Net of both fees.")
    return_pct: float
    fees: float
    mae: float = strawberry.field(description="Maximum adverse excursion, a fraction.")
    mfe: float = strawberry.field(description="Maximum favourable excursion, a fraction.")
    duration_periods: int
    exit_reason: ExitReason

    @classmethod
    def from_model(cls, row: dict[str, Any]) -> Self:
        return cls(
            symbol=row["symbol"],
            side="LONG" if row["side"] == 1 else "SHORT",
            entry_time=datetime.fromtimestamp(row["entry_time"] / 1000, UTC),
            exit_time=datetime.fromtimestamp(row["exit_time"] / 1000, UTC),
            entry_price=row["entry_price"],
            exit_price=row["exit_price"],
            quantity=row["quantity"],
            pnl=row["pnl"],
            return_pct=row["return_pct"],
            fees=row["fees"],
            mae=row["mae"],
            mfe=row["mfe"],
            duration_periods=row["duration"],
            exit_reason=ExitReason(row["exit_reason"]),
        )


@strawberry.type
class PositionSeries:
    symbol: str
    timestamps: TimestampArray
    values: FloatArray


@strawberry.type
class BenchmarkSummary:
    symbol: str
    total_return: float | None
    cagr: float | None
    sharpe: float | None
    max_drawdown: float | None
    volatility: float | None


@strawberry.type(description="A finished backtest in the registry.")
class BacktestRun(OwnedNode):
    name: str
    created_at: datetime
    code_version: str
    input_hash: str = strawberry.field(description="SHA-256 of the canonical input.")
    input: JSON
    model: strawberry.Private[job_store.BacktestRun]

    @classmethod
    def from_model(cls, run: job_store.BacktestRun) -> Self:
        return cls(
            name=run.name,
            created_at=run.created_at,
            code_version=run.code_version,
            input_hash=run.input_hash,
            input=JSON(run.input),
            model=run,
        )

    @staticmethod
    async def load_owned(context: Context, run_id: uuid.UUID) -> Any:
        return await backtest_resolvers.get_backtest_run(context, run_id=run_id)

    @property
    def _timestamps(self) -> Any:
        return np.frombuffer(self.model.timestamps, dtype=np.int64)

    @property
    def _equity(self) -> Any:
        return np.frombuffer(self.model.equity, dtype=np.float64)

    @strawberry.field
    def metrics(self) -> BacktestMetrics:
        return BacktestMetrics.from_model(self.model.metrics)

    @strawberry.field(description="Equity after each bar's close.")
    def equity(self) -> Series:
        return Series(timestamps=self._timestamps, values=self._equity)

    @strawberry.field(
        description="Per symbol: units held (signal books) or weights (allocation books)."
    )
    def positions(self) -> list[PositionSeries]:
        if self.model.positions is None:
            return []
        symbols = list(self.model.input["symbols"])
        table = np.frombuffer(self.model.positions, dtype=np.float64).reshape(-1, len(symbols))
        return [
            PositionSeries(symbol=symbol, timestamps=self._timestamps, values=table[:, column])
            for column, symbol in enumerate(symbols)
        ]

    @strawberry.field(description="Buy and hold of the benchmark (BTC) over the same bars.")
    def benchmark(self) -> BenchmarkSummary | None:
        found = self.model.metrics.get("benchmark")
        if not found:
            return None
        return BenchmarkSummary(
            symbol=found["symbol"],
            total_return=finite(found.get("total_return")),
            cagr=finite(found.get("cagr")),
            sharpe=finite(found.get("sharpe")),
            max_drawdown=finite(found.get("max_drawdown")),
            volatility=finite(found.get("volatility")),
        )

    @strawberry.field(description="Trades in entry order.")
    def trades(
        self,
        first: Annotated[int, bounded_argument(Bounds(1, 10_000))] = 100,
        offset: Annotated[int, bounded_argument(Bounds(0, 2**31 - 1))] = 0,
    ) -> list[BacktestTrade] | None:
        return [BacktestTrade.from_model(row) for row in self.model.trades[offset : offset + first]]

    @strawberry.field(description="The full tear sheet of the equity curve.")
    def performance(
        self, info: Info[Context, None], risk_free_rate: RiskFreeRateArgument = 0.0
    ) -> Performance | None:
        timestamps, equity = job_store.equity_of(self.model)
        interval = Interval(self.model.input["interval"])
        stream = ReturnStream(
            label=self.model.name,
            interval=interval,
            timestamps=timestamps[1:],
            returns=pf.period_returns(equity),
            periods_per_year=float(self.model.input["config"]["periods_per_year"]),
            risk_free_rate=risk_free_rate,
        )
        start = int(timestamps[0]) if timestamps.size else None
        end = int(timestamps[-1]) if timestamps.size else None
        benchmarks = benchmark_loader(info.context, interval=interval, start=start, end=end)
        return Performance.from_model(stream, benchmarks)


JobResult = Annotated[
    BacktestRun | SimulationRun | SweepRun | WalkForwardRun, strawberry.union("JobResult")
]


@strawberry.type(description="Work running in the background. Progress is also a subscription.")
class Job(OwnedNode):
    kind: JobKind
    status: JobStatus
    progress: float = strawberry.field(description="0..1")
    stage: str
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model: strawberry.Private[job_store.Job]

    @classmethod
    def from_model(cls, job: job_store.Job) -> Self:
        return cls(
            kind=JobKind(job.kind),
            status=JobStatus(job.status),
            progress=job.progress,
            stage=job.stage,
            error=job.error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            model=job,
        )

    @staticmethod
    async def load_owned(context: Context, job_id: uuid.UUID) -> Any:
        return await backtest_resolvers.get_job(context, job_id=job_id)

    @strawberry.field(description="The run it produced, once SUCCEEDED.")
    async def result(self, info: Info[Context, None]) -> JobResult | None:
        result_id = self.model.result_id
        if result_id is None:
            return None
        kind = job_store.JobKind(self.model.kind)
        if kind is job_store.JobKind.BACKTEST:
            run = await backtest_resolvers.get_backtest_run(info.context, run_id=result_id)
            return BacktestRun.from_model(run)
        if kind is job_store.JobKind.SIMULATION:
            simulated = await backtest_resolvers.get_simulation_run(info.context, run_id=result_id)
            return SimulationRun.from_model(simulated) if simulated else None
        study = await backtest_resolvers.get_study_run(info.context, run_id=result_id)
        if study is None:
            return None
        if kind is job_store.JobKind.SWEEP:
            return SweepRun.from_model(study)
        return WalkForwardRun.from_model(study)


@strawberry.input
class BacktestInput:
    symbols: list[str] = strawberry.field(description="Equal shares of the capital each.")
    interval: Interval = Interval.D1
    start: datetime | None = None
    end: datetime | None = None
    strategy: StrategyKindInput | None = None
    strategy_id: strawberry.ID | None = strawberry.field(default=None, description="A saved one.")
    name: str | None = None
    initial_capital: float = bounded(backtest_resolvers.INITIAL_CAPITAL, default=10_000.0)
    fee_bps: float = bounded(backtest_resolvers.FEE_BPS, default=0.0)
    slippage_bps: float = bounded(backtest_resolvers.SLIPPAGE_BPS, default=0.0)
    slippage_range: float = bounded(
        backtest_resolvers.SLIPPAGE_RANGE,
        default=0.0,
        description="Extra slippage as a fraction of the bar's high - low.",
    )
    fill_price: FillPrice = FillPrice.NEXT_OPEN
    direction: Direction = Direction.LONG_ONLY
    sizing: Sizing = Sizing.ALL_IN
    fraction: float = bounded(
        backtest_resolvers.FRACTION, default=1.0, description="For FIXED_FRACTION."
    )
    volatility_target: float = bounded(
        backtest_resolvers.VOLATILITY_TARGET,
        default=0.5,
        description="For VOLATILITY_TARGET, annual.",
    )
    max_leverage: float = bounded(backtest_resolvers.MAX_LEVERAGE, default=1.0)
    stop_loss: float | None = bounded(
        backtest_resolvers.STOP_LOSS,
        default=None,
        description="A fall from the entry price, e.g. 0.1.",
    )
    take_profit: float | None = bounded(
        backtest_resolvers.TAKE_PROFIT,
        default=None,
        description="A rise from the entry price, e.g. 0.2.",
    )

    def to_model(self) -> backtest_resolvers.BacktestRequest:
        strategy = None
        if self.strategy is not None:
            kind, params = self.strategy.chosen()
            strategy = StrategyInput(name=self.name or kind, kind=kind, params=params)
        return backtest_resolvers.BacktestRequest(
            symbols=self.symbols,
            interval=self.interval,
            start=to_millis(self.start),
            end=to_millis(self.end),
            strategy=strategy,
            strategy_id=decode_id(self.strategy_id, "Strategy") if self.strategy_id else None,
            name=self.name,
            config=backtest.BacktestConfig(
                initial_capital=self.initial_capital,
                fee_bps=self.fee_bps,
                slippage_bps=self.slippage_bps,
                slippage_range=self.slippage_range,
                fill=self.fill_price,
                direction=self.direction,
                sizing=self.sizing,
                fraction=self.fraction,
                volatility_target=self.volatility_target,
                max_leverage=self.max_leverage,
                stop_loss=self.stop_loss,
                take_profit=self.take_profit,
                periods_per_year=self.interval.periods_per_year,
            ),
        )


@strawberry.input
class BacktestRunFilter:
    name_contains: str | None = None
    input_hash: str | None = None


@strawberry.type(description="A backtest of uploaded candles; nothing was stored.")
class FileBacktestResult:
    symbol: str
    interval: Interval
    metrics: BacktestMetrics
    equity: Series
    trades: list[BacktestTrade]


FileBacktestOutcome = Annotated[
    FileBacktestResult | ImportRejected | InvalidInput | InsufficientData | NotAuthenticated,
    strawberry.union("FileBacktestOutcome"),
]


RunBacktestResult = Annotated[
    Job | InvalidInput | InsufficientData | QuotaExceeded | NotFound | NotAuthenticated,
    strawberry.union("RunBacktestResult"),
]
RunSimulationResult = Annotated[
    Job | InvalidInput | QuotaExceeded | NotFound | NotAuthenticated,
    strawberry.union("RunSimulationResult"),
]
CancelJobResult = Annotated[Job | NotFound | NotAuthenticated, strawberry.union("CancelJobResult")]


@strawberry.type
class BacktestQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def job(self, info: Info[Context, None], id: strawberry.ID) -> Job | None:
        try:
            job_id = decode_id(id, "Job")
        except NotFoundError:
            return None
        found = await backtest_resolvers.get_job(info.context, job_id=job_id)
        return Job.from_model(found) if found else None

    @strawberry.field(
        description="The caller's jobs, newest first.", permission_classes=[IsAuthenticated]
    )
    async def jobs(
        self,
        info: Info[Context, None],
        status: JobStatus | None = None,
        first: PageSizeArgument = 20,
    ) -> list[Job] | None:
        found = await backtest_resolvers.list_jobs(info.context, status=status, first=first)
        return [Job.from_model(job) for job in found]

    @strawberry.field(
        description="The run registry, newest first.", permission_classes=[IsAuthenticated]
    )
    async def backtest_runs(
        self,
        info: Info[Context, None],
        first: PageSizeArgument = 20,
        after: str | None = None,
        filter: BacktestRunFilter | None = None,
    ) -> Connection[BacktestRun] | None:
        offset = offset_after(after)
        found = await backtest_resolvers.list_backtest_runs(
            info.context,
            first=first + 1,
            offset=offset,
            name_contains=filter.name_contains if filter else None,
            input_hash=filter.input_hash if filter else None,
        )
        return Connection[BacktestRun].page(
            [BacktestRun.from_model(run) for run in found[:first]],
            offset=offset,
            has_next_page=len(found) > first,
        )

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def backtest_run(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> BacktestRun | None:
        try:
            run = await backtest_resolvers.get_backtest_run(
                info.context, run_id=decode_id(id, "BacktestRun")
            )
        except NotFoundError:
            return None
        return BacktestRun.from_model(run)

    @strawberry.field(
        description="Runs side by side, in the order asked.", permission_classes=[IsAuthenticated]
    )
    async def compare_backtests(
        self, info: Info[Context, None], ids: list[strawberry.ID]
    ) -> list[BacktestRun] | None:
        with naming("ids"):
            runs = await backtest_resolvers.compare_backtests(
                info.context, run_ids=[decode_id(run_id, "BacktestRun") for run_id in ids]
            )
        return [BacktestRun.from_model(run) for run in runs]


@strawberry.type
class BacktestMutation:
    @strawberry.mutation(
        description="Queue a backtest; follow it with job(id) or the jobProgress subscription.",
        permission_classes=[IsAuthenticated],
    )
    async def run_backtest(
        self, info: Info[Context, None], input: BacktestInput
    ) -> RunBacktestResult | None:
        job = await backtest_resolvers.run_backtest(info.context, input.to_model())
        return Job.from_model(job)

    @strawberry.mutation(
        description="Queue a parameter sweep: every combination of the grid.",
        permission_classes=[IsAuthenticated],
    )
    async def run_sweep(
        self, info: Info[Context, None], input: StudyInput
    ) -> RunBacktestResult | None:
        job = await backtest_resolvers.run_study(info.context, input.to_model(walk_forward=False))
        return Job.from_model(job)

    @strawberry.mutation(
        description="Queue a walk-forward validation over train/test windows.",
        permission_classes=[IsAuthenticated],
    )
    async def run_walk_forward(
        self, info: Info[Context, None], input: StudyInput
    ) -> RunBacktestResult | None:
        job = await backtest_resolvers.run_study(info.context, input.to_model(walk_forward=True))
        return Job.from_model(job)

    @strawberry.mutation(
        description="Queue a Monte Carlo stress run.", permission_classes=[IsAuthenticated]
    )
    async def run_simulation(
        self, info: Info[Context, None], input: SimulationInput
    ) -> RunSimulationResult | None:
        job = await backtest_resolvers.run_simulation(info.context, input.to_model())
        return Job.from_model(job)

    @strawberry.mutation(
        description="Backtest an uploaded candle file (any import format) without storing it;"
        " input.symbols is ignored.",
        permission_classes=[IsAuthenticated],
    )
    async def backtest_file(
        self,
        info: Info[Context, None],
        file: Upload,
        input: BacktestInput,
        symbol: str | None = None,
        interval: Interval | None = None,
    ) -> FileBacktestOutcome | None:
        limit = info.context.services.settings.import_max_bytes
        data = await read_upload(file, limit)
        found = await backtest_resolvers.backtest_file(
            info.context, data=data, symbol=symbol, interval=interval, request=input.to_model()
        )
        return FileBacktestResult(
            symbol=found.symbol,
            interval=found.interval,
            metrics=BacktestMetrics.from_model(found.metrics),
            equity=Series(timestamps=found.book.timestamps, values=found.book.equity),
            trades=[
                BacktestTrade.from_model({"symbol": found.symbol, **row}) for row in found.trades
            ],
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def cancel_job(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> CancelJobResult | None:
        job = await backtest_resolvers.cancel_job(info.context, job_id=decode_id(id, "Job"))
        return Job.from_model(job)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def delete_backtest_run(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeleteResult | None:
        await backtest_resolvers.delete_backtest_run(
            info.context, run_id=decode_id(id, "BacktestRun")
        )
        return Deleted(id=id)


ERROR_TYPES = [
    (backtest.InsufficientData, InsufficientData),
    (errors.QuotaExceeded, QuotaExceeded),
]
