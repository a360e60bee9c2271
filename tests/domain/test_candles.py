from __future__ import annotations

import numpy as np
import pytest

from coinql.domain.candles import (
    DAY_MS,
    Candles,
    Gap,
    Interval,
    aggregate,
    find_gaps,
    source_intervals,
    validate,
)

HOUR_MS = 3_600_000


def series(timestamps: list[int], closes: list[float] | None = None) -> Candles:
    closes = closes or [100.0 + i for i in range(len(timestamps))]
    close = np.asarray(closes, dtype=float)
    return Candles(
        np.asarray(timestamps, dtype=np.int64),
        close - 0.5,
        close + 1.0,
        close - 1.0,
        close,
        np.ones(len(close)),
        np.full(len(close), np.nan),
    )


def test_periods_per_year_follow_a_365_day_calendar() -> None:
    assert Interval.D1.periods_per_year == 365
    assert Interval.H1.periods_per_year == 8760
    assert Interval.W1.periods_per_year == pytest.approx(365 / 7)


def test_weekly_candles_open_on_monday() -> None:
    # 2021-07-07 (a Wednesday) 12:00 UTC belongs to the week opening Monday 2021-07-05.
    wednesday_noon = np.asarray([1625659200000], dtype=np.int64)
    assert Interval.W1.floor(wednesday_noon)[0] == 1625443200000


def test_weekly_aggregates_only_from_day_aligned_intervals() -> None:
    assert Interval.D1 in source_intervals(Interval.W1)
    assert source_intervals(Interval.H4)[0] is Interval.H1
    assert source_intervals(Interval.M1) == []


def test_validate_finds_every_defect_by_row() -> None:
    candles = series([0, DAY_MS, DAY_MS, 4 * DAY_MS, 3 * DAY_MS, 5 * DAY_MS + 1])
    candles.low[1] = candles.close[1] + 1  # low above close
    candles.high[3] = candles.open[3] - 1  # high below open
    candles.close[0] = -1.0  # non-positive
    candles.open[4] = np.nan  # missing
    candles.volume[3] = -5
    problems = {(p.row, p.message) for p in validate(candles, Interval.D1)}
    assert (0, "close must be positive") in problems
    assert (1, "low is above open or close") in problems
    assert (2, "duplicate timestamp (same as the previous row)") in problems
    assert (3, "high is below open or close") in problems
    assert (3, "volume is negative") in problems
    assert (4, "timestamp is earlier than the previous row's") in problems
    assert (4, "open is missing or not a number") in problems
    assert (5, "timestamp is not on a D1 candle boundary") in problems


def test_validate_accepts_a_clean_series() -> None:
    assert validate(series([0, DAY_MS, 2 * DAY_MS]), Interval.D1) == []


def test_aggregate_hours_into_days_keeps_complete_days_only() -> None:
    rng = np.random.default_rng(0)
    hours = np.arange(1, 72) * HOUR_MS  # day 0 lacks its first hour
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, hours.size)))
    candles = Candles(
        hours,
        close * 0.999,
        close * 1.01,
        close * 0.98,
        close,
        rng.random(hours.size),
        rng.random(hours.size),
    )
    days = aggregate(candles, Interval.H1, Interval.D1)
    assert days.timestamps.tolist() == [DAY_MS, 2 * DAY_MS]
    day1 = slice(23, 47)  # hours 24..47
    assert days.open[0] == candles.open[day1][0]
    assert days.close[0] == candles.close[day1][-1]
    assert days.high[0] == candles.high[day1].max()
    assert days.low[0] == candles.low[day1].min()
    assert days.volume[0] == pytest.approx(candles.volume[day1].sum(), rel=1e-12)


def test_aggregate_of_nothing_is_empty() -> None:
    assert len(aggregate(Candles.empty(), Interval.H1, Interval.D1)) == 0


@pytest.mark.parametrize(
    ("present", "start", "end", "expected"),
    [
        ([0, 1, 2, 3], None, None, []),
        ([0, 2, 3, 7], None, None, [Gap(1, 1, 1), Gap(4, 6, 3)]),
        ([2, 3], 0, 5, [Gap(0, 1, 2), Gap(4, 5, 2)]),
        ([], 0, 2, [Gap(0, 2, 3)]),
        ([], None, None, []),
        ([5], 5, 5, []),
    ],
)
def test_find_gaps(
    present: list[int], start: int | None, end: int | None, expected: list[Gap]
) -> None:
    def days(value: int | None) -> int | None:
        return None if value is None else value * DAY_MS

    gaps = find_gaps(
        np.asarray(present, dtype=np.int64) * DAY_MS, Interval.D1, days(start), days(end)
    )
    assert gaps == [Gap(g.start * DAY_MS, g.end * DAY_MS, g.missing) for g in expected]


def test_between_takes_either_bound_alone_inclusively() -> None:
    candles = series([0, DAY_MS, 2 * DAY_MS, 3 * DAY_MS])
    assert candles.between(None, DAY_MS).timestamps.tolist() == [0, DAY_MS]
    assert candles.between(2 * DAY_MS, None).timestamps.tolist() == [2 * DAY_MS, 3 * DAY_MS]
    assert len(candles.between(None, None)) == 4
    assert len(candles.between(DAY_MS + 1, 2 * DAY_MS - 1)) == 0


def test_validate_without_an_interval_ignores_boundaries() -> None:
    off_grid = series([1, DAY_MS + 1])
    assert validate(off_grid) == []
    assert [p.row for p in validate(off_grid, Interval.D1)] == [0, 1]
