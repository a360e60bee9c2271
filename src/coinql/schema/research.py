"""Parameter studies of signal strategies (sweeps, walk-forward): their results and their
input."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Self

import strawberry
from strawberry.scalars import JSON

from coinql.domain import research
from coinql.domain.backtest_config import BacktestConfig
from coinql.domain.bounds import Bounds
from coinql.domain.metrics import Metrics
from coinql.domain.strategies import MAX_WINDOW
from coinql.resolvers import backtest as backtest_resolvers
from coinql.resolvers.context import Context
from coinql.schema.bounds import bounded
from coinql.schema.enums import FillPrice, Interval, SplitMode
from coinql.schema.nodes import OwnedNode
from coinql.schema.scalars import finite, moment, to_millis
from coinql.schema.strategies import ExpressionInput
from coinql.store import runs as run_store

# A grid value is a window, a threshold or an RSI level: no strategy takes more (each
# combination is then checked as a strategy).
GRID_VALUE = Bounds(-MAX_WINDOW, MAX_WINDOW)


@strawberry.type
class StudyMetrics:
    total_return: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float | None
    trade_count: int | None

    @classmethod
    def from_model(cls, metrics: Metrics) -> Self:
        return cls(
            total_return=metrics.total_return,
            sharpe=metrics.sharpe,
            sortino=metrics.sortino,
            calmar=metrics.calmar,
            max_drawdown=metrics.max_drawdown,
            trade_count=metrics.trade_count,
        )


class StudyRunNode(OwnedNode):
    """A node backed by a stored study run (a sweep or a walk-forward)."""

    @staticmethod
    async def load_owned(context: Context, run_id: uuid.UUID) -> Any:
        return await backtest_resolvers.get_study_run(context, run_id=run_id)


@strawberry.type
class SweepRow:
    params: JSON
    metrics: StudyMetrics


@strawberry.type(description="Every combination of a parameter grid, and the best one.")
class SweepRun(StudyRunNode):
    metric: str
    rows: list[SweepRow]
    best: SweepRow | None
    model: strawberry.Private[run_store.StudyRun]

    @classmethod
    def from_model(cls, run: run_store.StudyRun) -> Self:
        found = run_store.sweep_of(run)

        def row(item: research.SweepRow) -> SweepRow:
            return SweepRow(params=JSON(item.params), metrics=StudyMetrics.from_model(item.metrics))

        return cls(
            metric=found.metric,
            rows=[row(item) for item in found.rows],
            best=row(found.best) if found.best else None,
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
class WalkForwardRun(StudyRunNode):
    metric: str
    decay: float | None = strawberry.field(description="Mean OOS metric / mean IS metric.")
    splits: list[WalkForwardSplit]
    model: strawberry.Private[run_store.StudyRun]

    @classmethod
    def from_model(cls, run: run_store.StudyRun) -> Self:
        found = run_store.walk_forward_of(run)
        return cls(
            metric=found.metric,
            decay=finite(found.decay),
            splits=[
                WalkForwardSplit(
                    train_start=moment(window.train[0]),
                    train_end=moment(window.train[1]),
                    test_start=moment(window.test[0]),
                    test_end=moment(window.test[1]),
                    params=JSON(window.params),
                    in_sample=StudyMetrics.from_model(window.in_sample),
                    out_of_sample=StudyMetrics.from_model(window.out_of_sample),
                )
                for window in found.windows
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
    expression: ExpressionInput | None = strawberry.field(
        default=None,
        description='With strategy "expression": its entry and exit; the grid names its'
        " parameters p1, p2, ... (those not in the grid keep the values given here).",
    )
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
            fixed=self.expression.params() if self.expression else {},
            metric=self.metric,
            config=BacktestConfig(
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
