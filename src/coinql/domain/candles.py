"""Candles as packed arrays: intervals, validation, aggregation and gaps.

Timestamps are candle *open* times in epoch milliseconds (UTC). Prices are float64; a volume
that a source does not provide is NaN. The returns of several assets on common timestamps
are in `coinql.domain.returns`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from coinql.domain.typing import BoolArray, FloatArray, IntArray

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
# 1970-01-01 was a Thursday; weekly candles open on Monday 00:00 UTC, as exchanges' do.
WEEK_OFFSET_MS = 4 * DAY_MS


class Interval(StrEnum):
    """A candle interval, from one minute (M1) to one week (W1, opening Monday 00:00 UTC)."""

    M1 = "M1"
    M5 = "M5"
    M15 = "M15"
    M30 = "M30"
    H1 = "H1"
    H4 = "H4"
    D1 = "D1"
    W1 = "W1"

    @property
    def milliseconds(self) -> int:
        """Length of one candle in milliseconds."""
        return _INTERVAL_MS[self]

    @property
    def periods_per_year(self) -> float:
        """Periods in a 365-day year: D1 -> 365, H1 -> 8760, W1 -> 365 / 7."""
        return 365 * DAY_MS / self.milliseconds

    @property
    def ccxt_timeframe(self) -> str:
        """The interval as ccxt names it: "1m", "1h", "1d", "1w"."""
        return _CCXT_TIMEFRAMES[self]

    def floor(self, timestamps: IntArray) -> IntArray:
        """Floor timestamps to the open time of the candle containing each.

        Parameters
        ----------
        timestamps : ndarray of int64 of shape (n,)
            Epoch milliseconds (UTC).

        Returns
        -------
        ndarray of int64 of shape (n,)
            The open time of the candle of this interval containing each timestamp.
        """
        offset = WEEK_OFFSET_MS if self is Interval.W1 else 0
        step = self.milliseconds
        return ((timestamps - offset) // step) * step + offset

    def is_aligned(self, timestamps: IntArray) -> BoolArray:
        """Tell which timestamps are open times of candles of this interval.

        Parameters
        ----------
        timestamps : ndarray of int64 of shape (n,)
            Epoch milliseconds (UTC).

        Returns
        -------
        ndarray of bool of shape (n,)
            Whether each timestamp lies on a candle boundary.
        """
        aligned: BoolArray = self.floor(timestamps) == timestamps
        return aligned


_INTERVAL_MS = {
    Interval.M1: MINUTE_MS,
    Interval.M5: 5 * MINUTE_MS,
    Interval.M15: 15 * MINUTE_MS,
    Interval.M30: 30 * MINUTE_MS,
    Interval.H1: 60 * MINUTE_MS,
    Interval.H4: 240 * MINUTE_MS,
    Interval.D1: DAY_MS,
    Interval.W1: 7 * DAY_MS,
}
_CCXT_TIMEFRAMES = {
    Interval.M1: "1m",
    Interval.M5: "5m",
    Interval.M15: "15m",
    Interval.M30: "30m",
    Interval.H1: "1h",
    Interval.H4: "4h",
    Interval.D1: "1d",
    Interval.W1: "1w",
}


def source_intervals(target: Interval) -> list[Interval]:
    """List the smaller intervals that `target` candles can be aggregated from.

    Parameters
    ----------
    target : Interval
        The interval wanted.

    Returns
    -------
    list of Interval
        The intervals dividing `target` evenly (for W1, only up to D1, whose candles nest in
        weeks), largest (cheapest to aggregate) first; empty for M1.
    """
    return [
        interval
        for interval in sorted(Interval, key=lambda item: item.milliseconds, reverse=True)
        if interval.milliseconds < target.milliseconds
        and (
            target.milliseconds % interval.milliseconds == 0
            and (target is not Interval.W1 or interval.milliseconds <= DAY_MS)
        )
    ]


@dataclass(frozen=True, slots=True)
class Candles:
    """A candle series: parallel arrays of shape (n_candles,), ordered by open time.

    Parameters
    ----------
    timestamps : ndarray of int64 of shape (n_candles,)
        Open times in epoch milliseconds (UTC).
    open, high, low, close : ndarray of shape (n_candles,)
        Prices in the quote currency.
    volume, quote_volume : ndarray of shape (n_candles,)
        Traded volume in the base and in the quote currency; NaN where the source gives none.
    """

    timestamps: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    quote_volume: FloatArray

    def __len__(self) -> int:
        """Return the number of candles."""
        return int(self.timestamps.shape[0])

    @classmethod
    def empty(cls) -> Candles:
        """Return a series of no candles (arrays of shape (0,))."""
        nothing = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), *(nothing,) * 6)

    @classmethod
    def from_columns(
        cls,
        timestamps: object,
        open: object,
        high: object,
        low: object,
        close: object,
        volume: object,
        quote_volume: object,
    ) -> Candles:
        """Build a series from array-likes (lists, arrays, database columns).

        Parameters
        ----------
        timestamps : array-like of int of shape (n_candles,)
            Open times in epoch milliseconds (UTC), ordered.
        open, high, low, close, volume, quote_volume : array-like of shape (n_candles,)
            Converted to float64; None becomes NaN.

        Returns
        -------
        Candles
            The series, not validated (see `validate`).
        """

        def floats(values: object) -> FloatArray:
            # None becomes NaN.
            return np.asarray(values, dtype=np.float64)

        return cls(
            np.asarray(timestamps, dtype=np.int64),
            floats(open),
            floats(high),
            floats(low),
            floats(close),
            floats(volume),
            floats(quote_volume),
        )

    def between(self, start: int | None, end: int | None) -> Candles:
        """Select the candles whose open time lies in [start, end].

        Parameters
        ----------
        start, end : int or None
            Inclusive bounds in epoch milliseconds; None leaves that side open.

        Returns
        -------
        Candles
            The candles in the window, possibly none.
        """
        mask = np.ones(len(self), dtype=bool)
        if start is not None:
            mask &= self.timestamps >= start
        if end is not None:
            mask &= self.timestamps <= end
        return self.select(mask)

    def select(self, index: BoolArray | IntArray) -> Candles:
        """Select candles by a mask or by positions.

        Parameters
        ----------
        index : ndarray of bool of shape (n_candles,) or ndarray of int
            A mask over the candles, or their positions.

        Returns
        -------
        Candles
            The selected candles, every column indexed alike.
        """
        return Candles(
            self.timestamps[index],
            self.open[index],
            self.high[index],
            self.low[index],
            self.close[index],
            self.volume[index],
            self.quote_volume[index],
        )


@dataclass(frozen=True, slots=True)
class Problem:
    """One defect of an input row; `row` counts data rows from 0."""

    row: int
    message: str


def validate(candles: Candles, interval: Interval | None = None) -> list[Problem]:
    """List every defect of a candle series.

    Parameters
    ----------
    candles : Candles
        The series to check, of n_candles rows.
    interval : Interval or None, default None
        When given, open times must lie on this interval's boundaries.

    Returns
    -------
    list of Problem
        Ordered by row; empty when the series is valid. Reported: a NaN or infinite price
        ("missing or not a number"), a non-positive price, low above open, close or high,
        high below open or close, a negative volume, a duplicate or earlier open time than
        the previous row's, an open time off the interval's boundaries. A NaN volume is not
        a defect (the source did not give one).
    """
    problems: list[Problem] = []

    def report(mask: BoolArray, message: str) -> None:
        problems.extend(Problem(int(row), message) for row in np.flatnonzero(mask))

    prices = {
        "open": candles.open,
        "high": candles.high,
        "low": candles.low,
        "close": candles.close,
    }
    for name, values in prices.items():
        report(~np.isfinite(values), f"{name} is missing or not a number")
        report(np.isfinite(values) & (values <= 0), f"{name} must be positive")
    with np.errstate(invalid="ignore"):
        report(
            candles.low > np.minimum(candles.open, candles.close),
            "low is above open or close",
        )
        report(
            candles.high < np.maximum(candles.open, candles.close),
            "high is below open or close",
        )
        report(candles.low > candles.high, "low is above high")
        report(candles.volume < 0, "volume is negative")
        report(candles.quote_volume < 0, "quote volume is negative")
    steps = np.diff(candles.timestamps)
    duplicate = np.concatenate([[False], steps == 0])
    unordered = np.concatenate([[False], steps < 0])
    report(duplicate, "duplicate timestamp (same as the previous row)")
    report(unordered, "timestamp is earlier than the previous row's")
    if interval is not None:
        report(
            ~interval.is_aligned(candles.timestamps),
            f"timestamp is not on a {interval.value} candle boundary",
        )
    problems.sort(key=lambda problem: problem.row)
    return problems


def aggregate(candles: Candles, source: Interval, target: Interval) -> Candles:
    """Aggregate candles of `source` into `target` candles.

    open = first, high = max, low = min, close = last, volumes summed (NaN if any part is NaN).
    Only complete buckets are returned: a bucket missing any of its source candles would show
    a wrong open, close or volume, so it is left out rather than guessed.

    Parameters
    ----------
    candles : Candles
        A valid series of `source` candles, ordered, of n_candles rows.
    source : Interval
        Their interval.
    target : Interval
        The interval to aggregate to, one that `source` divides (see `source_intervals`).

    Returns
    -------
    Candles
        One candle per complete `target` bucket, of shape (n_buckets,) with
        n_buckets <= n_candles // (target / source); empty for an empty input.
    """
    if len(candles) == 0:
        return Candles.empty()
    buckets = target.floor(candles.timestamps)
    starts = np.flatnonzero(np.concatenate([[True], buckets[1:] != buckets[:-1]]))
    ends = np.append(starts[1:], len(candles))
    complete = (ends - starts) == target.milliseconds // source.milliseconds
    return Candles(
        timestamps=buckets[starts[complete]],
        open=candles.open[starts[complete]],
        high=np.maximum.reduceat(candles.high, starts)[complete],
        low=np.minimum.reduceat(candles.low, starts)[complete],
        close=candles.close[ends[complete] - 1],
        volume=np.add.reduceat(candles.volume, starts)[complete],
        quote_volume=np.add.reduceat(candles.quote_volume, starts)[complete],
    )


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing candles: open times from `start` to `end` inclusive, `missing` of them."""

    start: int
    end: int
    missing: int


def find_gaps(
    timestamps: IntArray, interval: Interval, start: int | None = None, end: int | None = None
) -> list[Gap]:
    """Find the runs of missing candles in a series of open times.

    Parameters
    ----------
    timestamps : ndarray of int64 of shape (n_candles,)
        Open times present, on the interval's boundaries, in any order (duplicates allowed).
    interval : Interval
        The candles' interval.
    start, end : int or None, default None
        The range to look in, floored to the interval; when None, from the first (or to the
        last) present candle.

    Returns
    -------
    list of Gap
        The holes, in time order; when nothing is present in the range, one gap covering
        all of [start, end] if both are given, else none.
    """
    step = interval.milliseconds
    if start is not None:
        start = int(interval.floor(np.asarray([start], dtype=np.int64))[0])
    if end is not None:
        end = int(interval.floor(np.asarray([end], dtype=np.int64))[0])
    present = np.unique(timestamps)
    if start is not None:
        present = present[present >= start]
    if end is not None:
        present = present[present <= end]
    if present.size == 0:
        if start is None or end is None or end < start:
            return []
        return [Gap(start, end, (end - start) // step + 1)]
    lower = present[0] if start is None else start
    upper = present[-1] if end is None else end
    # Sentinels one step outside the range turn leading and trailing holes into inner gaps.
    bounded = np.concatenate([[lower - step], present, [upper + step]])
    steps = np.diff(bounded)
    holes = np.flatnonzero(steps > step)
    return [
        Gap(int(bounded[i] + step), int(bounded[i + 1] - step), int(steps[i] // step - 1))
        for i in holes
    ]
