"""Performance of return streams: the tear-sheet metrics, drawdowns, calendar and rolling.

Relative measures (against a benchmark) are in `coinql.domain.benchmark`; the facade the
Performance type reads, and why a metric is undefined, in `coinql.domain.tearsheet`.

Conventions (see docs/metrics.md) follow empyrical-reloaded unless stated:

- `returns` is an ndarray of shape (n_observations,) or (n_observations, n_series) of simple
  period returns; every function reduces along axis 0, so one call serves many series.
- NaN marks a missing observation, and so does ±inf (a return from a zero price): it is left
  out of every statistic (n counts the others) and compounds as a zero return, so equity stays
  flat across it; it still takes its share of the elapsed time in CAGR (as empyrical's
  `annual_return`).
- `periods_per_year` (P) annualises; an annual risk-free rate converts to a per-period one
  geometrically, (1 + rf) ** (1 / P) - 1.
- An undefined result (too few observations, zero dispersion, no downside) is NaN; the schema
  shows it as null with the reason from `undefined_reasons`. A dispersion is zero when it is
  rounding noise (`negligible`), so a constant series has no Sharpe ratio rather than 1e17.
- Drawdowns are measured from the starting capital too, so a loss in the first period counts
  (empyrical starts from the first period's equity instead).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from coinql.domain.typing import BoolArray, FloatArray, IntArray

MIN_OBSERVATIONS = 2
ROUNDING = 1e-12
"""A per-period dispersion at most this size (relative, floored at 1) is zero; see `negligible`."""


@contextmanager
def undefined_as_nan() -> Iterator[None]:
    """Make undefined results NaN silently; the callers map NaN to "undefined"."""
    with (
        np.errstate(divide="ignore", invalid="ignore", over="ignore"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-NaN column
        yield


def periodic_rate(annual_rate: float, periods_per_year: float) -> float:
    """The per-period rate equivalent to an annual rate, compounded geometrically."""
    return float((1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0)


def known(returns: FloatArray) -> FloatArray:
    """The returns with ±inf as NaN: a return from a zero price is missing, like NaN."""
    return np.where(np.isfinite(returns), returns, np.nan)


def observations(returns: FloatArray) -> FloatArray:
    return np.sum(np.isfinite(returns), axis=0).astype(np.float64)


def _enough(returns: FloatArray, minimum: int = MIN_OBSERVATIONS) -> BoolArray:
    return observations(returns) >= minimum


def negligible(size: FloatArray | float, scale: FloatArray | float) -> BoolArray:
    """Whether a per-period dispersion is zero up to rounding: size <= 1e-12 x max(1, |scale|).

    `scale` is the mean of the values whose dispersion `size` measures. Returns computed from
    prices carry relative rounding errors of ~1e-16, so the standard deviation of a constant
    series comes out near 1e-18 instead of 0, and a ratio over it near 1e17. The threshold sits
    four orders of magnitude above that noise and far below any real variation (a price's last
    significant digit moves a return by more than 1e-12); the floor of 1 keeps it absolute for
    returns near zero. NaN sizes are not negligible (they stay undefined for their own reason).
    """
    with undefined_as_nan():
        return np.asarray(size <= ROUNDING * np.maximum(1.0, np.abs(scale)))


def _mean_std(values: FloatArray, axis: int = 0) -> tuple[FloatArray, FloatArray]:
    """Mean and sample standard deviation (ddof 1) over the known values along `axis`, NaN
    below two of them."""
    values = known(values)
    with undefined_as_nan():
        mean = np.nanmean(values, axis=axis)
        if values.shape[axis] < MIN_OBSERVATIONS:
            return mean, np.full(np.shape(mean), np.nan)
        std = np.nanstd(values, axis=axis, ddof=1)
    enough = np.sum(~np.isnan(values), axis=axis) >= MIN_OBSERVATIONS
    return mean, np.where(enough, std, np.nan)


def ratio_to_std(values: FloatArray, axis: int = 0) -> FloatArray:
    """Mean / std (ddof 1) along `axis`, NaN when the std is undefined or negligible."""
    mean, std = _mean_std(values, axis)
    with undefined_as_nan():
        return np.where(negligible(std, mean), np.nan, mean / std)


def std_or_zero(values: FloatArray, axis: int = 0) -> FloatArray:
    """Return the sample standard deviation along `axis`, exactly 0 when it is negligible."""
    mean, std = _mean_std(values, axis)
    return np.where(negligible(std, mean), 0.0, std)


def _growth(returns: FloatArray) -> FloatArray:
    """Final value of 1 invested; kept apart from `total_return` so that a loss near 100 %
    does not lose its digits to a subtraction of 1 and an addition of 1."""
    with undefined_as_nan():
        growth = np.nanprod(1.0 + known(returns), axis=0)
    return np.where(observations(returns) >= 1, growth, np.nan)


def period_returns(values: FloatArray) -> FloatArray:
    """Simple returns between consecutive values of a series (an equity curve, closes).

    Parameters
    ----------
    values : ndarray of shape (n_observations + 1,)

    Returns
    -------
    ndarray of shape (n_observations,)
        NaN where the earlier value is zero or missing.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0
    return np.where(np.isfinite(returns), returns, np.nan)


def total_return(returns: FloatArray) -> FloatArray:
    return _growth(returns) - 1.0


def cagr(returns: FloatArray, periods_per_year: float) -> FloatArray:
    """(1 + total return) ** (P / T) - 1, where T counts every period, missing ones too: a NaN
    period is time that passed with the equity flat (as empyrical's `annual_return`, whose
    years are len(returns) / P). NaN without observations."""
    periods = max(returns.shape[0], 1)  # no periods: _growth is NaN already
    with undefined_as_nan():
        return _growth(returns) ** (periods_per_year / periods) - 1.0


def volatility(returns: FloatArray, periods_per_year: float) -> FloatArray:
    """Sample standard deviation x sqrt(P); exactly 0 for returns that do not vary."""
    return std_or_zero(returns) * np.sqrt(periods_per_year)


def sharpe(returns: FloatArray, periods_per_year: float, risk_free: float = 0.0) -> FloatArray:
    """Mean excess return over its sample standard deviation, times sqrt(P); NaN when the
    returns do not vary."""
    return ratio_to_std(returns - risk_free) * np.sqrt(periods_per_year)


def downside_risk(
    returns: FloatArray, periods_per_year: float, required_return: float = 0.0
) -> FloatArray:
    """sqrt(mean(min(r - required, 0) ** 2)) * sqrt(P), over all observations."""
    shortfall = np.minimum(known(returns) - required_return, 0.0)
    with undefined_as_nan():
        risk = np.sqrt(np.nanmean(shortfall**2, axis=0)) * np.sqrt(periods_per_year)
    return np.where(_enough(returns), risk, np.nan)


def sortino(
    returns: FloatArray, periods_per_year: float, required_return: float = 0.0
) -> FloatArray:
    """Mean excess return x P over the downside risk; NaN without a downside (none of the
    returns below the required return, up to rounding)."""
    risk = downside_risk(returns, periods_per_year, required_return)
    with undefined_as_nan():
        mean = np.nanmean(known(returns) - required_return, axis=0)
        ratio = mean * periods_per_year / risk
    return np.where(negligible(risk / np.sqrt(periods_per_year), mean), np.nan, ratio)


def equity(returns: FloatArray) -> FloatArray:
    """Growth of 1 after each period (missing periods compound as 0)."""
    flat = np.where(np.isfinite(returns), returns, 0.0)
    return np.cumprod(1.0 + flat, axis=0)  # type: ignore[return-value]


def drawdown(returns: FloatArray) -> FloatArray:
    """Drawdown after each period, as a non-positive fraction, from the running peak that
    includes the starting capital of 1."""
    curve = equity(returns)
    peak = np.maximum.accumulate(np.maximum(curve, 1.0), axis=0)
    result: FloatArray = curve / peak - 1.0
    return result


def max_drawdown(returns: FloatArray) -> FloatArray:
    """The deepest drawdown as a positive fraction (0 when equity never fell)."""
    if returns.shape[0] == 0:
        return np.full(returns.shape[1:], np.nan)
    deepest = -np.min(drawdown(returns), axis=0)
    return np.where(observations(returns) >= 1, deepest, np.nan)


def calmar(returns: FloatArray, periods_per_year: float) -> FloatArray:
    """CAGR over the maximum drawdown; NaN without a drawdown (up to rounding)."""
    depth = max_drawdown(returns)
    with undefined_as_nan():
        ratio = cagr(returns, periods_per_year) / depth
    return np.where(negligible(depth, 0.0), np.nan, ratio)


def omega(returns: FloatArray, threshold: float = 0.0) -> FloatArray:
    """Sum of gains over the threshold divided by the sum of losses under it; NaN without
    losses (their mean per period negligible)."""
    excess = known(returns) - threshold
    n = observations(returns)
    gains = np.nansum(np.maximum(excess, 0.0), axis=0)
    losses = np.nansum(np.maximum(-excess, 0.0), axis=0)
    with undefined_as_nan():
        ratio = gains / losses
        no_losses = negligible(losses / n, np.nanmean(excess, axis=0))
    return np.where(_enough(returns) & ~no_losses, ratio, np.nan)


def tail_ratio(returns: FloatArray) -> FloatArray:
    """|95th percentile| / |5th percentile| (linear interpolation); NaN below two
    observations or when the 5th percentile is zero (up to rounding)."""
    values = known(returns)
    if values.shape[0] == 0:  # nanpercentile drops the quantile axis of an empty input
        return np.full(values.shape[1:], np.nan)
    with undefined_as_nan():
        upper, lower = np.nanpercentile(values, [95, 5], axis=0)
        ratio = np.abs(upper) / np.abs(lower)
    return np.where(_enough(values) & ~negligible(np.abs(lower), upper), ratio, np.nan)


def _standardized_moment(returns: FloatArray, order: int) -> tuple[FloatArray, FloatArray]:
    """n and the population moment m_order / m2 ** (order / 2); NaN when the returns do not
    vary (their standard deviation negligible)."""
    n = observations(returns)
    with undefined_as_nan():
        mean = np.nanmean(known(returns), axis=0)
        centered = known(returns) - mean
        m2 = np.nanmean(centered**2, axis=0)
        moment = np.nanmean(centered**order, axis=0) / m2 ** (order / 2)
    return n, np.where(negligible(np.sqrt(m2), mean) | ~(m2 > 0), np.nan, moment)


def skew(returns: FloatArray) -> FloatArray:
    """Sample skewness adjusted for bias (as pandas' and quantstats'); NaN below 3
    observations or when the returns do not vary."""
    n, g1 = _standardized_moment(returns, 3)
    with undefined_as_nan():
        result = g1 * np.sqrt(n * (n - 1)) / (n - 2)
    return np.where(n >= 3, result, np.nan)


def kurtosis(returns: FloatArray) -> FloatArray:
    """Excess kurtosis adjusted for bias (as pandas' and quantstats'); NaN below 4
    observations or when the returns do not vary."""
    n, m4 = _standardized_moment(returns, 4)
    with undefined_as_nan():
        result = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 - 3.0) + 6.0)
    return np.where(n >= 4, result, np.nan)


def best(returns: FloatArray) -> FloatArray:
    # fmax ignores NaN, so NaN is its identity: NaN when all are NaN or there are none.
    result: FloatArray = np.fmax.reduce(known(returns), axis=0, initial=np.nan)
    return result


def worst(returns: FloatArray) -> FloatArray:
    result: FloatArray = np.fmin.reduce(known(returns), axis=0, initial=np.nan)
    return result


def win_rate(returns: FloatArray) -> FloatArray:
    """Share of positive periods among the non-zero ones (as quantstats')."""
    values = known(returns)
    wins = np.sum(values > 0, axis=0)
    decided = np.sum((values != 0) & ~np.isnan(values), axis=0)
    with undefined_as_nan():
        return np.where(decided > 0, wins / decided, np.nan)


def ulcer_index(returns: FloatArray) -> FloatArray:
    """sqrt(sum(drawdown ** 2) / (n - 1)), drawdowns as fractions (as quantstats')."""
    n = observations(returns)
    with undefined_as_nan():
        result = np.sqrt(np.sum(drawdown(returns) ** 2, axis=0) / (n - 1))
    return np.where(n >= MIN_OBSERVATIONS, result, np.nan)


def max_drawdown_duration(returns: FloatArray) -> int:
    """The longest run of periods spent below a previous peak (1-D returns)."""
    underwater = drawdown(returns) < 0
    if not underwater.any():
        return 0
    edges = np.diff(np.concatenate([[0], underwater.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int(np.max(ends - starts))


@dataclass(frozen=True, slots=True)
class DrawdownPeriod:
    """Indexes into the returns: the peak is the last period at the high-water mark before
    the fall (-1 for the starting capital); `recovery` is None while still under water."""

    peak: int
    trough: int
    recovery: int | None
    depth: float
    duration: int


def drawdown_periods(returns: FloatArray, top: int) -> list[DrawdownPeriod]:
    """The `top` deepest drawdowns (1-D returns), deepest first; they never overlap."""
    curve = drawdown(returns)
    underwater = curve < 0
    if not underwater.any() or top <= 0:
        return []
    edges = np.diff(np.concatenate([[0], underwater.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    periods = []
    for start, end in zip(starts, ends, strict=True):  # one per drawdown, not per bar
        trough = int(start + np.argmin(curve[start:end]))
        recovered = end < curve.shape[0]
        periods.append(
            DrawdownPeriod(
                peak=int(start) - 1,
                trough=trough,
                recovery=int(end) if recovered else None,
                depth=float(-curve[trough]),
                duration=int(end - start + 1) if recovered else int(curve.shape[0] - start),
            )
        )
    periods.sort(key=lambda period: -period.depth)
    return periods[:top]


@dataclass(frozen=True, slots=True)
class Calendar:
    """Compounded returns by calendar month and year (UTC).

    months : ndarray of shape (n_years, 12), NaN where a month has no observation
    """

    years: IntArray
    months: FloatArray
    totals: FloatArray


def calendar(timestamps: IntArray, returns: FloatArray) -> Calendar:
    """Monthly and yearly compounded returns; `timestamps` are epoch ms of each return."""
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
    VOLATILITY = "VOLATILITY"
    SHARPE = "SHARPE"
    BETA = "BETA"
    RETURN = "RETURN"


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
    """The metric over each trailing window of `window` periods, aligned on `returns`
    (NaN for the first window - 1 periods). 1-D returns; within a window NaN periods are
    left out as everywhere (for BETA, a period where either series is NaN), and the
    undefined cases are those of the whole-series metrics."""
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
    else:
        if benchmark is None:
            raise ValueError("rolling beta needs a benchmark")
        values = slope(windows, _windows(benchmark, window), axis=-1)
    out[window - 1 :] = values
    return out


def slope(returns: FloatArray, benchmark: FloatArray, axis: int = 0) -> FloatArray:
    """Cov(r, b) / Var(b) with population moments over the pairs where both are known; NaN
    below two pairs or when the benchmark does not vary on them."""
    both = np.isfinite(returns) & np.isfinite(benchmark)
    x, y = np.where(both, benchmark, np.nan), np.where(both, returns, np.nan)
    with undefined_as_nan():
        mean = np.nanmean(x, axis=axis, keepdims=True)
        centered = x - mean
        variance = np.nanmean(centered**2, axis=axis)
        slope = np.nanmean(centered * y, axis=axis) / variance
    flat = negligible(np.sqrt(variance), np.squeeze(mean, axis=axis)) | ~(variance > 0)
    return np.where((np.sum(both, axis=axis) >= MIN_OBSERVATIONS) & ~flat, slope, np.nan)


def simple_returns(timestamps: IntArray, closes: FloatArray) -> tuple[IntArray, FloatArray]:
    """Simple returns between consecutive closes, stamped with the later candle's open time.

    Parameters
    ----------
    timestamps : ndarray of shape (n_candles,)
        Open times, epoch ms.
    closes : ndarray of shape (n_candles,)

    Returns
    -------
    timestamps : ndarray of shape (n_candles - 1,)
    returns : ndarray of shape (n_candles - 1,)
        ±inf after a zero close and NaN around a missing one, kept as they are: every measure
        here treats both as a missing observation.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = closes[1:] / closes[:-1] - 1.0
    return timestamps[1:], returns
