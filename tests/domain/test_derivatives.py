"""Basis and the last bar of each bucket, with their NaN and edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from coinql.domain.candles import DAY_MS, WEEK_OFFSET_MS, Interval
from coinql.domain.derivatives import HOUR_MS, FundingRates, PerpetualBars, basis, last_per_bucket

NAN = np.nan


def bars(times: list[int], values: list[float]) -> PerpetualBars:
    column = np.asarray(values, dtype=np.float64)
    return PerpetualBars(np.asarray(times, dtype=np.int64), column, column * 1.01, column)


def test_basis_is_the_premium_of_the_mark_over_the_index_nan_where_undefined() -> None:
    found = basis(
        PerpetualBars(
            np.arange(5, dtype=np.int64),
            np.ones(5),
            np.array([101.0, 99.0, NAN, 1.0, 5.0]),
            np.array([100.0, 100.0, 100.0, 0.0, NAN]),
        )
    )
    np.testing.assert_allclose(found[:2], [0.01, -0.01])
    assert np.isnan(found[2:]).all()
    assert basis(PerpetualBars.empty()).shape == (0,)


def test_the_last_bar_of_each_complete_bucket_stamped_with_its_open() -> None:
    hours = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10]  # H4 buckets 0 and 4 close; bucket 8 lacks hour 11
    found = last_per_bucket(
        bars([h * HOUR_MS for h in hours], [float(h) for h in hours]), Interval.H1, Interval.H4
    )
    np.testing.assert_array_equal(found.timestamps, [0, 4 * HOUR_MS])
    np.testing.assert_array_equal(found.open_interest, [3.0, 7.0])
    np.testing.assert_allclose(found.mark_price, [3.03, 7.07])


def test_weeks_open_on_monday_and_a_missing_closing_day_leaves_the_week_out() -> None:
    monday = WEEK_OFFSET_MS + 100 * 7 * DAY_MS
    days = [monday + d * DAY_MS for d in range(14) if d != 13]
    found = last_per_bucket(bars(days, list(range(13))), Interval.D1, Interval.W1)
    np.testing.assert_array_equal(found.timestamps, [monday])
    np.testing.assert_array_equal(found.index_price, [6.0])


def test_same_interval_and_nothing_are_returned_as_they_are() -> None:
    some = bars([0, HOUR_MS], [1.0, 2.0])
    assert last_per_bucket(some, Interval.H1, Interval.H1) is some
    assert len(last_per_bucket(PerpetualBars.empty(), Interval.H1, Interval.D1)) == 0


@pytest.mark.parametrize(
    ("source", "target"), [(Interval.D1, Interval.H1), (Interval.W1, Interval.D1)]
)
def test_an_interval_that_does_not_divide_the_target_is_refused(
    source: Interval, target: Interval
) -> None:
    with pytest.raises(ValueError, match="cannot be made"):
        last_per_bucket(bars([0], [1.0]), source, target)


def test_windows_are_inclusive_and_open_sided_when_none() -> None:
    funding = FundingRates(np.array([10, 20, 30], dtype=np.int64), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(funding.between(20, 30).rates, [2.0, 3.0])
    np.testing.assert_array_equal(funding.between(None, 10).rates, [1.0])
    assert len(funding.between(None, None)) == 3 and len(FundingRates.empty()) == 0
    some = bars([10, 20, 30], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(some.between(15, None).timestamps, [20, 30])
