"""Candles as packed arrays: intervals, validation, aggregation, gaps and return matrices.

Timestamps are candle *open* times in epoch milliseconds (UTC). Prices are float64; a volume
that a source does not provide is NaN.
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
        return _INTERVAL_MS[self]

    @property
    def periods_per_year(self) -> float:
        """Periods in a 365-day year: D1 -> 365, H1 -> 8760, W1 -> 365 / 7."""
        return 365 * DAY_MS / self.milliseconds

    @property
    def ccxt_timeframe(self) -> str:
        return _CCXT_TIMEFRAMES[self]

    def floor(self, timestamps: IntArray) -> IntArray:
        """The open time of the candle of this interval containing each timestamp."""
        offset = WEEK_OFFSET_MS if self is Interval.W1 else 0
        step = self.milliseconds
        return ((timestamps - offset) // step) * step + offset

    def is_aligned(self, timestamps: IntArray) -> BoolArray:
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
    """Smaller intervals that `target` can be aggregated from, largest (cheapest) first."""
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
    """A candle series: parallel arrays of shape (n_candles,), ordered by open time."""

    timestamps: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    quote_volume: FloatArray

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @classmethod
    def empty(cls) -> Candles:
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
        """Candles whose open time lies in [start, end] (either bound optional)."""
        mask = np.ones(len(self), dtype=bool)
        if start is not None:
            mask &= self.timestamps >= start
        if end is not None:
            mask &= self.timestamps <= end
        return self.select(mask)

    def select(self, index: BoolArray | IntArray) -> Candles:
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
    """Every defect of a series: non-positive or inconsistent prices, negative volumes,
    duplicate or unordered open times, open times not on the interval's boundaries.

    Returns the problems ordered by row; an empty list means the series is valid.
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
    """Runs of missing candles between the first and last present one, or within
    [start, end] when given (after aligning them to the interval)."""
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


class ReturnKind(StrEnum):
    SIMPLE = "SIMPLE"
    LOG = "LOG"


@dataclass(frozen=True, slots=True)
class ReturnsMatrix:
    """Returns of several assets on common timestamps.

    timestamps : ndarray of shape (n_observations,), the later open time of each pair
    values : ndarray of shape (n_observations, n_assets)
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
