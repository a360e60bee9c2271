"""Backtests and studies queued as jobs, the jobs' queries, backtests of uploaded files, and
the run registry's queries. The types of a finished run are in `backtest_runs`, of a job in
`jobs`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

import strawberry
from strawberry.file_uploads import Upload
from strawberry.types import Info

from coinql.domain import backtest, errors
from coinql.domain.backtest_config import BacktestConfig
from coinql.resolvers import backtest as backtest_resolvers
from coinql.resolvers import jobs as jobs_resolvers
from coinql.resolvers import simulation as simulation_resolvers
from coinql.resolvers.context import Context
from coinql.resolvers.strategies import StrategyInput
from coinql.schema.backtest_runs import BacktestMetrics, BacktestRun, BacktestTrade
from coinql.schema.bounds import PageSizeArgument, bounded
from coinql.schema.enums import Direction, FillPrice, Interval, JobStatus, Sizing
from coinql.schema.errors import (
    Error,
    ImportRejected,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    naming,
)
from coinql.schema.jobs import Job, QuotaExceeded
from coinql.schema.nodes import Connection, Deleted, DeleteResult, decode_id, offset_after
from coinql.schema.performance import Series
from coinql.schema.permissions import IsAuthenticated
from coinql.schema.research import StudyInput
from coinql.schema.scalars import from_millis, read_upload, to_millis
from coinql.schema.simulation import SimulationInput
from coinql.schema.strategies import StrategyKindInput


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
            config=BacktestConfig(
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
        return await Job.owned(info, id)

    @strawberry.field(
        description="The caller's jobs, newest first.", permission_classes=[IsAuthenticated]
    )
    async def jobs(
        self,
        info: Info[Context, None],
        status: JobStatus | None = None,
        first: PageSizeArgument = 20,
    ) -> list[Job] | None:
        found = await jobs_resolvers.list_jobs(info.context, status=status, first=first)
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
        return Connection[BacktestRun].from_rows(
            found, BacktestRun.from_model, first=first, offset=offset
        )

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def backtest_run(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> BacktestRun | None:
        return await BacktestRun.owned(info, id)

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
        job = await simulation_resolvers.run_simulation(info.context, input.to_model())
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
            trades=[BacktestTrade.from_model(row) for row in found.trades],
        )

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def cancel_job(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> CancelJobResult | None:
        job = await jobs_resolvers.cancel_job(info.context, job_id=decode_id(id, "Job"))
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
