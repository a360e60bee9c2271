"""The 2-D tear sheet equals the per-series functions column by column, missing values and
flat stretches included (the columns the 2-D paths hand back to the per-series functions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coinql.domain import benchmark as bm
from coinql.domain import compounding, distribution, downside, estimators, panel, risk
from coinql.domain import performance as pf
from tests.domain.coins import aligned_returns

P = 365
RF = compounding.periodic_rate(0.03, P)
STATS = ("alpha", "beta", "correlation", "tracking_error", "information_ratio")
CAPTURES = ("up_capture", "down_capture")


def synthetic(n_obs: int = 800, n_series: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    common = rng.standard_t(3, n_obs)[:, None] * 0.02
    returns = 0.0005 + 0.6 * common + rng.standard_t(4, (n_obs, n_series)) * 0.03
    stamps = pd.date_range("2019-01-01", periods=n_obs, freq="D").as_unit("ms").asi8
    return stamps, returns


def awkward() -> tuple[np.ndarray, np.ndarray]:
    """Columns the 2-D paths must hand back: a NaN, an inf, a flat run, all zeros."""
    stamps, returns = synthetic()
    returns[10, 1] = np.nan
    returns[20, 2] = np.inf
    returns[100:160, 3] = 0.0  # flat windows: rolling volatility exactly 0
    returns[:, 4] = 0.0  # never under water, no dispersion
    return stamps, returns


def assert_close(ours: object, theirs: object) -> None:
    np.testing.assert_allclose(
        np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float), rtol=1e-10, atol=1e-14
    )


def assert_same_stats(found: bm.BenchmarkStats, wanted: bm.BenchmarkStats) -> None:
    names = STATS + CAPTURES
    assert_close([getattr(found, f) for f in names], [getattr(wanted, f) for f in names])


@pytest.mark.parametrize("data", [synthetic, awkward], ids=["finite", "awkward"])
def test_the_2d_tear_sheet_equals_the_per_series_one(data: object) -> None:
    stamps, returns = data()  # type: ignore[operator]
    benchmark = returns[:, 0]
    sheet = panel.tear_sheet(stamps, returns, benchmark, P, risk_free=RF)
    scalars = {
        "total_return": compounding.total_return,
        "cagr": lambda r: compounding.cagr(r, P),
        "volatility": lambda r: pf.volatility(r, P),
        "sharpe": lambda r: pf.sharpe(r, P, RF),
        "sortino": lambda r: downside.sortino(r, P, RF),
        "calmar": lambda r: pf.calmar(r, P),
        "omega": lambda r: downside.omega(r, RF),
        "tail_ratio": distribution.tail_ratio,
        "skew": distribution.skew,
        "kurtosis": distribution.kurtosis,
        "best": distribution.best,
        "worst": distribution.worst,
        "win_rate": distribution.win_rate,
        "max_drawdown": pf.max_drawdown,
        "ulcer_index": pf.ulcer_index,
    }
    for column in range(returns.shape[1]):
        r = returns[:, column]
        for name, one in scalars.items():
            assert_close(getattr(sheet, name)[column], one(r))
        assert_close(
            sheet.value_at_risk[column], risk.value_at_risk(r, 0.95, risk.VarMethod.HISTORICAL)
        )
        assert_close(
            sheet.expected_shortfall[column],
            risk.expected_shortfall(r, 0.95, risk.VarMethod.HISTORICAL),
        )
        assert sheet.max_drawdown_duration[column] == pf.max_drawdown_duration(r)
        assert_close(sheet.equity[:, column], compounding.equity(r))
        assert_close(sheet.drawdown[:, column], pf.drawdown(r))
        assert_close(
            sheet.rolling_volatility[:, column],
            pf.rolling(r, 30, pf.RollingMetric.VOLATILITY, P),
        )
        assert sheet.drawdowns[column] == pf.drawdown_periods(r, 5)
        table, expected = sheet.calendars[column], pf.calendar(stamps, r)
        np.testing.assert_array_equal(table.years, expected.years)
        assert_close(table.months, expected.months)
        assert_close(table.totals, expected.totals)
        assert_same_stats(sheet.relative[column], bm.benchmark_stats(r, benchmark, P, RF))


def test_a_flat_window_is_exactly_zero_volatility() -> None:
    _, returns = awkward()
    rolling = panel.rolling_volatility(returns, 30, P)
    assert np.all(rolling[129:160, 3] == 0.0)
    assert np.all(rolling[29:, 4] == 0.0)


def test_the_real_coins_column_by_column() -> None:
    stamps, returns = aligned_returns(["BTC", "ETH", "LTC", "DOGE"])
    sheet = panel.tear_sheet(stamps, returns, returns[:, 0], P, risk_free=RF)
    for column in range(returns.shape[1]):
        r = returns[:, column]
        assert_close(sheet.sharpe[column], pf.sharpe(r, P, RF))
        assert_close(
            sheet.rolling_volatility[:, column], pf.rolling(r, 30, pf.RollingMetric.VOLATILITY, P)
        )
        assert sheet.drawdowns[column] == pf.drawdown_periods(r, 5)
        assert_same_stats(sheet.relative[column], bm.benchmark_stats(r, returns[:, 0], P, RF))


def test_a_benchmark_with_a_gap_is_handled_per_series() -> None:
    _, returns = synthetic()
    benchmark = returns[:, 0].copy()
    benchmark[5] = np.nan
    found = panel.benchmark_stats(returns, benchmark, P)
    for column in range(returns.shape[1]):
        assert_same_stats(found[column], bm.benchmark_stats(returns[:, column], benchmark, P))


def test_unsorted_or_short_inputs_fall_back_or_stay_undefined() -> None:
    stamps, returns = synthetic(60, 3)
    shuffled = stamps[::-1].copy()
    for column, table in enumerate(panel.calendars(shuffled, returns)):
        expected = pf.calendar(shuffled, returns[:, column])
        assert_close(table.months, expected.months)
    one = returns[:1]
    assert np.all(np.isnan(panel.value_at_risk(one, 0.95)))
    assert np.all(np.isnan(panel.rolling_volatility(one, 30, P)))
    assert np.all(panel.max_drawdown_durations(np.empty((0, 3))) == 0)
    with pytest.raises(ValueError, match="level"):
        panel.expected_shortfall(returns, 1.0)


def test_a_benchmark_without_up_periods_has_no_up_capture() -> None:
    _, returns = synthetic(50, 2)
    falling = -np.abs(returns[:, 0])
    found = panel.benchmark_stats(returns, falling, P)
    assert all(np.isnan(stats.up_capture) for stats in found)
    for column in range(2):
        assert_same_stats(found[column], bm.benchmark_stats(returns[:, column], falling, P))


@pytest.mark.parametrize("reduction", ["mean", "sum", "prod", "std"])
def test_reduce_known_is_numpys_nan_reduction(reduction: str) -> None:
    values = np.random.default_rng(1).normal(size=(40, 3))
    skipping = getattr(np, f"nan{reduction}")
    np.testing.assert_array_equal(
        estimators.reduce_known(reduction, values), skipping(values, axis=0)
    )
    values[3, 1] = np.nan
    np.testing.assert_array_equal(
        estimators.reduce_known(reduction, values), skipping(values, axis=0)
    )
