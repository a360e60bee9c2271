"""Returns over drawdown risk: the recovery factor, the ulcer performance and serenity indexes.

Each follows quantstats 0.0.86's definition of the same name over the same inputs (see
docs/metrics.md). They are quantstats' own constructions and keep its conventions: the return
is a total over the whole span, not annualised (summed for the recovery factor and the serenity
index, compounded for the ulcer performance index), and the risk-free rate is subtracted from
that total as is. Drawdowns are `performance.drawdown`'s, from the starting capital, as
quantstats' `to_drawdown_series`; the other conventions are those of `coinql.domain.performance`:

- `returns` is an ndarray of shape (n_observations,) or (n_observations, n_series) of simple
  period returns; every function reduces along axis 0 and returns an ndarray of shape () for
  1-D returns (a numpy scalar or a 0-d array), of shape (n_series,) otherwise.
- NaN and ±inf mark a missing observation: left out of sums and moments, flat in the equity.
- An undefined result (no drawdown, too few observations) is NaN, never an infinity.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from coinql.domain.compounding import total_return
from coinql.domain.estimators import (
    MIN_OBSERVATIONS,
    known,
    negligible,
    observations,
    reduce_known,
    std_or_zero,
    undefined_as_nan,
)
from coinql.domain.performance import drawdown, max_drawdown, ulcer_index
from coinql.domain.typing import FloatArray

PITFALL_CONFIDENCE = 0.95
"""The confidence of the expected shortfall of drawdowns in the serenity index's pitfall."""


def recovery_factor(returns: FloatArray, risk_free: float = 0.0) -> FloatArray:
    """Compute quantstats' recovery factor, |sum(r) - rf| / max drawdown.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    risk_free : float, default 0.0
        Subtracted as is from the summed returns.

    Returns
    -------
    ndarray of shape () or (n_series,)
        Non-negative; NaN without observations or without a drawdown (up to rounding).
    """
    depth = max_drawdown(returns)
    total = reduce_known("sum", known(returns), axis=0) - risk_free
    with undefined_as_nan():
        ratio = np.abs(total) / depth
    return np.where(negligible(depth, 0.0), np.nan, ratio)


def ulcer_performance_index(returns: FloatArray, risk_free: float = 0.0) -> FloatArray:
    """Compute the ulcer performance index, (total return - rf) / ulcer index.

    The total return compounds the known returns; the ulcer index is `performance.ulcer_index`.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    risk_free : float, default 0.0
        Subtracted as is from the total return.

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations or without a drawdown (up to rounding).
    """
    ulcer = ulcer_index(returns)
    with undefined_as_nan():
        ratio = (total_return(returns) - risk_free) / ulcer
    return np.where(negligible(ulcer, 0.0), np.nan, ratio)


def _normal_expected_shortfall(values: FloatArray, confidence: float) -> FloatArray:
    """Return the mean of the normal fitted to the values below its 1 - confidence quantile.

    mu - sigma x phi(Phi^-1(alpha)) / alpha with alpha = 1 - confidence, sigma the sample
    standard deviation (ddof 1); mu when the values do not vary (quantstats' parametric CVaR).
    """
    alpha = 1.0 - confidence
    z = special.ndtri(alpha)
    density = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    with undefined_as_nan():
        mean = reduce_known("mean", values, axis=0)
    return mean - std_or_zero(values) * density / alpha


def serenity_index(returns: FloatArray, risk_free: float = 0.0) -> FloatArray:
    """Compute KeyQuant's serenity index as quantstats does: (sum(r) - rf) / (UI x pitfall).

    UI is the ulcer index and the pitfall -CVaR(drawdowns) / std(r): CVaR is the parametric
    (normal) expected shortfall at 95 % of the drawdown after each period, the standard
    deviations are sample ones (ddof 1).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    risk_free : float, default 0.0
        Subtracted as is from the summed returns.

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations, when the returns do not vary, or without a drawdown.
    """
    values = known(returns)
    spread = std_or_zero(values)
    shortfall = _normal_expected_shortfall(drawdown(returns), PITFALL_CONFIDENCE)
    ulcer = ulcer_index(returns)
    total = reduce_known("sum", values, axis=0) - risk_free
    with undefined_as_nan():
        pitfall = -shortfall / spread
        index = total / (ulcer * pitfall)
    undefined = (
        (observations(values) < MIN_OBSERVATIONS)
        | ~(spread > 0)
        | negligible(ulcer, 0.0)
        | ~(pitfall > 0)
    )
    return np.where(undefined, np.nan, index)
