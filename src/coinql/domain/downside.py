"""Downside measures: returns below a required return or threshold.

Downside risk (the lower semi-deviation around a required return), the Sortino ratio over it,
and the omega ratio of gains to losses around a threshold. `returns` is an ndarray of shape
(n_observations,) or (n_observations, n_series) of simple period returns; every function reduces
along axis 0 and returns an ndarray of shape () for 1-D returns (a numpy scalar or a 0-d array),
(n_series,) otherwise. NaN and ±inf are missing observations, left out; an undefined result is
NaN (see `coinql.domain.estimators`).
"""

from __future__ import annotations

import numpy as np

from coinql.domain.estimators import (
    MIN_OBSERVATIONS,
    known,
    negligible,
    observations,
    reduce_known,
    undefined_as_nan,
)
from coinql.domain.typing import FloatArray


def downside_risk(
    returns: FloatArray, periods_per_year: float, required_return: float = 0.0
) -> FloatArray:
    """Compute sqrt(mean(min(r - required, 0) ** 2)) x sqrt(P) over all observations.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    periods_per_year : float
    required_return : float, default 0.0
        Per period.

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations.
    """
    shortfall = np.minimum(known(returns) - required_return, 0.0)
    with undefined_as_nan():
        risk = np.sqrt(reduce_known("mean", shortfall**2, axis=0)) * np.sqrt(periods_per_year)
    return np.where(observations(returns) >= MIN_OBSERVATIONS, risk, np.nan)


def sortino(
    returns: FloatArray, periods_per_year: float, required_return: float = 0.0
) -> FloatArray:
    """Compute the mean excess return x P over the downside risk.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    periods_per_year : float
    required_return : float, default 0.0
        Per period.

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations and without a downside (none of the returns below the
        required return, up to rounding).
    """
    risk = downside_risk(returns, periods_per_year, required_return)
    with undefined_as_nan():
        mean = reduce_known("mean", known(returns) - required_return, axis=0)
        ratio = mean * periods_per_year / risk
    return np.where(negligible(risk / np.sqrt(periods_per_year), mean), np.nan, ratio)


def omega(returns: FloatArray, threshold: float = 0.0) -> FloatArray:
    """Divide the sum of gains over the threshold by the sum of losses under it.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    threshold : float, default 0.0
        Per period.

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations or without losses (their mean per period negligible).
    """
    excess = known(returns) - threshold
    n = observations(returns)
    gains = reduce_known("sum", np.maximum(excess, 0.0), axis=0)
    losses = reduce_known("sum", np.maximum(-excess, 0.0), axis=0)
    with undefined_as_nan():
        ratio = gains / losses
        no_losses = negligible(losses / n, reduce_known("mean", excess, axis=0))
    return np.where((n >= MIN_OBSERVATIONS) & ~no_losses, ratio, np.nan)
