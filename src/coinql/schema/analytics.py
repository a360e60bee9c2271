"""Performance (tear sheet), risk report, PCA and indicators.

`Performance` wraps a return stream and computes each field only when it is selected; an
undefined metric is null and `undefined` says why.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Self

import numpy as np
import strawberry
from strawberry import relay
from strawberry.types import Info

from coinql.domain import indicators as ind
from coinql.domain import performance as pf
from coinql.domain import risk
from coinql.domain.bounds import Bounds
from coinql.domain.candles import Candles
from coinql.domain.errors import InvalidInput, NotFound
from coinql.resolvers import analytics
from coinql.resolvers.analytics import Benchmark, BenchmarkLoader, ReturnStream
from coinql.resolvers.context import Context
from coinql.resolvers.market import to_millis
from coinql.schema.bounds import (
    CONFIDENCE,
    EWMA_DECAY,
    WEIGHT,
    bounded,
    bounded_argument,
)
from coinql.schema.enums import CovarianceMethod, Interval, RollingMetric, VarMethod
from coinql.schema.scalars import FloatArray, TimestampArray, finite

DEFAULT_LEVEL = 0.95
MAX_WINDOW = 10_000
WINDOW = Bounds(1, MAX_WINDOW)
# A basket's weights: fractions of its value, short (negative) or levered up to 10x.
BASKET_WEIGHT = Bounds(-10, 10)
Level = Annotated[
    float, bounded_argument(CONFIDENCE, description="A confidence such as 0.95 or 0.99.")
]


def _time(millis: int | None) -> datetime | None:
    return None if millis is None else datetime.fromtimestamp(millis / 1000, UTC)


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


def benchmark_of(symbol: str | None, of: str | None) -> Benchmark:
    """The benchmark an argument pair names; `NotFound` for an id that is not a portfolio or a
    backtest run, `InvalidInput` unless exactly one is given."""
    if of is None:
        return Benchmark(symbol=symbol)
    if symbol is not None:
        raise InvalidInput("symbol", "name one benchmark: a symbol or, in `of`, an id")
    try:
        global_id = relay.GlobalID.from_id(of)
    except ValueError:
        raise NotFound(f"no portfolio or backtest run {of}") from None
    if global_id.type_name == "Portfolio":
        return Benchmark(portfolio_id=decode_uuid(global_id, of))
    if global_id.type_name == "BacktestRun":
        return Benchmark(backtest_run_id=decode_uuid(global_id, of))
    raise NotFound(f"no portfolio or backtest run {of}")


def decode_uuid(global_id: relay.GlobalID, given: str) -> uuid.UUID:
    try:
        return uuid.UUID(global_id.node_id)
    except ValueError:
        raise NotFound(f"no portfolio or backtest run {given}") from None


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

    @classmethod
    def from_model(cls, stream: ReturnStream, benchmarks: BenchmarkLoader) -> Self:
        return cls(
            label=stream.label,
            interval=stream.interval,
            periods_per_year=stream.periods_per_year,
            risk_free_rate=stream.risk_free_rate,
            stream=stream,
            benchmarks=benchmarks,
        )

    @property
    def _r(self) -> Any:
        return self.stream.returns

    @property
    def _p(self) -> float:
        return self.stream.periods_per_year

    @strawberry.field
    def observations(self) -> int:
        return int(pf.observations(self._r))

    @strawberry.field
    def start(self) -> datetime | None:
        return _time(int(self.stream.timestamps[0])) if self.stream.timestamps.size else None

    @strawberry.field
    def end(self) -> datetime | None:
        return _time(int(self.stream.timestamps[-1])) if self.stream.timestamps.size else None

    @strawberry.field
    def total_return(self) -> float | None:
        return finite(pf.total_return(self._r))

    @strawberry.field(description="(1 + total) ^ (P / n) - 1.")
    def cagr(self) -> float | None:
        return finite(pf.cagr(self._r, self._p))

    @strawberry.field(description="Sample std (ddof 1) x sqrt(P).")
    def volatility(self) -> float | None:
        return finite(pf.volatility(self._r, self._p))

    @strawberry.field(description="Mean excess return / sample std x sqrt(P).")
    def sharpe(self) -> float | None:
        return finite(pf.sharpe(self._r, self._p, self.stream.risk_free_per_period))

    @strawberry.field(description="Downside deviation over all observations; MAR = risk-free.")
    def sortino(self) -> float | None:
        return finite(pf.sortino(self._r, self._p, self.stream.risk_free_per_period))

    @strawberry.field(description="CAGR / max drawdown.")
    def calmar(self) -> float | None:
        return finite(pf.calmar(self._r, self._p))

    @strawberry.field(description="Gains over losses around the per-period risk-free rate.")
    def omega(self) -> float | None:
        return finite(pf.omega(self._r, self.stream.risk_free_per_period))

    @strawberry.field(description="Positive fraction, from the starting capital.")
    def max_drawdown(self) -> float | None:
        return finite(pf.max_drawdown(self._r))

    @strawberry.field(description="Longest time under water, in periods.")
    def max_drawdown_duration(self) -> int:
        return pf.max_drawdown_duration(self._r)

    @strawberry.field(description="Bias-adjusted sample skewness.")
    def skew(self) -> float | None:
        return finite(pf.skew(self._r))

    @strawberry.field(description="Bias-adjusted excess kurtosis.")
    def kurtosis(self) -> float | None:
        return finite(pf.kurtosis(self._r))

    @strawberry.field(description="|95th percentile| / |5th percentile|.")
    def tail_ratio(self) -> float | None:
        return finite(pf.tail_ratio(self._r))

    @strawberry.field
    def best_period(self) -> float | None:
        return finite(pf.best(self._r))

    @strawberry.field
    def worst_period(self) -> float | None:
        return finite(pf.worst(self._r))

    @strawberry.field(description="Positive periods among the non-zero ones.")
    def win_rate(self) -> float | None:
        return finite(pf.win_rate(self._r))

    @strawberry.field
    def ulcer_index(self) -> float | None:
        return finite(pf.ulcer_index(self._r))

    @strawberry.field(description="Positive loss fraction at a confidence level.")
    def value_at_risk(
        self, level: Level = DEFAULT_LEVEL, method: VarMethod = VarMethod.HISTORICAL
    ) -> float | None:
        return finite(risk.value_at_risk(self._r, level, method))

    @strawberry.field(description="Mean loss beyond the VaR, positive fraction.")
    def expected_shortfall(
        self, level: Level = DEFAULT_LEVEL, method: VarMethod = VarMethod.HISTORICAL
    ) -> float | None:
        return finite(risk.expected_shortfall(self._r, level, method))

    @strawberry.field(description="The deepest drawdowns, deepest first.")
    def drawdowns(
        self, top: Annotated[int, bounded_argument(Bounds(1, 100))] = 5
    ) -> list[DrawdownPeriod] | None:
        timestamps = self.stream.timestamps
        first = int(timestamps[0]) - self.stream.interval.milliseconds if timestamps.size else 0

        def moment(index: int) -> datetime:
            found = _time(first if index < 0 else int(timestamps[index]))
            assert found is not None
            return found

        return [
            DrawdownPeriod(
                peak=moment(period.peak),
                trough=moment(period.trough),
                recovery=None if period.recovery is None else moment(period.recovery),
                depth=period.depth,
                duration_periods=period.duration,
            )
            for period in pf.drawdown_periods(self._r, top)
        ]

    @strawberry.field(description="Compounded monthly returns by calendar year (UTC).")
    def calendar(self) -> list[CalendarYear]:
        table = pf.calendar(self.stream.timestamps, self._r)
        return [
            CalendarYear(year=int(year), months=months, total=finite(total))
            for year, months, total in zip(table.years, table.months, table.totals, strict=True)
        ]

    @strawberry.field(description="Growth of 1, after each period.")
    def equity(self) -> Series:
        return Series(timestamps=self.stream.timestamps, values=pf.equity(self._r))

    @strawberry.field(description="Drawdown after each period, a non-positive fraction.")
    def drawdown_series(self) -> Series:
        return Series(timestamps=self.stream.timestamps, values=pf.drawdown(self._r))

    @strawberry.field(description="Period returns.")
    def returns(self) -> Series:
        return Series(timestamps=self.stream.timestamps, values=self._r)

    @strawberry.field(description="A metric over each trailing window (BETA needs benchmark).")
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
        timestamps, returns, factor = self.stream.timestamps, self._r, None
        if metric is RollingMetric.BETA:
            if benchmark is None and of is None:
                raise InvalidInput("benchmark", "rolling BETA needs a benchmark")
            other = await self.benchmarks(benchmark_of(benchmark, of))
            timestamps, returns, factor = analytics.align((timestamps, returns), other)
        values = pf.rolling(
            returns,
            window,
            metric,
            self._p,
            risk_free=self.stream.risk_free_per_period,
            benchmark=factor,
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
        _, ours, theirs = analytics.align((self.stream.timestamps, self._r), other)
        found = pf.benchmark_stats(ours, theirs, self._p, self.stream.risk_free_per_period)
        return BenchmarkComparison(
            symbol=(symbol or "").upper() if symbol else str(of),
            observations=int(ours.shape[0]),
            alpha=finite(found.alpha),
            beta=finite(found.beta),
            correlation=finite(found.correlation),
            tracking_error=finite(found.tracking_error),
            information_ratio=finite(found.information_ratio),
            up_capture=finite(found.up_capture),
            down_capture=finite(found.down_capture),
        )

    @strawberry.field(
        description="Why each null metric is undefined; VaR methods are named as in VarMethod."
    )
    def undefined(self) -> list[UndefinedMetric]:
        reasons = {
            **pf.undefined_reasons(self._r, self.stream.risk_free_per_period),
            **risk.undefined_reasons(self._r),
        }
        return [UndefinedMetric(metric=metric, reason=reason) for metric, reason in reasons.items()]


@strawberry.type
class RiskContribution:
    symbol: str
    weight: float
    marginal_risk: float | None = strawberry.field(description="d volatility / d weight.")
    risk_contribution: float | None = strawberry.field(description="Sums to volatility.")


@strawberry.type
class CorrelationMatrix:
    symbols: list[str]
    matrix: list[FloatArray] = strawberry.field(description="One row per symbol.")


@strawberry.type
class StressScenario:
    scenario: str
    portfolio_return: float | None
    start: datetime | None
    end: datetime | None


@strawberry.type(description="Ex-ante risk of a weighted basket. Volatility is annualised.")
class RiskReport:
    symbols: list[str]
    weights: list[float]
    covariance_method: CovarianceMethod
    observations: int
    basket: strawberry.Private[analytics.Basket]
    cov: strawberry.Private[Any]
    found: strawberry.Private[risk.BasketRisk]

    @strawberry.field
    def volatility(self) -> float | None:
        return finite(self.found.volatility)

    @strawberry.field(description="Historical or parametric, on the basket's past returns.")
    def value_at_risk(
        self, level: Level = DEFAULT_LEVEL, method: VarMethod = VarMethod.HISTORICAL
    ) -> float | None:
        return finite(risk.value_at_risk(self.basket.basket_returns, level, method))

    @strawberry.field
    def expected_shortfall(
        self, level: Level = DEFAULT_LEVEL, method: VarMethod = VarMethod.HISTORICAL
    ) -> float | None:
        return finite(risk.expected_shortfall(self.basket.basket_returns, level, method))

    @strawberry.field(description="Weighted sum of volatilities / basket volatility.")
    def diversification_ratio(self) -> float | None:
        return finite(self.found.diversification_ratio)

    @strawberry.field
    def contributions(self) -> list[RiskContribution]:
        return [
            RiskContribution(
                symbol=symbol,
                weight=float(weight),
                marginal_risk=finite(marginal),
                risk_contribution=finite(contribution),
            )
            for symbol, weight, marginal, contribution in zip(
                self.basket.symbols,
                self.basket.weights,
                self.found.marginal,
                self.found.contributions,
                strict=True,
            )
        ]

    @strawberry.field
    def correlation(self) -> CorrelationMatrix:
        matrix = risk.correlation_from(self.cov)
        return CorrelationMatrix(symbols=self.basket.symbols, matrix=list(matrix))

    @strawberry.field(description="Historical windows replayed on the weights, and shocks.")
    def stress(self) -> list[StressScenario]:
        return [
            StressScenario(
                scenario=found.name,
                portfolio_return=finite(found.basket_return),
                start=_time(found.start),
                end=_time(found.end),
            )
            for found in analytics.stress_scenarios(self.basket)
        ]


@strawberry.type
class Loadings:
    symbol: str
    values: FloatArray = strawberry.field(description="One loading per component.")


@strawberry.type(description="Principal components of the returns' covariance.")
class PrincipalComponents:
    symbols: list[str]
    explained_variance_ratio: FloatArray
    loadings: list[Loadings] = strawberry.field(description="Per symbol, sign-normalised.")


@strawberry.input
class WindowInput:
    window: int = bounded(WINDOW, description="Periods.")


@strawberry.input
class BandsInput:
    window: int = bounded(WINDOW, default=20, description="Periods.")
    width: float = bounded(
        Bounds(0, 10, low_open=True), default=2.0, description="Standard deviations."
    )


@strawberry.input
class VolOfVolInput:
    window: int = bounded(WINDOW, description="Periods of each volatility.")
    outer_window: int | None = bounded(
        WINDOW, default=None, description="Periods of volatilities it varies over."
    )


@strawberry.input
class RegimeInput:
    window: int = bounded(WINDOW, description="Periods of each volatility.")
    lookback: int = bounded(WINDOW, default=365, description="Periods ranked against.")


@strawberry.input
class TrendInput:
    window: int = bounded(WINDOW, description="Periods of the trend's average.")
    band: float = bounded(WEIGHT, default=0.02, description="Around the average, a fraction.")


@strawberry.input(one_of=True, description="One indicator, e.g. {ema: {window: 20}}.")
class IndicatorSpec:
    sma: WindowInput | None = strawberry.UNSET
    ema: WindowInput | None = strawberry.UNSET
    rsi: WindowInput | None = strawberry.UNSET
    atr: WindowInput | None = strawberry.UNSET
    bollinger: BandsInput | None = strawberry.UNSET
    zscore: WindowInput | None = strawberry.UNSET
    vwap: WindowInput | None = strawberry.UNSET
    realized_volatility: WindowInput | None = strawberry.UNSET
    vol_of_vol: VolOfVolInput | None = strawberry.UNSET
    volatility_regime: RegimeInput | None = strawberry.UNSET
    trend_regime: TrendInput | None = strawberry.UNSET


@strawberry.type
class IndicatorSeries:
    name: str = strawberry.field(description='e.g. "ema(20)" or "bollinger(20,2).upper".')
    values: FloatArray


@strawberry.type(description="Indicators aligned on the candles' timestamps.")
class IndicatorSet:
    timestamps: TimestampArray
    series: list[IndicatorSeries]
    legend: list[str] = strawberry.field(description="What the regime series' codes mean.")


REGIME_LEGEND = [
    *(f"volatilityRegime {level.value} = {level.name}" for level in ind.VolatilityRegime),
    *(f"trendRegime {level.value} = {level.name}" for level in ind.TrendRegime),
]


def compute_indicator(
    spec: IndicatorSpec, candles: Candles, periods_per_year: float
) -> list[IndicatorSeries]:
    """The series of one @oneOf spec (three for Bollinger bands)."""
    high, low, close = candles.high, candles.low, candles.close
    if spec.bollinger:
        window = spec.bollinger.window
        bands = ind.bollinger(close, window, spec.bollinger.width)
        label = f"bollinger({window},{spec.bollinger.width:g})"
        return [
            IndicatorSeries(name=f"{label}.{part}", values=getattr(bands, part))
            for part in ("lower", "middle", "upper")
        ]
    if spec.vol_of_vol:
        window = spec.vol_of_vol.window
        values = ind.vol_of_vol(close, window, periods_per_year, spec.vol_of_vol.outer_window)
        return [IndicatorSeries(name=f"volOfVol({window})", values=values)]
    if spec.volatility_regime:
        window, lookback = spec.volatility_regime.window, spec.volatility_regime.lookback
        values = ind.volatility_regime(close, window, periods_per_year, lookback)
        return [IndicatorSeries(name=f"volatilityRegime({window},{lookback})", values=values)]
    if spec.trend_regime:
        window = spec.trend_regime.window
        values = ind.trend_regime(close, window, spec.trend_regime.band)
        return [IndicatorSeries(name=f"trendRegime({window})", values=values)]
    # Base volume where known, else quote volume in coins at the close.
    volume = np.where(np.isnan(candles.volume), candles.quote_volume / close, candles.volume)
    single: dict[str, Callable[[int], Any]] = {
        "sma": lambda w: ind.sma(close, w),
        "ema": lambda w: ind.ema(close, w),
        "rsi": lambda w: ind.rsi(close, w),
        "atr": lambda w: ind.atr(high, low, close, w),
        "zscore": lambda w: ind.zscore(close, w),
        "vwap": lambda w: ind.vwap(high, low, close, volume, w),
        "realizedVolatility": lambda w: ind.realized_volatility(close, w, periods_per_year),
    }
    for name, compute in single.items():
        chosen = getattr(spec, _snake(name))
        if chosen:
            window = chosen.window
            return [IndicatorSeries(name=f"{name}({window})", values=compute(window))]
    raise InvalidInput("specs", "each spec names exactly one indicator")


def _snake(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name)


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(description="Ex-ante risk of a weighted basket of assets.")
    async def risk_report(
        self,
        info: Info[Context, None],
        symbols: list[str],
        weights: Annotated[
            list[float] | None,
            bounded_argument(BASKET_WEIGHT, description="One per symbol; equal if omitted."),
        ] = None,
        interval: Interval = Interval.D1,
        start: datetime | None = None,
        end: datetime | None = None,
        covariance: CovarianceMethod = CovarianceMethod.SAMPLE,
        ewma_decay: Annotated[float, bounded_argument(EWMA_DECAY)] = risk.EWMA_DEFAULT_DECAY,
    ) -> RiskReport | None:
        basket = await analytics.load_basket(
            info.context,
            symbols=symbols,
            weights=weights,
            interval=interval,
            start=to_millis(start),
            end=to_millis(end),
        )
        cov = await analytics.basket_covariance(basket, covariance, ewma_decay)
        return RiskReport(
            symbols=basket.symbols,
            weights=[float(weight) for weight in basket.weights],
            covariance_method=covariance,
            observations=int(basket.returns.shape[0]),
            basket=basket,
            cov=cov,
            found=risk.basket_risk(basket.weights, cov, basket.periods_per_year),
        )

    @strawberry.field(description="Principal components of several assets' returns.")
    async def pca(
        self,
        info: Info[Context, None],
        symbols: list[str],
        interval: Interval = Interval.D1,
        start: datetime | None = None,
        end: datetime | None = None,
        components: Annotated[int, bounded_argument(Bounds(1, analytics.MAX_COMPONENTS))] = 3,
    ) -> PrincipalComponents | None:
        basket = await analytics.load_basket(
            info.context,
            symbols=symbols,
            weights=None,
            interval=interval,
            start=to_millis(start),
            end=to_millis(end),
        )
        found = await analytics.principal_components(basket, components)
        return PrincipalComponents(
            symbols=basket.symbols,
            explained_variance_ratio=found.explained_variance_ratio,
            loadings=[
                Loadings(symbol=symbol, values=found.loadings[:, column])
                for column, symbol in enumerate(basket.symbols)
            ],
        )
