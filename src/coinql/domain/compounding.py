"""Compounding: the values a return stream grows to, and the returns between values.

`returns` is an ndarray of shape (n_observations,) or (n_observations, n_series) of simple
period returns; the reductions run along axis 0 and return an ndarray of shape () for 1-D
returns (a numpy scalar or a 0-d array), (n_series,) otherwise. NaN and ±inf are missing
observations: they compound as a zero return, so equity stays flat across them, and still take
their share of the elapsed time in CAGR (as empyrical's `annual_return`).
"""

from __future__ import annotations

import numpy as np

from coinql.domain.estimators import known, observations, reduce_known, undefined_as_nan
from coinql.domain.typing import FloatArray, IntArray


def periodic_rate(annual_rate: float, periods_per_year: float) -> float:
    """Return the per-period rate equivalent to an annual rate, compounded geometrically.

    Parameters
    ----------
    annual_rate : float
    periods_per_year : float

    Returns
    -------
    float
        (1 + annual_rate) ** (1 / periods_per_year) - 1.
    """
    return float((1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0)


def _growth(returns: FloatArray) -> FloatArray:
    """Return the final value of 1 invested, NaN without observations.

    Kept apart from `total_return` so that a loss near 100 % does not lose its digits to a
    subtraction of 1 and an addition of 1.
    """
    with undefined_as_nan():
        growth = reduce_known("prod", 1.0 + known(returns), axis=0)
    return np.where(observations(returns) >= 1, growth, np.nan)


def total_return(returns: FloatArray) -> FloatArray:
    """Compound the returns: the growth of 1 minus 1.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without observations.
    """
    return _growth(returns) - 1.0


def cagr(returns: FloatArray, periods_per_year: float) -> FloatArray:
    """Compute the compound annual growth rate, (1 + total return) ** (P / T) - 1.

    T counts every period, missing ones too: a NaN period is time that passed with the equity
    flat (as empyrical's `annual_return`, whose years are len(returns) / P).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    periods_per_year : float

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without observations.
    """
    periods = max(returns.shape[0], 1)  # no periods: _growth is NaN already
    with undefined_as_nan():
        return _growth(returns) ** (periods_per_year / periods) - 1.0


def equity(returns: FloatArray) -> FloatArray:
    """Compute the growth of 1 after each period (missing periods compound as 0).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of the shape of `returns`
    """
    flat = np.where(np.isfinite(returns), returns, 0.0)
    return np.cumprod(1.0 + flat, axis=0)  # type: ignore[return-value]


def period_returns(values: FloatArray) -> FloatArray:
    """Compute simple returns between consecutive values of a series (an equity curve, closes).

    Parameters
    ----------
    values : ndarray of shape (n_observations + 1,)

    Returns
    -------
    ndarray of shape (n_observations,)
        NaN where either value is missing or the earlier one is zero (never ±inf).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0
    return np.where(np.isfinite(returns), returns, np.nan)


def simple_returns(timestamps: IntArray, closes: FloatArray) -> tuple[IntArray, FloatArray]:
    """Compute simple returns between consecutive closes, stamped with the later open time.

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
