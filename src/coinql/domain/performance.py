"""Performance of return streams: the tear-sheet metrics, drawdowns, calendar and rolling.

Conventions (see docs/metrics.md) follow empyrical-reloaded unless stated:

- `returns` is an ndarray of shape (n_observations,) or (n_observations, n_series) of simple
  period returns; every function reduces along axis 0, so one call serves many series.
- NaN marks a missing observation: it is left out of every statistic (n counts the others) and
  compounds as a zero return, so equity stays flat across it.
- `periods_per_year` (P) annualises; an annual risk-free rate converts to a per-period one
  geometrically, (1 + rf) ** (1 / P) - 1.
- An undefined result (too few observations, zero dispersion, no downside) is NaN; the schema
  shows it as null with the reason from `undefined_reasons`.
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


@contextmanager
def _errstate() -> Iterator[None]:
    """Undefined results become NaN silently; the callers map NaN to "undefined"."""
    with (
        np.errstate(divide="ignore", invalid="ignore", over="ignore"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-NaN column
        yield


def periodic_rate(annual_rate: float, periods_per_year: float) -> float:
    """The per-period rate equivalent to an annual rate, compounded geometrically."""
    return float((1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0)


def observations(returns: FloatArray) -> FloatArray:
    return np.sum(~np.isnan(returns), axis=0).astype(np.float64)


def _enough(returns: FloatArray, minimum: int = MIN_OBSERVATIONS) -> BoolArray:
    return observations(returns) >= minimum


def _growth(returns: FloatArray) -> FloatArray:
    """Final value of 1 invested; kept apart from `total_return` so that a loss near 100 %
    does not lose its digits to a subtraction of 1 and an addition of 1."""
    with _errstate():
        return np.where(observations(returns) >= 1, np.nanprod(1.0 + returns, axis=0), np.nan)


def total_return(returns: FloatArray) -> FloatArray:
    return _growth(returns) - 1.0


def cagr(returns: FloatArray, periods_per_year: float) -> FloatArray:
    """(1 + total return) ** (P / n) - 1."""
    n = observations(returns)
    with _errstate():
        return _growth(returns) ** (periods_per_year / n) - 1.0


def _std(values: FloatArray) -> FloatArray:
    """Sample standard deviation (ddof 1); NaN below two observations or when it is zero."""
    with _errstate():
        std = (
            np.nanstd(values, axis=0, ddof=1)
            if values.shape[0] >= 2
            else np.full(values.shape[1:], np.nan)
        )
    return np.where(_enough(values) & (std > 0), std, np.nan)


def volatility(returns: FloatArray, periods_per_year: float) -> FloatArray:
    with _errstate():
        std = np.nanstd(returns, axis=0, ddof=1) if returns.shape[0] >= 2 else np.nan
    return np.where(_enough(returns), std * np.sqrt(periods_per_year), np.nan)


def sharpe(returns: FloatArray, periods_per_year: float, risk_free: float = 0.0) -> FloatArray:
    """Mean excess return over its sample standard deviation, times sqrt(P)."""
    excess = returns - risk_free
    with _errstate():
        return np.nanmean(excess, axis=0) / _std(excess) * np.sqrt(periods_per_year)


def downside_risk(
    returns: FloatArray, periods_per_year: float, required_return: float = 0.0
) -> FloatArray:
    """sqrt(mean(min(r - required, 0) ** 2)) * sqrt(P), over all observations."""
    shortfall = np.minimum(returns - required_return, 0.0)
    with _errstate():
        risk = np.sqrt(np.nanmean(shortfall**2, axis=0)) * np.sqrt(periods_per_year)
    return np.where(_enough(returns), risk, np.nan)


def sortino(
    returns: FloatArray, periods_per_year: float, required_return: float = 0.0
) -> FloatArray:
    risk = downside_risk(returns, periods_per_year, required_return)
    with _errstate():
        ratio = np.nanmean(returns - required_return, axis=0) * periods_per_year / risk
    return np.where(risk > 0, ratio, np.nan)


def equity(returns: FloatArray) -> FloatArray:
    """Growth of 1 after each period (NaN periods compound as 0)."""
    return np.cumprod(1.0 + np.nan_to_num(returns, nan=0.0), axis=0)  # type: ignore[return-value]


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
    depth = max_drawdown(returns)
    with _errstate():
        ratio = cagr(returns, periods_per_year) / depth
    return np.where(depth > 0, ratio, np.nan)


def omega(returns: FloatArray, threshold: float = 0.0) -> FloatArray:
    """Sum of gains over the threshold divided by the sum of losses under it."""
    excess = returns - threshold
    gains = np.nansum(np.maximum(excess, 0.0), axis=0)
    losses = np.nansum(np.maximum(-excess, 0.0), axis=0)
    with _errstate():
        ratio = gains / losses
    return np.where(_enough(returns) & (losses > 0), ratio, np.nan)


def tail_ratio(returns: FloatArray) -> FloatArray:
    """|95th percentile| / |5th percentile| (linear interpolation)."""
    if returns.shape[0] == 0:  # nanpercentile drops the quantile axis of an empty input
        return np.full(returns.shape[1:], np.nan)
    upper, lower = np.nanpercentile(returns, [95, 5], axis=0)
    with _errstate():
        ratio = np.abs(upper) / np.abs(lower)
    return np.where(_enough(returns) & (lower != 0), ratio, np.nan)


def skew(returns: FloatArray) -> FloatArray:
    """Sample skewness adjusted for bias (as pandas' and quantstats')."""
    n = observations(returns)
    with _errstate():
        centered = returns - np.nanmean(returns, axis=0)
        m2 = np.nanmean(centered**2, axis=0)
        m3 = np.nanmean(centered**3, axis=0)
        g1 = m3 / m2**1.5
        result = g1 * np.sqrt(n * (n - 1)) / (n - 2)
    return np.where((n >= 3) & (m2 > 0), result, np.nan)


def kurtosis(returns: FloatArray) -> FloatArray:
    """Excess kurtosis adjusted for bias (as pandas' and quantstats')."""
    n = observations(returns)
    with _errstate():
        centered = returns - np.nanmean(returns, axis=0)
        m2 = np.nanmean(centered**2, axis=0)
        m4 = np.nanmean(centered**4, axis=0)
        g2 = m4 / m2**2 - 3.0
        result = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6.0)
    return np.where((n >= 4) & (m2 > 0), result, np.nan)


def best(returns: FloatArray) -> FloatArray:
    # fmax ignores NaN, so NaN is its identity: NaN when all are NaN or there are none.
    result: FloatArray = np.fmax.reduce(returns, axis=0, initial=np.nan)
    return result


def worst(returns: FloatArray) -> FloatArray:
    result: FloatArray = np.fmin.reduce(returns, axis=0, initial=np.nan)
    return result


def win_rate(returns: FloatArray) -> FloatArray:
    """Share of positive periods among the non-zero ones (as quantstats')."""
    wins = np.sum(returns > 0, axis=0)
    decided = np.sum((returns != 0) & ~np.isnan(returns), axis=0)
    with _errstate():
        return np.where(decided > 0, wins / decided, np.nan)


def ulcer_index(returns: FloatArray) -> FloatArray:
    """sqrt(sum(drawdown ** 2) / (n - 1)), drawdowns as fractions (as quantstats')."""
    n = observations(returns)
    with _errstate():
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
    valid = ~np.isnan(returns)
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
    (NaN for the first window - 1 periods). 1-D returns."""
    out = np.full(returns.shape[0], np.nan)
    if window < 2 or returns.shape[0] < window:
        return out
    windows = _windows(returns, window)
    with _errstate():
        if metric is RollingMetric.VOLATILITY:
            values = np.nanstd(windows, axis=-1, ddof=1) * np.sqrt(periods_per_year)
        elif metric is RollingMetric.SHARPE:
            excess = windows - risk_free
            std = np.nanstd(excess, axis=-1, ddof=1)
            values = np.where(
                std > 0, np.nanmean(excess, axis=-1) / std * np.sqrt(periods_per_year), np.nan
            )
        elif metric is RollingMetric.RETURN:
            values = np.nanprod(1.0 + windows, axis=-1) - 1.0
        else:
            if benchmark is None:
                raise ValueError("rolling beta needs a benchmark")
            factor = _windows(benchmark, window)
            centered = factor - np.nanmean(factor, axis=-1, keepdims=True)
            variance = np.nanmean(centered**2, axis=-1)
            values = np.where(
                variance > 0, np.nanmean(centered * windows, axis=-1) / variance, np.nan
            )
    out[window - 1 :] = values
    return out


@dataclass(frozen=True, slots=True)
class BenchmarkStats:
    alpha: float
    beta: float
    correlation: float
    tracking_error: float
    information_ratio: float
    up_capture: float
    down_capture: float


def beta(returns: FloatArray, benchmark: FloatArray) -> float:
    """Cov(r, b) / Var(b) over the periods where both are known (empyrical's estimate)."""
    both = ~np.isnan(returns) & ~np.isnan(benchmark)
    if both.sum() < MIN_OBSERVATIONS:
        return np.nan
    centered = benchmark[both] - benchmark[both].mean()
    variance = np.mean(centered**2)
    return float(np.mean(centered * returns[both]) / variance) if variance > 0 else np.nan


def benchmark_stats(
    returns: FloatArray, benchmark: FloatArray, periods_per_year: float, risk_free: float = 0.0
) -> BenchmarkStats:
    """Alpha (annualised, geometric), beta, correlation, tracking error, information ratio
    (annualised) and up/down capture of 1-D `returns` against an aligned `benchmark`."""
    both = ~np.isnan(returns) & ~np.isnan(benchmark)
    r, b = returns[both], benchmark[both]
    if r.shape[0] < MIN_OBSERVATIONS:
        return BenchmarkStats(*(np.nan,) * 7)
    slope = beta(r, b)
    with _errstate():
        alpha = (1.0 + np.mean((r - risk_free) - slope * (b - risk_free))) ** periods_per_year - 1.0
        correlation = float(np.corrcoef(r, b)[0, 1]) if np.std(r) > 0 and np.std(b) > 0 else np.nan
        active = r - b
        active_std = np.std(active, ddof=1)
        tracking_error = active_std * np.sqrt(periods_per_year)
        information = (
            np.mean(active) / active_std * np.sqrt(periods_per_year) if active_std > 0 else np.nan
        )
    return BenchmarkStats(
        alpha=float(alpha),
        beta=slope,
        correlation=correlation,
        tracking_error=float(tracking_error),
        information_ratio=float(information),
        up_capture=_capture(r, b, b > 0, periods_per_year),
        down_capture=_capture(r, b, b < 0, periods_per_year),
    )


def _capture(r: FloatArray, b: FloatArray, mask: BoolArray, periods_per_year: float) -> float:
    """Annualised return of `r` over the annualised return of `b`, on the masked periods."""
    if not mask.any():
        return np.nan
    ours = float(cagr(r[mask], periods_per_year))
    theirs = float(cagr(b[mask], periods_per_year))
    return ours / theirs if theirs != 0 else np.nan


def undefined_reasons(returns: FloatArray) -> dict[str, str]:
    """Why metrics of 1-D `returns` are undefined, by metric name (empty when all are)."""
    n = int(observations(returns))
    reasons: dict[str, str] = {}
    if n < MIN_OBSERVATIONS:
        few = f"needs at least {MIN_OBSERVATIONS} observations, has {n}"
        for name in ("volatility", "sharpe", "sortino", "omega", "tailRatio", "skew", "kurtosis"):
            reasons[name] = few
        if n == 0:
            for name in ("totalReturn", "cagr", "maxDrawdown", "calmar"):
                reasons[name] = "no observations"
        return reasons
    valid = returns[~np.isnan(returns)]
    if np.all(valid == valid[0]):
        for name in ("sharpe", "skew", "kurtosis"):
            reasons[name] = "returns do not vary (zero standard deviation)"
    if np.all(valid >= 0):
        reasons["sortino"] = "no period fell below the required return (no downside)"
        reasons["omega"] = "no period fell below the threshold (no losses)"
        reasons["calmar"] = "no drawdown"
    if n < 4:
        reasons["kurtosis"] = "needs at least 4 observations"
    if n < 3:
        reasons["skew"] = "needs at least 3 observations"
    return reasons
