"""Performance: the tear sheet of one return stream.

`Performance` wraps a `ReturnStream` (coinql.domain.tearsheet) and asks it for each field only
when the field is selected; an undefined metric is null and `undefined` says why.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Annotated, Any, Self, TypeVar, cast

import strawberry
from strawberry import relay

from coinql.domain.bounds import Bounds
from coinql.domain.errors import InvalidInput, NotFound
from coinql.domain.performance import RELATIVE
from coinql.domain.tearsheet import ReturnStream
from coinql.resolvers.performance import Benchmark, BenchmarkLoader, KeptStream, offload
from coinql.schema.bounds import bounded_argument
from coinql.schema.enums import Interval, Period, RollingMetric, VarMethod
from coinql.schema.indicators import MAX_WINDOW
from coinql.schema.nodes import decode_uuid
from coinql.schema.risk import DEFAULT_LEVEL, Level
from coinql.schema.scalars import FloatArray, TimestampArray, finite, from_millis, moment

T = TypeVar("T")


@strawberry.type(description="A packed series.")
class Series:
    timestamps: TimestampArray
    values: FloatArray


@strawberry.type
class DrawdownPeriod:
    peak: datetime = strawberry.field(description="Last time at the high-water mark.")
    trough: datetime
    recovery: datetime | None = strawberry.field(description="Null while still under water.")
    depth: float = strawberry.field(description="Positive fraction.")
    duration_periods: int = strawberry.field(description="Peak to recovery (or to the end).")


@strawberry.type
class CalendarYear:
    year: int
    months: FloatArray = strawberry.field(description="12 compounded returns, null if empty.")
    total: float | None


@strawberry.type
class BenchmarkComparison:
    symbol: str
    observations: int
    alpha: float | None = strawberry.field(description="Annualised, geometric (empyrical).")
    beta: float | None
    correlation: float | None
    tracking_error: float | None = strawberry.field(description="Annualised.")
    information_ratio: float | None = strawberry.field(description="Annualised.")
    up_capture: float | None
    down_capture: float | None


@strawberry.type
class UndefinedMetric:
    metric: str
    reason: str


def _ratio(name: str, description: str) -> Any:
    """A Performance field reading one of `coinql.domain.tearsheet_ratios.RATIOS`."""

    def resolve(self: Performance) -> float | None:
        return self._figure(name, lambda: finite(self.stream.ratio(name)))

    return strawberry.field(resolver=resolve, description=description)


def _count(name: str, description: str) -> Any:
    def resolve(self: Performance) -> int:
        return int(self._figure(name, lambda: self.stream.ratio(name)))

    return strawberry.field(resolver=resolve, description=description)


# What one rolling metric that reads each window whole may cost (periods x window).
MAX_ROLLING_WORK = 5_000_000

BenchmarkSymbol = Annotated[
    str | None, strawberry.argument(description="An asset's symbol; or `of`.")
]
BenchmarkOf = Annotated[
    strawberry.ID | None,
    strawberry.argument(description="Or the benchmark's id: a portfolio or backtest run."),
]


def benchmark_of(symbol: str | None, of: str | None) -> Benchmark:
    """The benchmark an argument pair names; `NotFound` for an id that is not a portfolio or a
    backtest run, `InvalidInput` unless exactly one is given."""
    if of is None:
        return Benchmark(symbol=symbol)
    if symbol is not None:
        raise InvalidInput("symbol", "name one benchmark: a symbol or, in `of`, an id")
    missing = f"no portfolio or backtest run {of}"
    try:
        global_id = relay.GlobalID.from_id(of)
    except ValueError:
        raise NotFound(missing) from None
    if global_id.type_name == "Portfolio":
        return Benchmark(portfolio_id=decode_uuid(global_id, missing))
    if global_id.type_name == "BacktestRun":
        return Benchmark(backtest_run_id=decode_uuid(global_id, missing))
    raise NotFound(missing)


@strawberry.type(
    description="A tear sheet of one return stream. Every field is computed when selected."
)
class Performance:
    label: str
    interval: Interval
    periods_per_year: float
    risk_free_rate: float = strawberry.field(description="Annual, as given.")
    stream: strawberry.Private[ReturnStream]
    benchmarks: strawberry.Private[BenchmarkLoader]
    # The figures computed so far: the cached stream's own when it is kept (an unchanged
    # series asked again), else this answer's.
    figures: strawberry.Private[dict[Hashable, Any]]

    @classmethod
    def from_model(cls, stream: ReturnStream, benchmarks: BenchmarkLoader) -> Self:
        return cls(
            label=stream.label,
            interval=stream.interval,
            periods_per_year=stream.periods_per_year,
            risk_free_rate=stream.risk_free_rate,
            stream=stream,
            benchmarks=benchmarks,
            figures=stream.figures if isinstance(stream, KeptStream) else {},
        )

    def _figure(self, key: Hashable, compute: Callable[[], T]) -> T:
        figures = self.figures
        if key not in figures:
            figures[key] = compute()
        return cast(T, figures[key])

    @strawberry.field
    def observations(self) -> int:
        return int(self._figure("observations", self.stream.observations))

    @strawberry.field
    def start(self) -> datetime | None:
        return from_millis(self.stream.start())

    @strawberry.field
    def end(self) -> datetime | None:
        return from_millis(self.stream.end())

    @strawberry.field
    def total_return(self) -> float | None:
        return self._figure("total_return", lambda: finite(self.stream.total_return()))

    @strawberry.field(description="(1 + total) ^ (P / n) - 1.")
    def cagr(self) -> float | None:
        return self._figure("cagr", lambda: finite(self.stream.cagr()))

    @strawberry.field(description="Sample std (ddof 1) x sqrt(P).")
    def volatility(self) -> float | None:
        return self._figure("volatility", lambda: finite(self.stream.volatility()))

    @strawberry.field(description="Mean excess return / sample std x sqrt(P).")
    def sharpe(self) -> float | None:
        return self._figure("sharpe", lambda: finite(self.stream.sharpe()))

    @strawberry.field(description="Downside deviation over all observations; MAR = risk-free.")
    def sortino(self) -> float | None:
        return self._figure("sortino", lambda: finite(self.stream.sortino()))

    @strawberry.field(description="CAGR / max drawdown.")
    def calmar(self) -> float | None:
        return self._figure("calmar", lambda: finite(self.stream.calmar()))

    @strawberry.field(description="Gains over losses around the per-period risk-free rate.")
    def omega(self) -> float | None:
        return self._figure("omega", lambda: finite(self.stream.omega()))

    @strawberry.field(description="Positive fraction, from the starting capital.")
    def max_drawdown(self) -> float | None:
        return self._figure("max_drawdown", lambda: finite(self.stream.max_drawdown()))

    @strawberry.field(description="Longest time under water, in periods.")
    def max_drawdown_duration(self) -> int:
        return int(self._figure("max_drawdown_duration", self.stream.max_drawdown_duration))

    @strawberry.field(description="Bias-adjusted sample skewness.")
    def skew(self) -> float | None:
        return self._figure("skew", lambda: finite(self.stream.skew()))

    @strawberry.field(description="Bias-adjusted excess kurtosis.")
    def kurtosis(self) -> float | None:
        return self._figure("kurtosis", lambda: finite(self.stream.kurtosis()))

    @strawberry.field(description="|95th percentile| / |5th percentile|.")
    def tail_ratio(self) -> float | None:
        return self._figure("tail_ratio", lambda: finite(self.stream.tail_ratio()))

    @strawberry.field
    def best_period(self) -> float | None:
        return self._figure("best", lambda: finite(self.stream.best()))

    @strawberry.field
    def worst_period(self) -> float | None:
        return self._figure("worst", lambda: finite(self.stream.worst()))

    @strawberry.field(description="Positive periods among the non-zero ones.")
    def win_rate(self) -> float | None:
        return self._figure("win_rate", lambda: finite(self.stream.win_rate()))

    @strawberry.field
    def ulcer_index(self) -> float | None:
        return self._figure("ulcer_index", lambda: finite(self.stream.ulcer_index()))

    @strawberry.field(description="Positive loss fraction at a confidence level.")
    def value_at_risk(
        self, level: Level = DEFAULT_LEVEL, method: VarMethod = VarMethod.HISTORICAL
    ) -> float | None:
        return self._figure(
            ("value_at_risk", level, method),
            lambda: finite(self.stream.value_at_risk(level, method)),
        )

    @strawberry.field(description="Mean loss beyond the VaR, positive fraction.")
    def expected_shortfall(
        self, level: Level = DEFAULT_LEVEL, method: VarMethod = VarMethod.HISTORICAL
    ) -> float | None:
        return self._figure(
            ("expected_shortfall", level, method),
            lambda: finite(self.stream.expected_shortfall(level, method)),
        )

    @strawberry.field(description="The deepest drawdowns, deepest first.")
    def drawdowns(
        self, top: Annotated[int, bounded_argument(Bounds(1, 100))] = 5
    ) -> list[DrawdownPeriod] | None:
        return [
            DrawdownPeriod(
                peak=moment(found.peak),
                trough=moment(found.trough),
                recovery=from_millis(found.recovery),
                depth=found.depth,
                duration_periods=found.duration,
            )
            for found in self.stream.drawdowns(top)
        ]

    @strawberry.field(description="Compounded monthly returns by calendar year (UTC).")
    def calendar(self) -> list[CalendarYear]:
        return [
            CalendarYear(year=found.year, months=found.months, total=finite(found.total))
            for found in self.stream.calendar()
        ]

    @strawberry.field(description="Growth of 1, after each period.")
    def equity(self) -> Series:
        return Series(timestamps=self.stream.timestamps, values=self.stream.equity())

    @strawberry.field(description="Drawdown after each period, a non-positive fraction.")
    def drawdown_series(self) -> Series:
        return Series(timestamps=self.stream.timestamps, values=self.stream.drawdown())

    @strawberry.field(description="Period returns.")
    def returns(self) -> Series:
        return Series(timestamps=self.stream.timestamps, values=self.stream.returns)

    @strawberry.field(
        description="A metric over each trailing window (BETA, ALPHA and the captures need a"
        " benchmark; MAX_DRAWDOWN is each window's from its own start)."
    )
    async def rolling(
        self,
        window: Annotated[int, bounded_argument(Bounds(2, MAX_WINDOW), description="Periods.")],
        metric: RollingMetric,
        benchmark: str | None = None,
        of: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Or the benchmark's id: a portfolio or backtest run."),
        ] = None,
    ) -> Series | None:
        other = None
        if metric in RELATIVE:
            if benchmark is None and of is None:
                raise InvalidInput("benchmark", f"rolling {metric.value} needs a benchmark")
            other = await self.benchmarks(benchmark_of(benchmark, of))
        size = self.stream.returns.size
        if metric in RELATIVE or metric is RollingMetric.MAX_DRAWDOWN:
            if size * window > MAX_ROLLING_WORK:
                raise InvalidInput(
                    "window",
                    f"{metric.value} over {size:,} periods at window {window}: at most"
                    f" {MAX_ROLLING_WORK:,} periods x window; narrow start and end",
                )
        timestamps, values = await offload(
            size * window, self.stream.rolling, window, metric, other
        )
        return Series(timestamps=timestamps, values=values)

    @strawberry.field(
        description="Relative to a benchmark on the common periods: an asset by `symbol`, or"
        " in `of` one of your portfolios or backtest runs. Null, with an error at this path,"
        " when the benchmark is unknown; the other fields still answer."
    )
    async def benchmark(
        self,
        symbol: str | None = None,
        of: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="A portfolio's or a backtest run's id."),
        ] = None,
    ) -> BenchmarkComparison | None:
        reference = benchmark_of(symbol, of)
        other = await self.benchmarks(reference)
        observations, found = self.stream.against(other)
        return BenchmarkComparison(
            symbol=(symbol or "").upper() if symbol else str(of),
            observations=observations,
            alpha=finite(found.alpha),
            beta=finite(found.beta),
            correlation=finite(found.correlation),
            tracking_error=finite(found.tracking_error),
            information_ratio=finite(found.information_ratio),
            up_capture=finite(found.up_capture),
            down_capture=finite(found.down_capture),
        )

    # quantstats 0.0.86's definitions (docs/metrics.md says where coinql's differ).
    smart_sharpe: float | None = _ratio("smartSharpe", "Sharpe / autocorrelation penalty.")
    smart_sortino: float | None = _ratio("smartSortino", "Sortino / autocorrelation penalty.")
    adjusted_sortino: float | None = _ratio("adjustedSortino", "Sortino / sqrt(2).")
    probabilistic_sharpe: float | None = _ratio(
        "probabilisticSharpe", "P(true Sharpe > 0), from skew and kurtosis (0..1)."
    )
    kelly: float | None = _ratio("kelly", "win rate - loss rate / payoff ratio.")
    profit_factor: float | None = _ratio("profitFactor", "Sum of gains / |sum of losses|.")
    payoff_ratio: float | None = _ratio("payoffRatio", "Average win / |average loss|.")
    gain_to_pain: float | None = _ratio("gainToPain", "Sum of returns / |sum of losses|.")
    common_sense_ratio: float | None = _ratio("commonSenseRatio", "Profit factor x tail ratio.")
    cpc_index: float | None = _ratio("cpcIndex", "Profit factor x win rate x payoff ratio.")
    recovery_factor: float | None = _ratio(
        "recoveryFactor", "|Sum of excess returns| / max drawdown."
    )
    risk_of_ruin: float | None = _ratio(
        "riskOfRuin", "((1 - win rate) / (1 + win rate)) ^ periods."
    )
    ulcer_performance_index: float | None = _ratio(
        "ulcerPerformanceIndex", "Excess total return / ulcer index."
    )
    serenity_index: float | None = _ratio(
        "serenityIndex", "Excess sum of returns / (ulcer index x pitfall)."
    )
    consecutive_wins: int = _count("consecutiveWins", "The longest run of gaining periods.")
    consecutive_losses: int = _count("consecutiveLosses", "The longest run of losing periods.")
    average_win: float | None = _ratio("averageWin", "Mean return of the gaining periods.")
    average_loss: float | None = _ratio("averageLoss", "Mean return of the losing periods.")
    expected_return: float | None = _ratio("expectedReturn", "Geometric mean period return.")
    outlier_win_ratio: float | None = _ratio(
        "outlierWinRatio", "99th percentile / mean of the non-negative returns."
    )
    outlier_loss_ratio: float | None = _ratio(
        "outlierLossRatio", "1st percentile / mean of the negative returns."
    )
    stability: float | None = _ratio(
        "stability", "R^2 of the cumulative log returns against time (empyrical)."
    )

    @strawberry.field(description="(Excess total return) / beta against a benchmark.")
    async def treynor(
        self, benchmark: BenchmarkSymbol = None, of: BenchmarkOf = None
    ) -> float | None:
        return await self._against(benchmark, of, self.stream.treynor)

    @strawberry.field(description="Squared correlation with a benchmark on the common periods.")
    async def r_squared(
        self, benchmark: BenchmarkSymbol = None, of: BenchmarkOf = None
    ) -> float | None:
        return await self._against(benchmark, of, self.stream.r_squared)

    async def _against(
        self, symbol: str | None, of: str | None, compute: Callable[[Any], float]
    ) -> float | None:
        return finite(compute(await self.benchmarks(benchmark_of(symbol, of))))

    @strawberry.field(description="Returns compounded per calendar bucket, by bucket start.")
    def aggregate(self, period: Period) -> Series | None:
        timestamps, values = self._figure(
            ("aggregate", period), lambda: self.stream.aggregate(period)
        )
        return Series(timestamps=timestamps, values=values)

    @strawberry.field(
        description="Why each null metric is undefined; VaR methods are named as in VarMethod."
    )
    def undefined(self) -> list[UndefinedMetric]:
        reasons = self.stream.undefined()
        return [UndefinedMetric(metric=metric, reason=reason) for metric, reason in reasons.items()]
