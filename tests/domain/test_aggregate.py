"""Calendar aggregation against quantstats 0.0.86 (months, quarters, years) and pandas (weeks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coinql.domain.aggregate import Period, aggregate, bucket_starts
from coinql.domain.candles import DAY_MS
from tests.domain.coins import NAMES, aligned_returns, parsed
from tests.domain.tear_oracles import as_series, fresh_seed, oracle, quantstats, random_returns

SYMBOLS = list(NAMES)
# quantstats' "eow" groups by (calendar year, ISO week), which splits the week of New Year in
# two (and joins its first days to week 1 of the same year); pandas' resample is the oracle
# for weeks, Monday-opened like coinql's W1 candles.
QUANTSTATS = {Period.MONTH: "eom", Period.QUARTER: "eoq", Period.YEAR: "eoy"}
PANDAS = {Period.WEEK: "W-MON", Period.MONTH: "MS", Period.QUARTER: "QS", Period.YEAR: "YS"}


def compounded_by_pandas(series: pd.Series, period: Period) -> pd.Series:
    grouped = series.resample(PANDAS[period], closed="left", label="left")
    result = oracle(grouped.apply, lambda x: (1 + x).prod() - 1 if x.notna().any() else np.nan)
    return result[grouped.count().index[grouped.size() > 0]]


def check(timestamps: np.ndarray, returns: np.ndarray, context: object) -> None:
    qs = quantstats()
    series = as_series(returns, timestamps)
    for period in Period:
        starts, compounded = aggregate(timestamps, returns, period)
        theirs = compounded_by_pandas(series, period)
        np.testing.assert_array_equal(pd.to_datetime(starts, unit="ms"), theirs.index)
        np.testing.assert_allclose(compounded, theirs.values, rtol=1e-9, err_msg=str(context))
        if period in QUANTSTATS:
            grouped = oracle(qs.utils.aggregate_returns, series, QUANTSTATS[period])
            np.testing.assert_allclose(compounded, grouped.values, rtol=1e-9, err_msg=str(context))


def test_random_hourly_series() -> None:
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    hours = np.sort(rng.choice(5 * 365 * 24, size=3_000, replace=False))
    timestamps = 1_500_000_000_000 + hours * 3_600_000
    check(timestamps, random_returns(seed, 3_000), f"seed {seed}")


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_coins(symbol: str) -> None:
    candles = parsed(symbol).candles
    close = candles.close
    check(candles.timestamps[1:], close[1:] / close[:-1] - 1.0, symbol)


def test_buckets_open_on_monday_and_the_first_of_the_period() -> None:
    # 2019-12-29 (Sunday) to 2020-01-06 (Monday), daily.
    start = int(pd.Timestamp("2019-12-29").value // 1_000_000)
    days = start + np.arange(9) * DAY_MS
    weeks = pd.to_datetime(bucket_starts(days, Period.WEEK), unit="ms")
    assert list(weeks.strftime("%a %m-%d")) == ["Mon 12-23"] + ["Mon 12-30"] * 7 + ["Mon 01-06"]
    quarters = pd.to_datetime(np.unique(bucket_starts(days, Period.QUARTER)), unit="ms")
    assert list(quarters.strftime("%Y-%m-%d")) == ["2019-10-01", "2020-01-01"]
    years = pd.to_datetime(np.unique(bucket_starts(days, Period.YEAR)), unit="ms")
    assert list(years.strftime("%Y-%m-%d")) == ["2019-01-01", "2020-01-01"]
    # The week of New Year is one bucket here; quantstats' "eow" splits it.
    r = np.full(9, 0.01)
    starts, compounded = aggregate(days, r, Period.WEEK)
    assert compounded[1] == pytest.approx(1.01**7 - 1)
    grouped = oracle(quantstats().utils.aggregate_returns, as_series(r, days), "eow")
    assert len(grouped) != len(starts)


def test_missing_returns_and_empty_buckets() -> None:
    start = int(pd.Timestamp("2021-01-01").value // 1_000_000)
    days = start + np.array([0, 1, 40, 41, 100]) * DAY_MS  # Jan, Jan, Feb, Feb, Apr
    r = np.array([0.1, np.nan, np.nan, np.inf, -0.5])
    starts, compounded = aggregate(days, r, Period.MONTH)
    assert list(pd.to_datetime(starts, unit="ms").strftime("%m")) == ["01", "02", "04"]
    np.testing.assert_allclose(compounded, [0.1, np.nan, -0.5], rtol=1e-12)  # no March
    _, summed = aggregate(days, np.array([0.1, 0.2, 0.3, 0.4, 0.5]), Period.MONTH, compounded=False)
    np.testing.assert_allclose(summed, [0.3, 0.7, 0.5])


def test_unsorted_input_and_many_series() -> None:
    timestamps, returns = aligned_returns(SYMBOLS)
    starts, together = aggregate(timestamps, returns, Period.QUARTER)
    assert together.shape == (starts.size, len(SYMBOLS))
    order = np.random.default_rng(0).permutation(timestamps.size)
    shuffled_starts, shuffled = aggregate(timestamps[order], returns[order], Period.QUARTER)
    np.testing.assert_array_equal(shuffled_starts, starts)
    np.testing.assert_allclose(shuffled, together, rtol=1e-12)
    for column in range(len(SYMBOLS)):
        _, alone = aggregate(timestamps, returns[:, column], Period.QUARTER)
        np.testing.assert_allclose(together[:, column], alone, rtol=1e-15)


def test_no_observations() -> None:
    starts, compounded = aggregate(np.array([], dtype=np.int64), np.array([]), Period.YEAR)
    assert starts.size == 0
    assert compounded.size == 0
