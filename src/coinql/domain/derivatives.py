"""Perpetual futures: funding rates, open interest, mark and index prices, and the basis.

Conventions (the research contract's): a funding rate is per funding period (0.0001 = 0.01 %),
positive when longs pay shorts; the basis is (mark - index) / index, the perpetual's premium
over the spot index, positive when the perpetual trades above spot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coinql.domain.candles import Interval, source_intervals
from coinql.domain.typing import BoolArray, FloatArray, IntArray

HOUR_MS = 3_600_000
FUNDING_PERIOD_MS = 8 * HOUR_MS


@dataclass(frozen=True, slots=True)
class FundingRates:
    """Funding payments of one perpetual.

    Parameters
    ----------
    timestamps : ndarray of int64 of shape (n_fundings,)
        When each funding was paid, epoch milliseconds (UTC), increasing.
    rates : ndarray of shape (n_fundings,)
        The rate of each, per funding period; positive when longs pay shorts.
    """

    timestamps: IntArray
    rates: FloatArray

    def __len__(self) -> int:
        """Count the fundings."""
        return int(self.timestamps.size)

    @classmethod
    def empty(cls) -> FundingRates:
        """No fundings at all."""
        return cls(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))

    def between(self, start: int | None, end: int | None) -> FundingRates:
        """Select the fundings paid in [start, end] (inclusive; None leaves a side open)."""
        keep = _window(self.timestamps, start, end)
        return FundingRates(self.timestamps[keep], self.rates[keep])


@dataclass(frozen=True, slots=True)
class PerpetualBars:
    """A perpetual's state at the close of each bar of one interval.

    Parameters
    ----------
    timestamps : ndarray of int64 of shape (n_bars,)
        Open times of the bars, epoch milliseconds (UTC), increasing (as candles').
    open_interest : ndarray of shape (n_bars,)
        Open interest at the bar's close, in the quote currency (USD notional); NaN if unknown.
    mark_price : ndarray of shape (n_bars,)
        The perpetual's mark price at the bar's close; NaN if unknown.
    index_price : ndarray of shape (n_bars,)
        The spot index the perpetual tracks, at the bar's close; NaN if unknown.
    """

    timestamps: IntArray
    open_interest: FloatArray
    mark_price: FloatArray
    index_price: FloatArray

    def __len__(self) -> int:
        """Count the bars."""
        return int(self.timestamps.size)

    @classmethod
    def empty(cls) -> PerpetualBars:
        """No bars at all."""
        nothing = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), nothing, nothing, nothing)

    def take(self, rows: IntArray | BoolArray | slice) -> PerpetualBars:
        """Select rows (indices, a mask or a slice) of every column."""
        return PerpetualBars(
            self.timestamps[rows],
            self.open_interest[rows],
            self.mark_price[rows],
            self.index_price[rows],
        )

    def between(self, start: int | None, end: int | None) -> PerpetualBars:
        """Select the bars whose open time lies in [start, end] (None leaves a side open)."""
        return self.take(_window(self.timestamps, start, end))


def basis(bars: PerpetualBars) -> FloatArray:
    """Compute the basis of each bar: (mark - index) / index at its close.

    Parameters
    ----------
    bars : PerpetualBars
        The bars, of n_bars rows.

    Returns
    -------
    ndarray of shape (n_bars,)
        The basis; NaN where the mark or the index is unknown, or the index is not positive.
    """
    index = bars.index_price
    valid = np.isfinite(index) & (index > 0) & np.isfinite(bars.mark_price)
    result = np.full(index.shape, np.nan)
    np.divide(bars.mark_price - index, index, out=result, where=valid)
    return result


def last_per_bucket(bars: PerpetualBars, source: Interval, target: Interval) -> PerpetualBars:
    """Resample bars to a coarser interval, keeping each bucket's last bar.

    The values are levels at a bar's close, so a bucket's value is that of the bar closing it.
    A bucket whose closing bar is missing is left out: its last bar would be an earlier state,
    not the bucket's close (as `candles.aggregate` leaves incomplete buckets out).

    Parameters
    ----------
    bars : PerpetualBars
        Bars of `source`, of n_bars rows, increasing open times.
    source : Interval
        Their interval.
    target : Interval
        The interval wanted, one that `source` divides (see `candles.source_intervals`).

    Returns
    -------
    PerpetualBars
        One bar per complete bucket, stamped with the bucket's open time.

    Raises
    ------
    ValueError
        If `source` does not divide `target`.
    """
    if source is target:
        return bars
    if source not in source_intervals(target):
        raise ValueError(f"{target.value} bars cannot be made from {source.value} bars")
    if len(bars) == 0:
        return bars
    buckets = target.floor(bars.timestamps)
    last = np.flatnonzero(np.append(buckets[1:] != buckets[:-1], True))
    closing = bars.timestamps[last] + source.milliseconds == buckets[last] + target.milliseconds
    rows = last[closing]
    resampled = bars.take(rows)
    return PerpetualBars(
        buckets[rows], resampled.open_interest, resampled.mark_price, resampled.index_price
    )


def _window(timestamps: IntArray, start: int | None, end: int | None) -> BoolArray:
    keep = np.ones(timestamps.shape, dtype=bool)
    if start is not None:
        keep &= timestamps >= start
    if end is not None:
        keep &= timestamps <= end
    return keep
