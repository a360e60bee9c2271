"""A return stream and its tear sheet: the facade the GraphQL Performance type reads.

`ReturnStream` holds simple returns of one series, whatever produced them (an asset's closes,
a portfolio's NAV, a backtest's equity), with the conventions to read them by; each method
computes one figure of the tear sheet when called, from `coinql.domain.performance` (looked up
at call time, as `pf.<name>`), `compounding`, `downside`, `distribution`, `benchmark` and
`risk`. Times are epoch ms; an undefined figure is NaN (`undefined` says why), never an
exception.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coinql.domain import benchmark as relative
from coinql.domain import (
    compounding,
    distribution,
    downside,
    estimators,
    ratios,
    risk,
    tearsheet_ratios,
)
from coinql.domain import performance as pf
from coinql.domain.aggregate import Period
from coinql.domain.aggregate import aggregate as aggregate_returns
from coinql.domain.candles import Candles, Interval
from coinql.domain.typing import FloatArray, IntArray

# A return series: its timestamps and returns, both of shape (n_observations,).
Returns = tuple[IntArray, FloatArray]


@dataclass(frozen=True, slots=True)
class Drawdown:
    """A drawdown in time, epoch ms.

    The peak is the last time at the high-water mark (the start of the period before the first
    return for the starting capital); `recovery` is None while still under water; `depth` is a
    positive fraction and `duration` in periods.
    """

    peak: int
    trough: int
    recovery: int | None
    depth: float
    duration: int


@dataclass(frozen=True, slots=True)
class CalendarYear:
    """One calendar year (UTC) of compounded returns.

    `months` is an ndarray of shape (12,), NaN for a month without returns; `total` is NaN for
    a year without any.
    """

    year: int
    months: FloatArray
    total: float


@dataclass(frozen=True)
class ReturnStream:
    """Simple returns of one series, and the tear sheet's figures of them.

    `timestamps[i]` is the open time of the period that ends with `returns[i]` (the later of
    the two candles).

    Parameters
    ----------
    label : str
        What the returns are of (a symbol, a portfolio's name).
    interval : Interval
        The period of each return.
    timestamps : ndarray of shape (n_observations,)
        Epoch ms, increasing.
    returns : ndarray of shape (n_observations,)
        NaN (or ±inf) for a missing observation, left out of every figure.
    periods_per_year : float
        Annualises.
    risk_free_rate : float
        Annual, as given; converted geometrically to a per-period rate.
    """

    label: str
    interval: Interval
    timestamps: IntArray
    returns: FloatArray
    periods_per_year: float
    risk_free_rate: float

    @classmethod
    def of_candles(
        cls,
        label: str,
        candles: Candles,
        interval: Interval,
        *,
        risk_free_rate: float,
        periods_per_year: float | None = None,
    ) -> ReturnStream:
        """Build the stream of simple returns between consecutive closes (`simple_returns`)."""
        timestamps, returns = compounding.simple_returns(candles.timestamps, candles.close)
        return cls(
            label=label,
            interval=interval,
            timestamps=timestamps,
            returns=returns,
            periods_per_year=periods_per_year or interval.periods_per_year,
            risk_free_rate=risk_free_rate,
        )

    @classmethod
    def of_equity(
        cls,
        label: str,
        timestamps: IntArray,
        equity: FloatArray,
        interval: Interval,
        *,
        periods_per_year: float,
        risk_free_rate: float,
    ) -> ReturnStream:
        """Build the stream of an equity curve's period returns (`period_returns`).

        Parameters
        ----------
        label : str
            What the curve is of (a backtest run's name).
        timestamps : ndarray of shape (n_points,)
            Epoch ms of each equity value, increasing.
        equity : ndarray of shape (n_points,)
            The curve; a return next to a missing or zero value is NaN.
        interval : Interval
            The period between points.
        periods_per_year : float
            Annualises.
        risk_free_rate : float
            Annual.

        Returns
        -------
        ReturnStream
            Returns of shape (n_points - 1,), each stamped with the later point's time.
        """
        return cls(
            label=label,
            interval=interval,
            timestamps=timestamps[1:],
            returns=compounding.period_returns(equity),
            periods_per_year=periods_per_year,
            risk_free_rate=risk_free_rate,
        )

    @property
    def risk_free_per_period(self) -> float:
        """The per-period rate equivalent to the annual risk-free rate."""
        return compounding.periodic_rate(self.risk_free_rate, self.periods_per_year)

    @property
    def series(self) -> Returns:
        """The timestamps and the returns."""
        return self.timestamps, self.returns

    def observations(self) -> int:
        """Return the number of known returns."""
        return int(estimators.observations(self.returns))

    def start(self) -> int | None:
        """Return the first return's time, None without returns."""
        return int(self.timestamps[0]) if self.timestamps.size else None

    def end(self) -> int | None:
        """Return the last return's time, None without returns."""
        return int(self.timestamps[-1]) if self.timestamps.size else None

    def total_return(self) -> float:
        """Return the compounded return."""
        return float(compounding.total_return(self.returns))

    def cagr(self) -> float:
        """Return (1 + total) ^ (P / n) - 1."""
        return float(compounding.cagr(self.returns, self.periods_per_year))

    def volatility(self) -> float:
        """Return the sample std (ddof 1) x sqrt(P)."""
        return float(pf.volatility(self.returns, self.periods_per_year))

    def sharpe(self) -> float:
        """Return the mean excess return / sample std x sqrt(P)."""
        return float(pf.sharpe(self.returns, self.periods_per_year, self.risk_free_per_period))

    def sortino(self) -> float:
        """Return the Sortino ratio, the risk-free rate as the required return."""
        return float(
            downside.sortino(self.returns, self.periods_per_year, self.risk_free_per_period)
        )

    def calmar(self) -> float:
        """Return CAGR / max drawdown."""
        return float(pf.calmar(self.returns, self.periods_per_year))

    def omega(self) -> float:
        """Return gains over losses around the per-period risk-free rate."""
        return float(downside.omega(self.returns, self.risk_free_per_period))

    def max_drawdown(self) -> float:
        """Return the deepest drawdown from the starting capital, a positive fraction."""
        return float(pf.max_drawdown(self.returns))

    def max_drawdown_duration(self) -> int:
        """Return the longest time under water, in periods."""
        return pf.max_drawdown_duration(self.returns)

    def skew(self) -> float:
        """Return the bias-adjusted sample skewness."""
        return float(distribution.skew(self.returns))

    def kurtosis(self) -> float:
        """Return the bias-adjusted excess kurtosis."""
        return float(distribution.kurtosis(self.returns))

    def tail_ratio(self) -> float:
        """Return |95th percentile| / |5th percentile|."""
        return float(distribution.tail_ratio(self.returns))

    def best(self) -> float:
        """Return the best period's return."""
        return float(distribution.best(self.returns))

    def worst(self) -> float:
        """Return the worst period's return."""
        return float(distribution.worst(self.returns))

    def win_rate(self) -> float:
        """Return the share of positive periods among the non-zero ones."""
        return float(distribution.win_rate(self.returns))

    def ulcer_index(self) -> float:
        """Return the ulcer index of the drawdowns."""
        return float(pf.ulcer_index(self.returns))

    def value_at_risk(self, level: float, method: risk.VarMethod) -> float:
        """Return the loss at a confidence `level`, a positive fraction."""
        return float(risk.value_at_risk(self.returns, level, method))

    def expected_shortfall(self, level: float, method: risk.VarMethod) -> float:
        """Return the mean loss beyond the VaR at `level`, a positive fraction."""
        return float(risk.expected_shortfall(self.returns, level, method))

    def drawdowns(self, top: int) -> list[Drawdown]:
        """Return the `top` deepest drawdowns, deepest first, in time."""
        timestamps = self.timestamps
        first = int(timestamps[0]) - self.interval.milliseconds if timestamps.size else 0

        def moment(index: int) -> int:
            return first if index < 0 else int(timestamps[index])

        return [
            Drawdown(
                peak=moment(period.peak),
                trough=moment(period.trough),
                recovery=None if period.recovery is None else moment(period.recovery),
                depth=period.depth,
                duration=period.duration,
            )
            for period in pf.drawdown_periods(self.returns, top)
        ]

    def calendar(self) -> list[CalendarYear]:
        """Return the compounded monthly returns by calendar year (UTC)."""
        table = pf.calendar(self.timestamps, self.returns)
        return [
            CalendarYear(year=int(year), months=months, total=float(total))
            for year, months, total in zip(table.years, table.months, table.totals, strict=True)
        ]

    def equity(self) -> FloatArray:
        """Return the growth of 1 after each period, shape (n_observations,)."""
        return compounding.equity(self.returns)

    def drawdown(self) -> FloatArray:
        """Return the drawdown after each period, non-positive, shape (n_observations,)."""
        return pf.drawdown(self.returns)

    def rolling(
        self, window: int, metric: pf.RollingMetric, benchmark: Returns | None = None
    ) -> Returns:
        """Return a metric over each trailing window of `window` periods.

        Parameters
        ----------
        window : int
            Periods of each window.
        metric : RollingMetric
            A metric of `performance.RELATIVE` needs `benchmark`; the result is then on the
            periods both series share.
        benchmark : tuple of (ndarray of shape (m,), ndarray of shape (m,)), optional
            The benchmark's timestamps and returns.

        Returns
        -------
        timestamps, values : ndarray of shape (n,)
            NaN for the first window - 1 periods and where the metric is undefined.
        """
        timestamps, returns, factor = self.timestamps, self.returns, None
        if benchmark is not None:
            timestamps, returns, factor = relative.align(self.series, benchmark)
        values = pf.rolling(
            returns,
            window,
            metric,
            self.periods_per_year,
            risk_free=self.risk_free_per_period,
            benchmark=factor,
        )
        return timestamps, values

    def against(self, benchmark: Returns) -> tuple[int, relative.BenchmarkStats]:
        """Return the statistics relative to a benchmark, on the periods both share.

        Parameters
        ----------
        benchmark : tuple of (ndarray of shape (m,), ndarray of shape (m,))
            The benchmark's timestamps and returns.

        Returns
        -------
        observations : int
            The common periods.
        stats : BenchmarkStats
        """
        _, ours, theirs = relative.align(self.series, benchmark)
        found = relative.benchmark_stats(
            ours, theirs, self.periods_per_year, self.risk_free_per_period
        )
        return int(ours.shape[0]), found

    def undefined(self) -> dict[str, str]:
        """Return why each undefined figure is undefined, VaR methods named as `VarMethod`."""
        return {
            **undefined_reasons(self.returns, self.risk_free_per_period),
            **risk.undefined_reasons(self.returns),
            **tearsheet_ratios.undefined_ratios(self),
        }

    def ratio(self, name: str) -> float:
        """Return one of quantstats' figures by its GraphQL name (`tearsheet_ratios.RATIOS`)."""
        return tearsheet_ratios.ratio(self, name)

    def treynor(self, benchmark: Returns) -> float:
        """Return quantstats' Treynor ratio on the periods shared with `benchmark`."""
        _, ours, theirs = relative.align(self.series, benchmark)
        return tearsheet_ratios.treynor(self, ours, theirs)

    def r_squared(self, benchmark: Returns) -> float:
        """Return the squared correlation with `benchmark` on the periods both share."""
        _, ours, theirs = relative.align(self.series, benchmark)
        return float(ratios.r_squared(ours, theirs))

    def aggregate(self, period: Period) -> Returns:
        """Return the returns compounded into calendar buckets (UTC), by bucket start."""
        return aggregate_returns(self.timestamps, self.returns, period)


_FEW = {"volatility": 2, "sharpe": 2, "sortino": 2, "omega": 2, "tailRatio": 2, "ulcerIndex": 2}
_FEW |= {"skew": 3, "kurtosis": 4}
_FLAT = "returns do not vary (zero standard deviation)"
_CAUSES = {
    "sharpe": _FLAT,
    "skew": _FLAT,
    "kurtosis": _FLAT,
    "sortino": "no period fell below the required return (no downside)",
    "omega": "no period fell below the threshold (no losses)",
    "calmar": "no drawdown",
    "tailRatio": "the 5th percentile return is zero",
    "winRate": "no period gained or lost",
}


def undefined_reasons(returns: FloatArray, risk_free: float = 0.0) -> dict[str, str]:
    """Why metrics of `returns` are undefined, by metric name.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
    risk_free : float, default 0.0
        The per-period risk-free rate: the required return and threshold of Sharpe, Sortino
        and omega, as the tear sheet uses it.

    Returns
    -------
    dict of str to str
        Exactly the metrics (by their GraphQL names) that are NaN for these returns, each
        with the reason.
    """
    n = int(estimators.observations(returns))
    values = {
        "totalReturn": compounding.total_return(returns),
        "cagr": compounding.cagr(returns, 1.0),
        "volatility": pf.volatility(returns, 1.0),
        "sharpe": pf.sharpe(returns, 1.0, risk_free),
        "sortino": downside.sortino(returns, 1.0, risk_free),
        "calmar": pf.calmar(returns, 1.0),
        "omega": downside.omega(returns, risk_free),
        "maxDrawdown": pf.max_drawdown(returns),
        "skew": distribution.skew(returns),
        "kurtosis": distribution.kurtosis(returns),
        "tailRatio": distribution.tail_ratio(returns),
        "bestPeriod": distribution.best(returns),
        "worstPeriod": distribution.worst(returns),
        "winRate": distribution.win_rate(returns),
        "ulcerIndex": pf.ulcer_index(returns),
    }
    reasons: dict[str, str] = {}
    for name, value in values.items():
        if not np.isnan(value):
            continue
        if n == 0:
            reasons[name] = "no observations"
        elif n < _FEW.get(name, 1):
            reasons[name] = f"needs at least {_FEW[name]} observations, has {n}"
        else:
            reasons[name] = _CAUSES.get(name, "undefined for these returns")
    return reasons
