"""The tear sheet of many return series at once, computed on one 2-D array.

`returns` is an ndarray of shape (n_observations, n_series) of simple period returns sharing
one time axis, `benchmark` one of those series' shape (n_observations,). Every figure equals the
one the per-series functions give for that column (`coinql.domain.performance`, `risk`,
`benchmark`; a test compares them column by column), with their NaN policy: the 2-D paths here
serve the columns whose returns are all finite, and a column with a missing observation (NaN or
±inf) is handed to the per-series function, which knows how to leave it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from coinql.domain import benchmark as relative
from coinql.domain import compounding, distribution, downside, risk
from coinql.domain import performance as pf
from coinql.domain.estimators import (
    MIN_OBSERVATIONS,
    negligible,
    ratio_to_std,
    slope,
    std_or_zero,
    undefined_as_nan,
)
from coinql.domain.typing import BoolArray, FloatArray, IntArray

# A one-pass windowed variance this far below the column's own variance is recomputed by the
# per-series (two-pass) function: there the sums' rounding could pass for dispersion.
_CANCELLATION = 1e-6


def _finite_columns(returns: FloatArray) -> BoolArray:
    result: BoolArray = np.asarray(np.isfinite(returns).all(axis=0))
    return result


def value_at_risk(returns: FloatArray, level: float) -> FloatArray:
    """Compute the historical VaR of each series (`risk.value_at_risk`, HISTORICAL).

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_series)
    level : float
        The confidence, strictly between 0 and 1.

    Returns
    -------
    ndarray of shape (n_series,)
        Positive loss fractions; NaN where the per-series function is NaN.

    Raises
    ------
    ValueError
        When `level` is not strictly between 0 and 1.
    """
    return _tail_measure(returns, level, risk.value_at_risk, _historical_var)


def expected_shortfall(returns: FloatArray, level: float) -> FloatArray:
    """Compute the historical expected shortfall of each series (`risk.expected_shortfall`).

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_series)
    level : float
        The confidence, strictly between 0 and 1.

    Returns
    -------
    ndarray of shape (n_series,)
        Positive loss fractions; NaN where the per-series function is NaN.

    Raises
    ------
    ValueError
        When `level` is not strictly between 0 and 1.
    """
    return _tail_measure(returns, level, risk.expected_shortfall, _historical_es)


def _historical_var(values: FloatArray, tail: float) -> FloatArray:
    result: FloatArray = -np.percentile(values, 100 * tail, axis=0)
    return result


def _historical_es(values: FloatArray, tail: float) -> FloatArray:
    # The per-series function's tail size, boundary rule included (one definition of it).
    count = risk._tail_count(values.shape[0], tail)
    result: FloatArray = -np.mean(np.partition(values, count - 1, axis=0)[:count], axis=0)
    return result


def _tail_measure(
    returns: FloatArray,
    level: float,
    one: Callable[[FloatArray, float, risk.VarMethod], float],
    many: Callable[[FloatArray, float], FloatArray],
) -> FloatArray:
    """`many` of the finite columns at the tail 1 - level, `one` of each other column."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    out = np.full(returns.shape[1], np.nan)
    finite = _finite_columns(returns)
    if returns.shape[0] >= MIN_OBSERVATIONS and finite.any():
        out[finite] = many(returns[:, finite], 1.0 - level)
    for column in np.flatnonzero(~finite):
        out[column] = one(returns[:, column], level, risk.VarMethod.HISTORICAL)
    return out


def max_drawdown_durations(curve: FloatArray) -> IntArray:
    """Return each series' longest run of periods below a previous peak.

    Parameters
    ----------
    curve : ndarray of shape (n_observations, n_series)
        The drawdowns (`performance.drawdown` of the returns).

    Returns
    -------
    ndarray of int64 of shape (n_series,)
        As `performance.max_drawdown_duration` of each column; 0 when the equity never fell.
    """
    if curve.shape[0] == 0:
        return np.zeros(curve.shape[1], dtype=np.int64)
    index = np.arange(curve.shape[0])[:, None]
    underwater = curve < 0
    last_above = np.maximum.accumulate(np.where(underwater, -1, index), axis=0)
    result: IntArray = np.max(np.where(underwater, index - last_above, 0), axis=0).astype(np.int64)
    return result


def calendars(timestamps: IntArray, returns: FloatArray) -> list[pf.Calendar]:
    """Compound each series' returns by calendar month and year (UTC).

    Parameters
    ----------
    timestamps : ndarray of shape (n_observations,)
        Epoch ms of each return.
    returns : ndarray of shape (n_observations, n_series)

    Returns
    -------
    list of Calendar
        `performance.calendar` of each column, in column order. With increasing timestamps
        the finite columns are compounded month by month in one pass.
    """
    n_series = returns.shape[1]
    finite = _finite_columns(returns)
    found: list[pf.Calendar | None] = [None] * n_series
    increasing = bool(np.all(np.diff(timestamps) > 0))
    if returns.shape[0] and increasing and finite.any():
        month_index = timestamps.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
        starts = np.flatnonzero(np.diff(month_index, prepend=month_index[0] - 1))
        years = month_index[starts] // 12 + 1970
        first_year = int(years[0])
        n_years = int(years[-1]) - first_year + 1
        columns = np.flatnonzero(finite)
        by_month = np.multiply.reduceat(1.0 + returns[:, columns], starts, axis=0)
        growth = np.ones((len(columns), n_years, 12))
        seen = np.zeros((n_years, 12), dtype=bool)
        rows, months = years - first_year, month_index[starts] % 12
        growth[:, rows, months] = by_month.T
        seen[rows, months] = True
        table = np.where(seen, growth - 1.0, np.nan)
        totals = np.where(seen.any(axis=1), np.prod(growth, axis=2) - 1.0, np.nan)
        year_axis = np.arange(first_year, first_year + n_years, dtype=np.int64)
        for position, column in enumerate(columns):
            found[column] = pf.Calendar(year_axis, table[position], totals[position])
    return [
        table if table is not None else pf.calendar(timestamps, returns[:, column])
        for column, table in enumerate(found)
    ]


def rolling_volatility(returns: FloatArray, window: int, periods_per_year: float) -> FloatArray:
    """Compute each series' volatility over each trailing window.

    The finite columns' windowed sums come from running sums of the returns centred on the
    column's mean (one pass over the data, not one per window); a window whose variance is
    too small beside the column's for those sums to resolve sends its column to the two-pass
    per-series function, so a flat window is exactly 0 as there.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_series)
    window : int
        Periods of each window.
    periods_per_year : float

    Returns
    -------
    ndarray of shape (n_observations, n_series)
        `performance.rolling(..., RollingMetric.VOLATILITY, ...)` of each column.
    """
    n, n_series = returns.shape
    out = np.full((n, n_series), np.nan)
    if window < 2 or n < window:
        return out
    finite = _finite_columns(returns)
    columns = np.flatnonzero(finite)
    exact = list(np.flatnonzero(~finite))
    if columns.size:
        centred = returns[:, columns] - np.mean(returns[:, columns], axis=0)
        zero = np.zeros((1, columns.size))
        sums = np.cumsum(np.concatenate([zero, centred]), axis=0)
        squares = np.cumsum(np.concatenate([zero, centred * centred]), axis=0)
        first = sums[window:] - sums[:-window]
        variance = ((squares[window:] - squares[:-window]) - first * first / window) / (window - 1)
        overall = squares[-1] / (n - 1)
        coarse = np.any(variance <= _CANCELLATION * overall, axis=0)
        with undefined_as_nan():
            out[window - 1 :, columns] = np.sqrt(variance) * np.sqrt(periods_per_year)
        exact += list(columns[coarse])
    for column in exact:
        out[:, column] = pf.rolling(
            returns[:, column], window, pf.RollingMetric.VOLATILITY, periods_per_year
        )
    return out


def _capture(
    returns: FloatArray, benchmark: FloatArray, mask: BoolArray, periods_per_year: float
) -> FloatArray:
    if not mask.any():
        return np.full(returns.shape[1], np.nan)
    ours = compounding.cagr(returns[mask], periods_per_year)
    theirs = float(compounding.cagr(benchmark[mask], periods_per_year))
    return ours / theirs if theirs != 0 else np.full(returns.shape[1], np.nan)


def _varies(values: FloatArray, axis: int = 0) -> BoolArray:
    result: BoolArray = ~negligible(np.std(values, axis=axis), np.mean(values, axis=axis))
    return result


def benchmark_stats(
    returns: FloatArray, benchmark: FloatArray, periods_per_year: float, risk_free: float = 0.0
) -> list[relative.BenchmarkStats]:
    """Compute each series' statistics against an aligned benchmark.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_series)
    benchmark : ndarray of shape (n_observations,)
        On the same periods as `returns`.
    periods_per_year : float
    risk_free : float, default 0.0
        Per period.

    Returns
    -------
    list of BenchmarkStats
        `benchmark.benchmark_stats` of each column against `benchmark`, in column order.
    """
    n_series = returns.shape[1]
    found: list[relative.BenchmarkStats | None] = [None] * n_series
    finite = _finite_columns(returns)
    columns = np.flatnonzero(finite)
    if np.isfinite(benchmark).all() and returns.shape[0] >= MIN_OBSERVATIONS and columns.size:
        r, b = returns[:, columns], benchmark
        sqrt_p = np.sqrt(periods_per_year)
        beta = slope(r, np.broadcast_to(b[:, None], r.shape))
        with undefined_as_nan():
            alpha = (1.0 + np.mean((r - risk_free) - beta * (b - risk_free)[:, None], axis=0)) ** (
                periods_per_year
            ) - 1.0
            centred_r, centred_b = r - np.mean(r, axis=0), b - np.mean(b)
            correlation = (centred_b @ centred_r) / np.sqrt(
                np.sum(centred_r**2, axis=0) * np.sum(centred_b**2)
            )
            correlation = np.where(
                _varies(r) & bool(_varies(b)), np.clip(correlation, -1.0, 1.0), np.nan
            )
            active = r - b[:, None]
            tracking = std_or_zero(active) * sqrt_p
            information = ratio_to_std(active) * sqrt_p
        up = _capture(r, b, b > 0, periods_per_year)
        down = _capture(r, b, b < 0, periods_per_year)
        for position, column in enumerate(columns):
            found[column] = relative.BenchmarkStats(
                alpha=float(alpha[position]),
                beta=float(beta[position]),
                correlation=float(correlation[position]),
                tracking_error=float(tracking[position]),
                information_ratio=float(information[position]),
                up_capture=float(up[position]),
                down_capture=float(down[position]),
            )
    return [
        stats
        if stats is not None
        else relative.benchmark_stats(returns[:, column], benchmark, periods_per_year, risk_free)
        for column, stats in enumerate(found)
    ]


@dataclass(frozen=True)
class TearSheet:
    """Every figure of the tear sheet for each of many series.

    Attributes
    ----------
    total_return, cagr, volatility, sharpe, sortino, calmar, omega : ndarray of shape (n_series,)
        As the per-series functions of the same names.
    tail_ratio, skew, kurtosis, best, worst, win_rate : ndarray of shape (n_series,)
    max_drawdown, ulcer_index : ndarray of shape (n_series,)
    value_at_risk, expected_shortfall : ndarray of shape (n_series,)
        Historical, at the tear sheet's `level`.
    max_drawdown_duration : ndarray of int64 of shape (n_series,)
    equity, drawdown, rolling_volatility : ndarray of shape (n_observations, n_series)
    drawdowns : list of list of DrawdownPeriod
        Each series' deepest drawdowns, deepest first.
    calendars : list of Calendar
    relative : list of BenchmarkStats
        Against the benchmark.
    """

    total_return: FloatArray
    cagr: FloatArray
    volatility: FloatArray
    sharpe: FloatArray
    sortino: FloatArray
    calmar: FloatArray
    omega: FloatArray
    tail_ratio: FloatArray
    skew: FloatArray
    kurtosis: FloatArray
    best: FloatArray
    worst: FloatArray
    win_rate: FloatArray
    max_drawdown: FloatArray
    ulcer_index: FloatArray
    value_at_risk: FloatArray
    expected_shortfall: FloatArray
    max_drawdown_duration: IntArray
    equity: FloatArray
    drawdown: FloatArray
    rolling_volatility: FloatArray
    drawdowns: list[list[pf.DrawdownPeriod]]
    calendars: list[pf.Calendar]
    relative: list[relative.BenchmarkStats]


def tear_sheet(
    timestamps: IntArray,
    returns: FloatArray,
    benchmark: FloatArray,
    periods_per_year: float,
    *,
    risk_free: float = 0.0,
    level: float = 0.95,
    top_drawdowns: int = 5,
    rolling_window: int = 30,
) -> TearSheet:
    """Compute the full tear sheet of every column of `returns` on one 2-D array.

    Parameters
    ----------
    timestamps : ndarray of shape (n_observations,)
        Epoch ms of each return, increasing.
    returns : ndarray of shape (n_observations, n_series)
    benchmark : ndarray of shape (n_observations,)
        The returns the relative statistics are measured against, on the same periods.
    periods_per_year : float
    risk_free : float, default 0.0
        The per-period risk-free rate (Sharpe, Sortino, omega, alpha).
    level : float, default 0.95
        The VaR and expected shortfall confidence.
    top_drawdowns : int, default 5
        How many of each series' deepest drawdowns to list.
    rolling_window : int, default 30
        Periods of the rolling volatility's windows.

    Returns
    -------
    TearSheet
        Each figure equal to the per-series function's for that column.
    """
    curve = pf.drawdown(returns)
    return TearSheet(
        total_return=compounding.total_return(returns),
        cagr=compounding.cagr(returns, periods_per_year),
        volatility=pf.volatility(returns, periods_per_year),
        sharpe=pf.sharpe(returns, periods_per_year, risk_free),
        sortino=downside.sortino(returns, periods_per_year, risk_free),
        calmar=pf.calmar(returns, periods_per_year),
        omega=downside.omega(returns, risk_free),
        tail_ratio=distribution.tail_ratio(returns),
        skew=distribution.skew(returns),
        kurtosis=distribution.kurtosis(returns),
        best=distribution.best(returns),
        worst=distribution.worst(returns),
        win_rate=distribution.win_rate(returns),
        max_drawdown=pf.max_drawdown(returns),
        ulcer_index=pf.ulcer_index(returns),
        value_at_risk=value_at_risk(returns, level),
        expected_shortfall=expected_shortfall(returns, level),
        max_drawdown_duration=max_drawdown_durations(curve),
        equity=compounding.equity(returns),
        drawdown=curve,
        rolling_volatility=rolling_volatility(returns, rolling_window, periods_per_year),
        drawdowns=[
            pf.periods_of_drawdown(curve[:, column], top_drawdowns)
            for column in range(returns.shape[1])
        ],
        calendars=calendars(timestamps, returns),
        relative=benchmark_stats(returns, benchmark, periods_per_year, risk_free),
    )
