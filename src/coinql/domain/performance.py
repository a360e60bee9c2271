"""Performance of return streams: volatility, risk-adjusted ratios, drawdowns, calendar, rolling.

Compounding (total return, CAGR, the equity curve) is in `coinql.domain.compounding`, downside
measures (Sortino, omega) in `coinql.domain.downside`, the shape of the return distribution
(skew, tails, extremes) in `coinql.domain.distribution`, the estimators and the NaN policy in
`coinql.domain.estimators`, relative measures in `coinql.domain.benchmark`; the facade the
Performance type reads, and why a metric is undefined, in `coinql.domain.tearsheet`.

Conventions (see docs/metrics.md) follow empyrical-reloaded unless stated:

- `returns` is an ndarray of shape (n_observations,) or (n_observations, n_series) of simple
  period returns; every function reduces along axis 0, so one call serves many series, and
  returns an ndarray of shape () for 1-D returns (a numpy scalar or a 0-d array), of shape
  (n_series,) otherwise.
- NaN marks a missing observation, and so does ±inf (a return from a zero price): it is left
  out of every statistic and compounds as a zero return.
- `periods_per_year` (P) annualises; a risk-free rate here is per period, converted from an
  annual one geometrically, (1 + rf) ** (1 / P) - 1 (`compounding.periodic_rate`).
- An undefined result (too few observations, zero dispersion, no drawdown) is NaN; the schema
  shows it as null with the reason from `tearsheet.undefined_reasons`.
- Drawdowns are measured from the starting capital too, so a loss in the first period counts
  (empyrical starts from the first period's equity instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from coinql.domain.benchmark import benchmark_stats
from coinql.domain.compounding import cagr, equity
from coinql.domain.estimators import (
    MIN_OBSERVATIONS,
    known,
    negligible,
    observations,
    ratio_to_std,
    slope,
    std_or_zero,
    undefined_as_nan,
)
from coinql.domain.typing import FloatArray, IntArray


def volatility(returns: FloatArray, periods_per_year: float) -> FloatArray:
    """Compute the sample standard deviation (ddof 1) x sqrt(P).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    periods_per_year : float

    Returns
    -------
    ndarray of shape () or (n_series,)
        Exactly 0 for returns that do not vary; NaN below two observations.
    """
    return std_or_zero(returns) * np.sqrt(periods_per_year)


def sharpe(returns: FloatArray, periods_per_year: float, risk_free: float = 0.0) -> FloatArray:
    """Compute the mean excess return over its sample standard deviation, times sqrt(P).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    periods_per_year : float
    risk_free : float, default 0.0
        The per-period risk-free rate.

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations or when the returns do not vary.
    """
    return ratio_to_std(returns - risk_free) * np.sqrt(periods_per_year)


def drawdown(returns: FloatArray) -> FloatArray:
    """Compute the drawdown after each period from the running peak of the equity.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of the shape of `returns`
        Non-positive fractions; the peak includes the starting capital of 1, and a missing
        period keeps the previous drawdown.
    """
    curve = equity(returns)
    peak = np.maximum.accumulate(np.maximum(curve, 1.0), axis=0)
    result: FloatArray = curve / peak - 1.0
    return result


def max_drawdown(returns: FloatArray) -> FloatArray:
    """Return the deepest drawdown as a positive fraction.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        0 when the equity never fell; NaN without observations.
    """
    if returns.shape[0] == 0:
        return np.full(returns.shape[1:], np.nan)
    deepest = -np.min(drawdown(returns), axis=0)
    return np.where(observations(returns) >= 1, deepest, np.nan)


def calmar(returns: FloatArray, periods_per_year: float) -> FloatArray:
    """Compute the CAGR over the maximum drawdown.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    periods_per_year : float

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without observations or without a drawdown (up to rounding).
    """
    depth = max_drawdown(returns)
    with undefined_as_nan():
        ratio = cagr(returns, periods_per_year) / depth
    return np.where(negligible(depth, 0.0), np.nan, ratio)


def ulcer_index(returns: FloatArray) -> FloatArray:
    """Compute sqrt(sum(drawdown ** 2) / (n - 1)), drawdowns as fractions (as quantstats').

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations.
    """
    n = observations(returns)
    with undefined_as_nan():
        result = np.sqrt(np.sum(drawdown(returns) ** 2, axis=0) / (n - 1))
    return np.where(n >= MIN_OBSERVATIONS, result, np.nan)


def max_drawdown_duration(returns: FloatArray) -> int:
    """Return the longest run of periods spent below a previous peak.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)

    Returns
    -------
    int
        0 when the equity never fell.
    """
    underwater = drawdown(returns) < 0
    if not underwater.any():
        return 0
    edges = np.diff(np.concatenate([[0], underwater.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int(np.max(ends - starts))


@dataclass(frozen=True, slots=True)
class DrawdownPeriod:
    """One drawdown, as indexes into the returns.

    The peak is the last period at the high-water mark before the fall (-1 for the starting
    capital); `recovery` is None while still under water; `depth` is a positive fraction and
    `duration` counts periods from the peak to the recovery (or to the end).
    """

    peak: int
    trough: int
    recovery: int | None
    depth: float
    duration: int


def drawdown_periods(returns: FloatArray, top: int) -> list[DrawdownPeriod]:
    """Find the `top` deepest drawdowns, deepest first; they never overlap.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
    top : int
        At most this many; none when it is not positive.

    Returns
    -------
    list of DrawdownPeriod
    """
    return periods_of_drawdown(drawdown(returns), top)


def periods_of_drawdown(curve: FloatArray, top: int) -> list[DrawdownPeriod]:
    """Find the `top` deepest drawdowns of a drawdown curve, deepest first.

    Parameters
    ----------
    curve : ndarray of shape (n_observations,)
        The drawdown after each period (`drawdown`), non-positive.
    top : int
        At most this many; none when it is not positive.

    Returns
    -------
    list of DrawdownPeriod
        As `drawdown_periods` of the returns the curve is of; equally deep drawdowns in time
        order.
    """
    underwater = curve < 0
    if not underwater.any() or top <= 0:
        return []
    edges = np.diff(np.concatenate([[0], underwater.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    # Between one drawdown's end and the next one's start the curve is 0, so each segment's
    # minimum from a start to the next start is that drawdown's depth.
    depths = -np.minimum.reduceat(curve, starts)
    periods = []
    for i in np.argsort(-depths, kind="stable")[:top]:  # only the drawdowns listed
        start, end = int(starts[i]), int(ends[i])
        trough = start + int(np.argmin(curve[start:end]))
        recovered = end < curve.shape[0]
        periods.append(
            DrawdownPeriod(
                peak=start - 1,
                trough=trough,
                recovery=end if recovered else None,
                depth=float(-curve[trough]),
                duration=end - start + 1 if recovered else int(curve.shape[0] - start),
            )
        )
    return periods


@dataclass(frozen=True, slots=True)
class Calendar:
    """Compounded returns by calendar month and year (UTC).

    Attributes
    ----------
    years : ndarray of shape (n_years,)
        Every year from the first to the last, gaps included.
    months : ndarray of shape (n_years, 12)
        NaN where a month has no observation.
    totals : ndarray of shape (n_years,)
        NaN where a year has no observation.
    """

    years: IntArray
    months: FloatArray
    totals: FloatArray


def calendar(timestamps: IntArray, returns: FloatArray) -> Calendar:
    """Compound the returns by calendar month and year (UTC).

    Parameters
    ----------
    timestamps : ndarray of shape (n_observations,)
        Epoch ms of each return.
    returns : ndarray of shape (n_observations,)
        NaN and ±inf are left out.

    Returns
    -------
    Calendar
    """
    if returns.shape[0] == 0:
        empty = np.empty(0, dtype=np.int64)
        return Calendar(empty, np.empty((0, 12)), np.empty(0))
    month_index = timestamps.astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
    years = month_index // 12 + 1970
    first_year = int(years.min())
    year_rows = years - first_year
    n_years = int(years.max()) - first_year + 1
    growth = np.ones((n_years, 12))
    seen = np.zeros((n_years, 12), dtype=bool)
    valid = np.isfinite(returns)
    np.multiply.at(growth, (year_rows[valid], month_index[valid] % 12), 1.0 + returns[valid])
    seen[year_rows[valid], month_index[valid] % 12] = True
    months = np.where(seen, growth - 1.0, np.nan)
    totals = np.where(seen.any(axis=1), np.prod(growth, axis=1) - 1.0, np.nan)
    return Calendar(np.arange(first_year, first_year + n_years, dtype=np.int64), months, totals)


class RollingMetric(StrEnum):
    """The metrics `rolling` computes over trailing windows."""

    VOLATILITY = "VOLATILITY"
    SHARPE = "SHARPE"
    BETA = "BETA"
    RETURN = "RETURN"
    MAX_DRAWDOWN = "MAX_DRAWDOWN"
    ALPHA = "ALPHA"
    UP_CAPTURE = "UP_CAPTURE"
    DOWN_CAPTURE = "DOWN_CAPTURE"


# The rolling metrics read against a benchmark: each window's `benchmark_stats` field.
RELATIVE = {
    RollingMetric.BETA: "beta",
    RollingMetric.ALPHA: "alpha",
    RollingMetric.UP_CAPTURE: "up_capture",
    RollingMetric.DOWN_CAPTURE: "down_capture",
}


def _windows(values: FloatArray, window: int) -> FloatArray:
    return np.lib.stride_tricks.sliding_window_view(values, window, axis=0)


def rolling(
    returns: FloatArray,
    window: int,
    metric: RollingMetric,
    periods_per_year: float,
    *,
    risk_free: float = 0.0,
    benchmark: FloatArray | None = None,
) -> FloatArray:
    """Compute a metric over each trailing window of `window` periods.

    Within a window NaN periods are left out as everywhere (for BETA, a period where either
    series is NaN), and the undefined cases are those of the whole-series metrics.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
    window : int
        Periods of each window.
    metric : RollingMetric
    periods_per_year : float
    risk_free : float, default 0.0
        The per-period risk-free rate, for SHARPE and ALPHA.
    benchmark : ndarray of shape (n_observations,), optional
        Required for BETA, ALPHA, UP_CAPTURE and DOWN_CAPTURE (`RELATIVE`), which are those
        of `coinql.domain.benchmark.benchmark_stats` over each window.

    Returns
    -------
    ndarray of shape (n_observations,)
        Aligned on `returns`: NaN for the first window - 1 periods, and everywhere when
        window < 2 or there are fewer than `window` periods.

    Raises
    ------
    ValueError
        For a metric of `RELATIVE` without a benchmark.
    """
    out = np.full(returns.shape[0], np.nan)
    if window < 2 or returns.shape[0] < window:
        return out
    windows = _windows(known(returns), window)
    sqrt_p = np.sqrt(periods_per_year)
    if metric is RollingMetric.VOLATILITY:
        values = std_or_zero(windows, axis=-1) * sqrt_p
    elif metric is RollingMetric.SHARPE:
        values = ratio_to_std(windows - risk_free, axis=-1) * sqrt_p
    elif metric is RollingMetric.RETURN:
        values = np.nanprod(1.0 + windows, axis=-1) - 1.0
    elif metric is RollingMetric.MAX_DRAWDOWN:
        values = max_drawdown(windows.T)  # each window from its own starting capital
    elif benchmark is None:
        raise ValueError(f"rolling {metric.value} needs a benchmark")
    elif metric is RollingMetric.BETA:
        values = slope(windows, _windows(benchmark, window), axis=-1)
    else:
        field = RELATIVE[metric]
        values = np.array(
            [
                getattr(benchmark_stats(ours, theirs, periods_per_year, risk_free), field)
                for ours, theirs in zip(windows, _windows(benchmark, window), strict=True)
            ]
        )
    out[window - 1 :] = values
    return out
