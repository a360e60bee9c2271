"""Period returns compounded into calendar buckets: weeks, months, quarters, years (UTC).

Weeks open on Monday 00:00 UTC, as coinql's W1 candles (`candles.Interval.W1`); months,
quarters and years open on their first day at 00:00 UTC. A bucket is named by its opening
time in epoch milliseconds. The per-period measures of `coinql.domain.win_loss` read the
aggregated returns as they read daily ones, as quantstats' `aggregate` argument does.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from coinql.domain.candles import Interval
from coinql.domain.estimators import known
from coinql.domain.typing import FloatArray, IntArray


class Period(StrEnum):
    """A calendar bucket of returns."""

    WEEK = "WEEK"
    MONTH = "MONTH"
    QUARTER = "QUARTER"
    YEAR = "YEAR"


def bucket_starts(timestamps_ms: IntArray, period: Period) -> IntArray:
    """Return the opening time of the bucket containing each timestamp.

    Parameters
    ----------
    timestamps_ms : ndarray of int64 of shape (n,)
        Epoch milliseconds (UTC).
    period : Period

    Returns
    -------
    ndarray of int64 of shape (n,)
        Epoch milliseconds of each bucket's opening: a Monday for WEEK, the first of the
        month for MONTH, of January, April, July or October for QUARTER, of January for YEAR.
    """
    timestamps = np.asarray(timestamps_ms, dtype=np.int64)
    if period is Period.WEEK:
        return Interval.W1.floor(timestamps)
    instants = timestamps.astype("datetime64[ms]")
    if period is Period.YEAR:
        starts = instants.astype("datetime64[Y]")
    else:
        months = instants.astype("datetime64[M]").astype(np.int64)
        if period is Period.QUARTER:
            months = months // 3 * 3
        starts = months.astype("datetime64[M]")
    return starts.astype("datetime64[ms]").astype(np.int64)


def aggregate(
    timestamps_ms: IntArray,
    returns: FloatArray,
    period: Period,
    *,
    compounded: bool = True,
) -> tuple[IntArray, FloatArray]:
    """Compound the returns within each calendar bucket (UTC).

    Parameters
    ----------
    timestamps_ms : ndarray of int64 of shape (n_observations,)
        Epoch milliseconds of each return, in any order.
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)
        Simple period returns; NaN and ±inf are missing observations, left out.
    period : Period
    compounded : bool, default True
        Compound the returns, prod(1 + r) - 1; when False sum them (as quantstats'
        `compounded=False` and the resampling of its gain-to-pain ratio).

    Returns
    -------
    starts : ndarray of int64 of shape (n_buckets,)
        The opening times of the buckets holding at least one timestamp, ascending.
    returns : ndarray of shape (n_buckets,) or (n_buckets, n_series)
        The compounded (or summed) return of each bucket; NaN where none of its returns is
        known (quantstats compounds such a bucket to 0).
    """
    starts, bucket = np.unique(bucket_starts(timestamps_ms, period), return_inverse=True)
    bucket = bucket.reshape(-1)
    values = known(returns)
    valid = np.isfinite(values)
    shape = (starts.shape[0], *values.shape[1:])
    seen = np.zeros(shape, dtype=bool)
    np.logical_or.at(seen, bucket, valid)
    if compounded:
        growth = np.ones(shape)
        np.multiply.at(growth, bucket, np.where(valid, 1.0 + values, 1.0))
        result = growth - 1.0
    else:
        result = np.zeros(shape)
        np.add.at(result, bucket, np.where(valid, values, 0.0))
    return starts, np.where(seen, result, np.nan)
