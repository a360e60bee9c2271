"""Period returns of several assets on the timestamps their close series share."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from coinql.domain.typing import FloatArray, IntArray


class ReturnKind(StrEnum):
    """Period returns as simple (p1 / p0 - 1) or log (ln(p1 / p0)) returns."""

    SIMPLE = "SIMPLE"
    LOG = "LOG"


@dataclass(frozen=True, slots=True)
class ReturnsMatrix:
    """Returns of several assets on common timestamps.

    Parameters
    ----------
    symbols : list of str
        The n_assets assets, in column order.
    timestamps : ndarray of int64 of shape (n_observations,)
        The later open time of each pair of closes a return is measured between.
    values : ndarray of shape (n_observations, n_assets)
        The returns; NaN where a return is not finite (a zero or missing close).
    """

    symbols: list[str]
    timestamps: IntArray
    values: FloatArray


def returns_matrix(
    symbols: list[str], closes: list[tuple[IntArray, FloatArray]], kind: ReturnKind
) -> ReturnsMatrix:
    """Align close series on the timestamps they all share, then take period returns.

    Alignment is an inner join: a timestamp missing for any asset is dropped for all, and the
    return at each kept timestamp is measured from the previous kept timestamp. So every row
    covers the same span for every asset, at the cost of merging periods around a gap.

    Parameters
    ----------
    symbols : list of str
        The n_assets assets, in the order of `closes`.
    closes : list of (timestamps, closes) pairs
        Per asset, its open times (ndarray of int64 of shape (n_i,), sorted and unique) and
        closes (ndarray of shape (n_i,)).
    kind : ReturnKind
        Simple or log returns.

    Returns
    -------
    ReturnsMatrix
        values of shape (n_observations, n_assets) with n_observations one less than the
        shared timestamps (zero when fewer than two are shared; (0, 0) for no assets). A
        return that is not finite (from a zero, negative for LOG, or NaN close) is NaN.
    """
    if not closes:
        return ReturnsMatrix(symbols, np.empty(0, np.int64), np.empty((0, 0)))
    common = closes[0][0]
    for timestamps, _ in closes[1:]:
        common = np.intersect1d(common, timestamps, assume_unique=True)
    prices = (
        np.column_stack(
            [values[np.searchsorted(timestamps, common)] for timestamps, values in closes]
        )
        if common.size
        else np.empty((0, len(closes)))
    )
    if prices.shape[0] < 2:
        return ReturnsMatrix(symbols, np.empty(0, np.int64), np.empty((0, len(closes))))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = prices[1:] / prices[:-1]
        values = np.log(ratios) if kind is ReturnKind.LOG else ratios - 1.0
    values[~np.isfinite(values)] = np.nan
    return ReturnsMatrix(symbols, common[1:], values)
