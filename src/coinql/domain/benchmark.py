"""A return stream against a benchmark: alignment on common periods and relative statistics.

Conventions are those of `coinql.domain.performance` (empyrical's unless stated); returns are
1-D ndarrays of shape (n_observations,) and NaN marks a missing observation, left out of every
statistic (for a pair, a period where either series is NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coinql.domain.compounding import cagr
from coinql.domain.estimators import (
    MIN_OBSERVATIONS,
    negligible,
    ratio_to_std,
    slope,
    std_or_zero,
    undefined_as_nan,
)
from coinql.domain.typing import BoolArray, FloatArray, IntArray


def align(
    ours: tuple[IntArray, FloatArray], theirs: tuple[IntArray, FloatArray]
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Two return series on the timestamps they share.

    Parameters
    ----------
    ours, theirs : tuple of (ndarray of shape (n,), ndarray of shape (n,))
        Each series' timestamps (sorted, unique) and returns.

    Returns
    -------
    timestamps : ndarray of shape (n_common,)
    ours, theirs : ndarray of shape (n_common,)
        The returns at those timestamps, NaN kept as they are.
    """
    common, mine, other = np.intersect1d(ours[0], theirs[0], return_indices=True)
    return common, ours[1][mine], theirs[1][other]


@dataclass(frozen=True, slots=True)
class BenchmarkStats:
    """A stream's statistics against a benchmark; NaN where undefined (see each)."""

    alpha: float
    beta: float
    correlation: float
    tracking_error: float
    information_ratio: float
    up_capture: float
    down_capture: float


def beta(returns: FloatArray, benchmark: FloatArray) -> float:
    """Cov(r, b) / Var(b) over the periods where both are known (empyrical's estimate).

    Parameters
    ----------
    returns, benchmark : ndarray of shape (n_observations,)

    Returns
    -------
    float
        NaN below two common observations or when the benchmark does not vary on them.
    """
    return float(slope(returns, benchmark))


def _varies(values: FloatArray) -> bool:
    return not bool(negligible(float(np.std(values)), float(np.mean(values))))


def benchmark_stats(
    returns: FloatArray, benchmark: FloatArray, periods_per_year: float, risk_free: float = 0.0
) -> BenchmarkStats:
    """Relative statistics of `returns` against an aligned `benchmark`.

    Parameters
    ----------
    returns, benchmark : ndarray of shape (n_observations,)
        Aligned simple returns (see `align`); a period where either is NaN is left out.
    periods_per_year : float
        Annualises alpha, tracking error, information ratio and the captures.
    risk_free : float, default 0.0
        Per-period risk-free rate, subtracted from both series for alpha.

    Returns
    -------
    BenchmarkStats
        Alpha (annualised, geometric), beta, correlation, tracking error and information ratio
        (annualised), and up/down capture; all NaN below two common observations, correlation
        NaN when either series does not vary, a capture NaN without up (down) periods.
    """
    both = np.isfinite(returns) & np.isfinite(benchmark)
    r, b = returns[both], benchmark[both]
    if r.shape[0] < MIN_OBSERVATIONS:
        return BenchmarkStats(*(np.nan,) * 7)
    relative = beta(r, b)
    with undefined_as_nan():
        alpha = (1.0 + np.mean((r - risk_free) - relative * (b - risk_free))) ** periods_per_year
        alpha -= 1.0
        correlation = float(np.corrcoef(r, b)[0, 1]) if _varies(r) and _varies(b) else np.nan
        active = r - b
        tracking_error = std_or_zero(active) * np.sqrt(periods_per_year)
        information = ratio_to_std(active) * np.sqrt(periods_per_year)
    return BenchmarkStats(
        alpha=float(alpha),
        beta=relative,
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
