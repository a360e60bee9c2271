"""Risk-adjusted ratios of the tear sheet beyond Sharpe and Sortino, and the fit of a trend.

The smart Sharpe and Sortino ratios (penalised for autocorrelation), Schwager's adjusted
Sortino, the probabilistic Sharpe ratio, the Treynor ratio, R-squared against a benchmark and
the stability of the cumulative log return. Each follows quantstats 0.0.86's definition of the
same name (empyrical's for `stability`) over the same inputs (see docs/metrics.md); the ratios
over drawdowns are in `coinql.domain.drawdown_ratios`. Conventions are those of
`coinql.domain.performance`:

- `returns` is an ndarray of shape (n_observations,) or (n_observations, n_series) of simple
  period returns; every function reduces along axis 0 and returns an ndarray of shape () for
  1-D returns (a numpy scalar or a 0-d array), of shape (n_series,) otherwise.
- NaN and ±inf mark a missing observation, left out; in a sequence (the autocorrelation, the
  cumulative trend) the returns either side of a gap become neighbours, as in quantstats.
- `periods_per_year` (P) annualises (quantstats defaults to 252, coinql's daily bars use 365);
  `risk_free` is per period unless a function says otherwise (quantstats takes an annual rate
  and converts it geometrically, as `compounding.periodic_rate` does).
- An undefined result is NaN, never an infinity (quantstats' Treynor ratio gives 0 instead).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from coinql.domain.compounding import total_return
from coinql.domain.distribution import kurtosis, skew
from coinql.domain.downside import sortino
from coinql.domain.estimators import (
    MIN_OBSERVATIONS,
    known,
    negligible,
    ratio_to_std,
    slope,
    undefined_as_nan,
)
from coinql.domain.typing import BoolArray, FloatArray
from coinql.domain.win_loss import known_first


def _correlation(x: FloatArray, y: FloatArray, pairs: BoolArray) -> FloatArray:
    """Pearson's correlation of x and y along axis 0 over `pairs`.

    NaN below two pairs or when either does not vary on them (its std negligible).
    """
    n = np.sum(pairs, axis=0)
    with undefined_as_nan():
        moments = []
        for values in (x, y):
            inside = np.where(pairs, values, 0.0)
            mean = np.sum(inside, axis=0) / n
            centered = np.where(pairs, values - mean, 0.0)
            std = np.sqrt(np.sum(centered**2, axis=0) / n)
            moments.append((mean, centered, std))
        (mean_x, dx, std_x), (mean_y, dy, std_y) = moments
        correlation = np.sum(dx * dy, axis=0) / n / (std_x * std_y)
    flat = negligible(std_x, mean_x) | negligible(std_y, mean_y)
    return np.where((n >= MIN_OBSERVATIONS) & ~flat, correlation, np.nan)


def autocorrelation_penalty(returns: FloatArray) -> FloatArray:
    """Compute quantstats' autocorrelation penalty, sqrt(1 + 2 sum_k (n - k) / n |rho| ** k).

    rho is the lag-1 correlation of the known returns (a missing one is left out and its
    neighbours paired), k runs from 1 to n - 1: the factor by which the standard deviation of
    the n-period sum exceeds sqrt(n) x sigma when the autocorrelation decays as |rho| ** k.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        At least 1; exactly 1 below two observations or when rho is undefined (the returns
        do not vary), as quantstats'.
    """
    values, n = known_first(returns)
    if values.shape[0] < MIN_OBSERVATIONS:
        return np.ones(values.shape[1:])
    index = np.arange(values.shape[0] - 1).reshape((-1,) + (1,) * (values.ndim - 1))
    pairs = index < n - 1
    rho = np.abs(_correlation(values[:-1], values[1:], pairs))
    lags = index + 1.0
    with undefined_as_nan():
        weights = np.where(lags < n, (n - lags) / n * rho**lags, 0.0)
        penalty = np.sqrt(1.0 + 2.0 * np.sum(weights, axis=0))
    return np.where(np.isnan(rho), 1.0, penalty)


def smart_sharpe(
    returns: FloatArray, periods_per_year: float, risk_free: float = 0.0
) -> FloatArray:
    """Compute the Sharpe ratio over its autocorrelation penalty.

    mean(r - rf) / (std(r, ddof 1) x `autocorrelation_penalty`) x sqrt(P).

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
    ratio = ratio_to_std(known(returns) - risk_free)
    return ratio / autocorrelation_penalty(returns) * np.sqrt(periods_per_year)


def smart_sortino(
    returns: FloatArray, periods_per_year: float, risk_free: float = 0.0
) -> FloatArray:
    """Compute the Sortino ratio (`downside.sortino`) over its autocorrelation penalty.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    periods_per_year : float
    risk_free : float, default 0.0
        The per-period risk-free rate, which is also the required return.

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations or without a return below the risk-free rate.
    """
    return sortino(returns, periods_per_year, risk_free) / autocorrelation_penalty(returns)


def adjusted_sortino(
    returns: FloatArray, periods_per_year: float, risk_free: float = 0.0, *, smart: bool = False
) -> FloatArray:
    """Compute Schwager's adjusted Sortino ratio, the Sortino ratio / sqrt(2).

    Dividing by sqrt(2) puts it on the scale of the Sharpe ratio for symmetric returns.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    periods_per_year : float
    risk_free : float, default 0.0
        The per-period risk-free rate, which is also the required return.
    smart : bool, default False
        Penalise for autocorrelation (`smart_sortino`).

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations or without a return below the risk-free rate.
    """
    ratio = (smart_sortino if smart else sortino)(returns, periods_per_year, risk_free)
    return ratio / np.sqrt(2.0)


def probabilistic_sharpe_ratio(
    returns: FloatArray, risk_free: float = 0.0, *, smart: bool = False
) -> FloatArray:
    """Compute the probability that the true Sharpe ratio exceeds 0 (Bailey and López de Prado).

    Phi(SR / sigma_SR), with SR the per-period Sharpe ratio (not annualised: a probability has
    no annual form), sigma_SR = sqrt((1 - g3 SR + (g4 - 1) / 4 SR ** 2) / (n - 1)), g3 the
    skewness and g4 the kurtosis (not excess; both adjusted for bias, `distribution.skew`
    and `kurtosis`), and n the number of known returns (quantstats counts missing ones too).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    risk_free : float, default 0.0
        The per-period risk-free rate.
    smart : bool, default False
        Use the smart Sharpe ratio (its autocorrelation penalty).

    Returns
    -------
    ndarray of shape () or (n_series,)
        In [0, 1]; NaN below four observations, when the returns do not vary, or when the
        moments make the variance of SR negative.
    """
    values = known(returns)
    ratio = ratio_to_std(values - risk_free)
    if smart:
        ratio = ratio / autocorrelation_penalty(values)
    n = np.sum(np.isfinite(values), axis=0)
    with undefined_as_nan():
        variance = (1.0 - skew(values) * ratio + (kurtosis(values) + 2.0) / 4.0 * ratio**2) / (
            n - 1
        )
        result = special.ndtr(ratio / np.sqrt(variance))
    return np.where(variance > 0, result, np.nan)


def treynor_ratio(returns: FloatArray, benchmark: FloatArray, risk_free: float = 0.0) -> FloatArray:
    """Compute quantstats' Treynor ratio, (total return - rf) / beta.

    The total return compounds all the known returns (not annualised, so the ratio grows with
    the span); beta is Cov(r, b) / Var(b) over the periods where both are known
    (`benchmark.beta`).

    Parameters
    ----------
    returns, benchmark : ndarray of the same shape, (n_observations,) or (n_observations,
        n_series)
        Aligned simple returns (`benchmark.align`).
    risk_free : float, default 0.0
        Subtracted as is from the total return (quantstats' convention: a rate over the whole
        span, not per period).

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN when beta is undefined or zero (quantstats: 0) or without observations.
    """
    beta = slope(returns, benchmark)
    with undefined_as_nan():
        ratio = (total_return(returns) - risk_free) / beta
    return np.where(beta != 0, ratio, np.nan)


def r_squared(returns: FloatArray, benchmark: FloatArray) -> FloatArray:
    """Compute the R-squared of the returns regressed on the benchmark: their correlation ** 2.

    Parameters
    ----------
    returns, benchmark : ndarray of the same shape, (n_observations,) or (n_observations,
        n_series)
        Aligned simple returns; a period where either is missing is left out.

    Returns
    -------
    ndarray of shape () or (n_series,)
        In [0, 1]; NaN below two common observations or when either does not vary on them
        (scipy's linregress, which quantstats calls, may raise there).
    """
    pairs = np.isfinite(returns) & np.isfinite(benchmark)
    return _correlation(known(returns), known(benchmark), pairs) ** 2


def stability(returns: FloatArray) -> FloatArray:
    """Compute the R-squared of the cumulative log return against time (empyrical's stability).

    The cumulative sum of log(1 + r) over the known returns is regressed on 0, 1, ..., n - 1;
    a missing return is left out, so its neighbours are one step apart (as empyrical's
    `stability_of_timeseries`).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        In [0, 1]; NaN below two observations or when the cumulative return does not move
        (as empyrical's).
    """
    values, n = known_first(returns)
    index = np.arange(values.shape[0], dtype=np.float64).reshape((-1,) + (1,) * (values.ndim - 1))
    inside = index < n
    with undefined_as_nan():
        trend = np.cumsum(np.where(inside, np.log1p(values), 0.0), axis=0)
    steps = np.broadcast_to(index, values.shape)
    return _correlation(steps, trend, inside) ** 2
