"""Finished backtests in the run registry: their metrics, trades, positions, benchmark and
tear sheet."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from coinql.domain import trade_stats
from coinql.domain.book import TradeRow
from coinql.domain.bounds import Bounds
from coinql.domain.metrics import Metrics
from coinql.domain.tearsheet import ReturnStream
from coinql.resolvers import backtest as backtest_resolvers
from coinql.resolvers.benchmarks import benchmark_loader
from coinql.resolvers.context import Context
from coinql.schema.bounds import RiskFreeRateArgument, bounded_argument
from coinql.schema.enums import ExitReason, Interval
from coinql.schema.nodes import OwnedNode
from coinql.schema.performance import Performance, Series
from coinql.schema.scalars import FloatArray, TimestampArray, finite, moment
from coinql.store import runs as run_store


@strawberry.type
class RegimeStats:
    regime: str = strawberry.field(description='e.g. "volatility:2" (HIGH) or "trend:1" (UP).')
    periods: int
    total_return: float | None
    sharpe: float | None


@strawberry.type(description="What the trades made, and how (docs/metrics.md).")
class TradeStatistics:
    count: int
    profit_factor: float | None = strawberry.field(
        description="Sum of the winning trades' PnL / |sum of the losing ones'|."
    )
    expectancy: float | None = strawberry.field(description="Mean PnL per trade, net of fees.")
    expectancy_return: float | None = strawberry.field(description="Mean return per trade.")
    longest_winning_streak: int
    longest_losing_streak: int
    average_holding_bars: float | None = strawberry.field(description="Entry to exit.")
    best_trade: float | None = strawberry.field(description="The highest trade return.")
    worst_trade: float | None = strawberry.field(description="The lowest trade return.")

    @classmethod
    def from_model(cls, found: trade_stats.TradeStatistics) -> Self:
        return cls(
            count=found.count,
            profit_factor=finite(found.profit_factor),
            expectancy=finite(found.expectancy),
            expectancy_return=finite(found.expectancy_return),
            longest_winning_streak=found.longest_winning_streak,
            longest_losing_streak=found.longest_losing_streak,
            average_holding_bars=finite(found.average_holding_bars),
            best_trade=finite(found.best_trade),
            worst_trade=finite(found.worst_trade),
        )


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
    def from_model(cls, metrics: Metrics) -> Self:
        return cls(
            total_return=metrics.total_return,
            cagr=metrics.cagr,
            volatility=metrics.volatility,
            sharpe=metrics.sharpe,
            sortino=metrics.sortino,
            calmar=metrics.calmar,
            max_drawdown=metrics.max_drawdown,
            trade_count=metrics.trade_count or 0,
            win_rate=metrics.win_rate,
            exposure=metrics.exposure or 0.0,
            turnover=metrics.turnover,
            by_regime=[
                RegimeStats(
                    regime=name,
                    periods=stats.periods,
                    total_return=stats.total_return,
                    sharpe=stats.sharpe,
                )
                for name, stats in sorted(metrics.by_regime.items())
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
    def from_model(cls, row: TradeRow) -> Self:
        return cls(
            symbol=row.symbol,
            side="LONG" if row.side == 1 else "SHORT",
            entry_time=moment(row.entry_time),
            exit_time=moment(row.exit_time),
            entry_price=row.entry_price,
            exit_price=row.exit_price,
            quantity=row.quantity,
            pnl=row.pnl,
            return_pct=row.return_pct,
            fees=row.fees,
            mae=row.mae,
            mfe=row.mfe,
            duration_periods=row.duration,
            exit_reason=row.exit_reason,
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
    model: strawberry.Private[run_store.BacktestRun]

    @classmethod
    def from_model(cls, run: run_store.BacktestRun) -> Self:
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

    @strawberry.field
    def metrics(self) -> BacktestMetrics:
        return BacktestMetrics.from_model(run_store.metrics_of(self.model))

    @strawberry.field(description="Equity after each bar's close.")
    def equity(self) -> Series:
        timestamps, equity = run_store.equity_of(self.model)
        return Series(timestamps=timestamps, values=equity)

    @strawberry.field(
        description="Per symbol: units held (signal books) or weights (allocation books)."
    )
    def positions(self) -> list[PositionSeries]:
        found = run_store.positions_of(self.model)
        if found is None:
            return []
        return [
            PositionSeries(symbol=symbol, timestamps=found.timestamps, values=values)
            for symbol, values in found.by_symbol()
        ]

    @strawberry.field(description="Buy and hold of the benchmark (BTC) over the same bars.")
    def benchmark(self) -> BenchmarkSummary | None:
        found = run_store.metrics_of(self.model).benchmark
        if found is None:
            return None
        return BenchmarkSummary(
            symbol=found.symbol,
            total_return=found.metrics.total_return,
            cagr=found.metrics.cagr,
            sharpe=found.metrics.sharpe,
            max_drawdown=found.metrics.max_drawdown,
            volatility=found.metrics.volatility,
        )

    @strawberry.field(description="Statistics of all the run's trades.")
    def trade_statistics(self) -> TradeStatistics:
        return TradeStatistics.from_model(
            trade_stats.trade_statistics(run_store.trades_of(self.model))
        )

    @strawberry.field(description="Trades in entry order.")
    def trades(
        self,
        first: Annotated[int, bounded_argument(Bounds(1, 10_000))] = 100,
        offset: Annotated[int, bounded_argument(Bounds(0, 2**31 - 1))] = 0,
    ) -> list[BacktestTrade] | None:
        rows = run_store.trades_of(self.model, offset=offset, limit=first)
        return [BacktestTrade.from_model(row) for row in rows]

    @strawberry.field(description="The full tear sheet of the equity curve.")
    def performance(
        self, info: Info[Context, None], risk_free_rate: RiskFreeRateArgument = 0.0
    ) -> Performance | None:
        timestamps, equity = run_store.equity_of(self.model)
        interval = Interval(self.model.input["interval"])
        stream = ReturnStream.of_equity(
            self.model.name,
            timestamps,
            equity,
            interval,
            periods_per_year=float(self.model.input["config"]["periods_per_year"]),
            risk_free_rate=risk_free_rate,
        )
        start = int(timestamps[0]) if timestamps.size else None
        end = int(timestamps[-1]) if timestamps.size else None
        benchmarks = benchmark_loader(info.context, interval=interval, start=start, end=end)
        return Performance.from_model(stream, benchmarks)
