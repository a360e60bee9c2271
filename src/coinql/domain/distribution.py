"""The distribution of period returns: its shape (skew, kurtosis), tails and extremes.

`returns` is an ndarray of shape (n_observations,) or (n_observations, n_series) of simple
period returns; every function reduces along axis 0 and returns an ndarray of shape () for 1-D
returns (a numpy scalar or a 0-d array), (n_series,) otherwise. NaN and ±inf are missing
observations, left out; an undefined result is NaN (see `coinql.domain.estimators`).
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


def tail_ratio(returns: FloatArray) -> FloatArray:
    """Compute |95th percentile| / |5th percentile| of the returns (linear interpolation).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below two observations or when the 5th percentile is zero (up to rounding).
    """
    values = known(returns)
    if values.shape[0] == 0:  # nanpercentile drops the quantile axis of an empty input
        return np.full(values.shape[1:], np.nan)
    with undefined_as_nan():
        upper, lower = reduce_known("percentile", values, q=[95, 5])
        ratio = np.abs(upper) / np.abs(lower)
    enough = observations(values) >= MIN_OBSERVATIONS
    return np.where(enough & ~negligible(np.abs(lower), upper), ratio, np.nan)


def _standardized_moment(returns: FloatArray, order: int) -> tuple[FloatArray, FloatArray]:
    """Return n and the population moment m_order / m2 ** (order / 2).

    The moment is NaN when the returns do not vary (their standard deviation negligible).
    """
    n = observations(returns)
    with undefined_as_nan():
        mean = reduce_known("mean", known(returns), axis=0)
        centered = known(returns) - mean
        m2 = reduce_known("mean", centered**2, axis=0)
        moment = reduce_known("mean", centered**order, axis=0) / m2 ** (order / 2)
    return n, np.where(negligible(np.sqrt(m2), mean) | ~(m2 > 0), np.nan, moment)


def skew(returns: FloatArray) -> FloatArray:
    """Compute the sample skewness adjusted for bias (as pandas' and quantstats').

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below 3 observations or when the returns do not vary.
    """
    n, g1 = _standardized_moment(returns, 3)
    with undefined_as_nan():
        result = g1 * np.sqrt(n * (n - 1)) / (n - 2)
    return np.where(n >= 3, result, np.nan)


def kurtosis(returns: FloatArray) -> FloatArray:
    """Compute the excess kurtosis adjusted for bias (as pandas' and quantstats').

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN below 4 observations or when the returns do not vary.
    """
    n, m4 = _standardized_moment(returns, 4)
    with undefined_as_nan():
        result = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 - 3.0) + 6.0)
    return np.where(n >= 4, result, np.nan)


def best(returns: FloatArray) -> FloatArray:
    """Return the best period's return.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without observations.
    """
    # fmax ignores NaN, so NaN is its identity: NaN when all are NaN or there are none.
    result: FloatArray = np.fmax.reduce(known(returns), axis=0, initial=np.nan)
    return result


def worst(returns: FloatArray) -> FloatArray:
    """Return the worst period's return.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without observations.
    """
    result: FloatArray = np.fmin.reduce(known(returns), axis=0, initial=np.nan)
    return result


def win_rate(returns: FloatArray) -> FloatArray:
    """Compute the share of positive periods among the non-zero ones (as quantstats').

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN when no known return is non-zero.
    """
    values = known(returns)
    wins = np.sum(values > 0, axis=0)
    decided = np.sum((values != 0) & ~np.isnan(values), axis=0)
    with undefined_as_nan():
        return np.where(decided > 0, wins / decided, np.nan)
