"""The distribution of wins and losses: averages, their ratios, streaks, outliers, Kelly.

Each measure follows quantstats 0.0.86's definition of the same name over the same inputs
(see docs/metrics.md), with coinql's conventions where quantstats' differ:

- `returns` is an ndarray of shape (n_observations,) or (n_observations, n_series) of simple
  period returns; every function reduces along axis 0 and returns an ndarray of shape () for
  1-D returns (a numpy scalar or a 0-d array), of shape (n_series,) otherwise.
- A win is a positive return and a loss a negative one; a zero return is neither, except where
  a definition says otherwise (profit factor and the outlier win ratio count zeros as wins, as
  quantstats does).
- NaN marks a missing observation, and so does ±inf: it is left out (n counts the others), so
  a missing period neither breaks a streak nor counts as one (quantstats' streaks break on it).
- An undefined result is NaN, never an infinity: a ratio over losses is NaN without losses (up
  to rounding, `estimators.negligible`), where quantstats' profit factor gives inf or 0.
- The measures are per period: for weekly or monthly figures, aggregate the returns first
  (`coinql.domain.aggregate`), as quantstats' `aggregate` and `resolution` arguments do.
"""

from __future__ import annotations

import numpy as np

from coinql.domain.distribution import tail_ratio, win_rate
from coinql.domain.estimators import (
    known,
    negligible,
    observations,
    reduce_known,
    undefined_as_nan,
)
from coinql.domain.typing import BoolArray, FloatArray, IntArray


def known_first(returns: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Move each series' known returns to the top, in their order, and the missing ones after.

    Measures of a sequence (streaks, autocorrelation, a cumulative trend) leave a missing
    observation out by closing the gap: the returns either side of it become neighbours.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    values : ndarray of the shape of `returns`
        The known returns of each series first, then NaN.
    counts : ndarray of shape () or (n_series,)
        The known returns of each series (`observations`).
    """
    values = known(returns)
    missing = np.isnan(values)
    if not missing.any():  # the common case: no reordering
        return values, observations(values)
    order = np.argsort(missing, axis=0, kind="stable")
    return np.take_along_axis(values, order, axis=0), observations(values)


def _mean_where(returns: FloatArray, chosen: BoolArray) -> FloatArray:
    """Return the mean of the returns where `chosen`, NaN where none is."""
    count = np.sum(chosen, axis=0)
    with undefined_as_nan():
        mean = np.sum(np.where(chosen, returns, 0.0), axis=0) / count
    return np.where(count > 0, mean, np.nan)


def avg_win(returns: FloatArray) -> FloatArray:
    """Compute the mean of the positive returns.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without a positive return.
    """
    values = known(returns)
    return _mean_where(values, values > 0)


def avg_loss(returns: FloatArray) -> FloatArray:
    """Compute the mean of the negative returns (a negative number).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without a negative return.
    """
    values = known(returns)
    return _mean_where(values, values < 0)


def payoff_ratio(returns: FloatArray) -> FloatArray:
    """Compute the mean win over the magnitude of the mean loss, avg_win / |avg_loss|.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without a win, or without a loss (up to rounding).
    """
    loss = np.abs(avg_loss(returns))
    with undefined_as_nan():
        ratio = avg_win(returns) / loss
    return np.where(negligible(loss, 0.0), np.nan, ratio)


def _over_losses(gains: FloatArray, returns: FloatArray) -> FloatArray:
    """`gains` over the magnitude of the summed losses; NaN without losses (up to rounding)."""
    values = known(returns)
    losses = -np.sum(np.where(values < 0, values, 0.0), axis=0)
    n = observations(values)
    with undefined_as_nan():
        ratio = gains / losses
        no_losses = negligible(losses / n, reduce_known("mean", values, axis=0))
    return np.where((n >= 1) & ~no_losses, ratio, np.nan)


def profit_factor(returns: FloatArray) -> FloatArray:
    """Compute the sum of the non-negative returns over the magnitude of the negative ones' sum.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without a loss (their mean per period negligible), where quantstats gives inf (0
        when there are no gains either).
    """
    values = known(returns)
    return _over_losses(np.sum(np.where(values >= 0, values, 0.0), axis=0), returns)


def gain_to_pain_ratio(returns: FloatArray) -> FloatArray:
    """Compute Schwager's gain-to-pain ratio: the sum of all returns over |sum of the losses|.

    quantstats sums the returns within each period of its `resolution` first (daily by
    default) and does not subtract its `rf`; for a coarser resolution pass the returns summed
    by period, ``aggregate(timestamps, returns, period, compounded=False)``.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without a loss (their mean per period negligible).
    """
    return _over_losses(reduce_known("sum", known(returns), axis=0), returns)


def common_sense_ratio(returns: FloatArray) -> FloatArray:
    """Compute the profit factor times the tail ratio (`distribution.tail_ratio`).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN where either factor is: without a loss, below two observations, or when the 5th
        percentile is zero.
    """
    return profit_factor(returns) * tail_ratio(returns)


def cpc_index(returns: FloatArray) -> FloatArray:
    """Compute the CPC index: profit factor x win rate x payoff ratio.

    The win rate is the share of positive returns among the non-zero ones
    (`distribution.win_rate`).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without a win or without a loss.
    """
    return profit_factor(returns) * win_rate(returns) * payoff_ratio(returns)


def kelly_criterion(returns: FloatArray) -> FloatArray:
    """Compute the fixed-odds Kelly fraction p - (1 - p) / b.

    p is the win rate (`distribution.win_rate`) and b the payoff ratio, as quantstats 0.0.84
    and later: the fraction of capital to stake on a bet that wins b per unit lost with
    probability p, which ignores the size of the losses themselves.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        At most 1, negative when the odds are against; NaN without a win or without a loss.
    """
    payoff = payoff_ratio(returns)
    p = win_rate(returns)
    with undefined_as_nan():
        return (payoff * p - (1.0 - p)) / payoff


def risk_of_ruin(returns: FloatArray) -> FloatArray:
    """Compute quantstats' risk of ruin, ((1 - p) / (1 + p)) ** n.

    p is the win rate (`distribution.win_rate`) and n the number of known returns, zeros
    included. The formula is quantstats' (a gambler's-ruin bound for even bets with a capital
    of n units), not a model of the returns' sizes; on a long daily history it is ~0.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        In [0, 1]; NaN when no known return is non-zero (quantstats: 1, from a win rate of 0).
    """
    p = win_rate(returns)
    with undefined_as_nan():
        ruin = ((1.0 - p) / (1.0 + p)) ** observations(returns)
    return np.where(np.isnan(p), np.nan, ruin)  # NaN ** 0 is 1


def _longest_run(chosen: BoolArray) -> IntArray:
    """Return the longest run of consecutive True along axis 0 (0 when there is none)."""
    if chosen.shape[0] == 0:
        return np.zeros(chosen.shape[1:], dtype=np.int64)
    counted = np.cumsum(chosen, axis=0, dtype=np.int64)
    # The count at the last False before each position; subtracting it restarts the run there.
    reset = np.maximum.accumulate(np.where(chosen, 0, counted), axis=0)
    return np.max(counted - reset, axis=0)


def consecutive_wins(returns: FloatArray) -> IntArray:
    """Return the longest run of consecutive positive returns.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
        A missing return is left out: the returns either side of it are consecutive.

    Returns
    -------
    ndarray of int64 of shape () or (n_series,)
        0 without a positive return (and without observations, where quantstats gives NaN).
    """
    values, _ = known_first(returns)
    return _longest_run(values > 0)


def consecutive_losses(returns: FloatArray) -> IntArray:
    """Return the longest run of consecutive negative returns.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
        A missing return is left out: the returns either side of it are consecutive.

    Returns
    -------
    ndarray of int64 of shape () or (n_series,)
        0 without a negative return (and without observations).
    """
    values, _ = known_first(returns)
    return _longest_run(values < 0)


def expected_return(returns: FloatArray) -> FloatArray:
    """Compute the geometric mean return per period, prod(1 + r) ** (1 / n) - 1.

    n counts the known returns only (as quantstats'; `compounding.cagr` spreads the growth
    over missing periods too).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without observations.
    """
    n = observations(returns)
    with undefined_as_nan():
        growth = reduce_known("prod", 1.0 + known(returns), axis=0)
        mean = growth ** (1.0 / n) - 1.0
    return np.where(n >= 1, mean, np.nan)


def _outlier_ratio(returns: FloatArray, quantile: float, side: BoolArray) -> FloatArray:
    """Return the `quantile` of the returns over the mean of those on `side`."""
    values = known(returns)
    if values.shape[0] == 0:  # nanpercentile drops the quantile axis of an empty input
        return np.full(values.shape[1:], np.nan)
    mean = _mean_where(values, side)
    with undefined_as_nan():
        ratio = reduce_known("percentile", values, axis=0, q=100.0 * quantile) / mean
    return np.where(negligible(np.abs(mean), 0.0), np.nan, ratio)


def outlier_win_ratio(returns: FloatArray, quantile: float = 0.99) -> FloatArray:
    """Compute the `quantile` of the returns over the mean of the non-negative ones.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    quantile : float, default 0.99
        Linearly interpolated between observations (numpy's and pandas' default).

    Returns
    -------
    ndarray of shape () or (n_series,)
        NaN without a non-negative return or when their mean is zero (up to rounding).
    """
    values = known(returns)
    return _outlier_ratio(values, quantile, values >= 0)


def outlier_loss_ratio(returns: FloatArray, quantile: float = 0.01) -> FloatArray:
    """Compute the `quantile` of the returns over the mean of the negative ones.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
    quantile : float, default 0.01
        Linearly interpolated between observations.

    Returns
    -------
    ndarray of shape () or (n_series,)
        Positive when the quantile is a loss; NaN without a negative return.
    """
    values = known(returns)
    return _outlier_ratio(values, quantile, values < 0)
