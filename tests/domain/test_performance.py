"""Performance metrics against empyrical-reloaded and quantstats on the real coins data."""

from __future__ import annotations

import warnings
from typing import Any

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coinql.domain import benchmark as bm
from coinql.domain import compounding, distribution, downside, estimators, tearsheet
from coinql.domain import performance as pf
from tests.domain.coins import NAMES, daily_returns

P = 365
RF = compounding.periodic_rate(0.03, P)
SYMBOLS = list(NAMES)


def quantstats():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantstats as qs
    return qs


def as_series(returns: np.ndarray) -> pd.Series:
    return pd.Series(returns, index=pd.date_range("2017-01-02", periods=returns.size, freq="D"))


def close(ours: float, theirs: float) -> None:
    """Equal within 1e-9 relative, or both undefined."""
    if np.isnan(theirs):
        assert np.isnan(ours)
    else:
        assert float(ours) == pytest.approx(float(theirs), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_against_empyrical(symbol: str) -> None:
    r = daily_returns(symbol)
    close(compounding.total_return(r), ep.cum_returns_final(r))
    close(compounding.cagr(r, P), ep.annual_return(r, annualization=P))
    close(pf.volatility(r, P), ep.annual_volatility(r, annualization=P))
    close(pf.sharpe(r, P, RF), ep.sharpe_ratio(r, risk_free=RF, annualization=P))
    close(downside.sortino(r, P, RF), ep.sortino_ratio(r, required_return=RF, annualization=P))
    close(
        downside.downside_risk(r, P, RF), ep.downside_risk(r, required_return=RF, annualization=P)
    )
    close(downside.omega(r, RF), ep.omega_ratio(r, risk_free=RF, annualization=P))
    close(distribution.tail_ratio(r), ep.tail_ratio(r))
    close(pf.calmar(r, P), ep.calmar_ratio(r, annualization=P))
    close(pf.max_drawdown(r), -ep.max_drawdown(r))


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_benchmark_relative_against_empyrical(symbol: str) -> None:
    r, b = daily_returns(symbol)[-1000:], daily_returns("BTC")[-1000:]
    found = bm.benchmark_stats(r, b, P, RF)
    alpha, beta = ep.alpha_beta(r, b, risk_free=RF, annualization=P)
    close(found.alpha, alpha)
    close(found.beta, beta)
    close(found.correlation, np.corrcoef(r, b)[0, 1])
    close(found.information_ratio, ep.excess_sharpe(r, b) * np.sqrt(P))  # empyrical: per period
    close(found.tracking_error, np.std(r - b, ddof=1) * np.sqrt(P))
    # empyrical's capture ratios annualise with 252 periods and take no annualization argument.
    close(bm.benchmark_stats(r, b, 252).up_capture, ep.up_capture(r, b))
    close(bm.benchmark_stats(r, b, 252).down_capture, ep.down_capture(r, b))


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_against_quantstats(symbol: str) -> None:
    qs = quantstats()
    r = daily_returns(symbol)
    series = as_series(r)
    close(distribution.skew(r), qs.stats.skew(series))
    close(distribution.kurtosis(r), qs.stats.kurtosis(series))
    close(pf.ulcer_index(r), qs.stats.ulcer_index(series))
    close(distribution.win_rate(r), qs.stats.win_rate(series))
    close(distribution.best(r), qs.stats.best(series))
    close(distribution.worst(r), qs.stats.worst(series))
    close(pf.max_drawdown(r), -qs.stats.max_drawdown(series))


def test_quantstats_risk_free_conversion_is_geometric_too() -> None:
    """quantstats 0.0.86 de-annualises rf as (1 + rf) ** (1 / P) - 1, as coinql does; an
    arithmetic rf / P would give a different Sharpe ratio."""
    qs = quantstats()
    r = daily_returns("BTC")
    theirs = qs.stats.sharpe(as_series(r), rf=0.03, periods=P)
    close(pf.sharpe(r, P, RF), theirs)
    assert pf.sharpe(r, P, 0.03 / P) != pytest.approx(theirs, rel=1e-6)


def test_a_first_period_loss_counts_as_drawdown() -> None:
    r = np.array([-0.10, 0.05, 0.02])
    assert pf.max_drawdown(r) == pytest.approx(0.10)
    assert -ep.max_drawdown(r) == pytest.approx(0.10)  # empyrical-reloaded agrees
    assert pf.drawdown_periods(r, 1)[0].peak == -1  # the peak is the starting capital


def test_drawdown_table() -> None:
    r = np.array([0.1, -0.2, 0.05, 0.2, -0.1, -0.1, 0.3, -0.05])
    periods = pf.drawdown_periods(r, 5)
    assert [(p.peak, p.trough, p.recovery) for p in periods] == [
        (0, 1, 3),
        (3, 5, 6),
        (6, 7, None),
    ]
    equity = np.cumprod(1 + r)
    assert periods[0].depth == pytest.approx(1 - equity[1] / equity[0])
    assert periods[1].depth == pytest.approx(1 - equity[5] / equity[3])
    assert [p.duration for p in periods] == [3, 3, 1]  # peak to recovery, or to the end
    assert pf.max_drawdown_duration(r) == 2


def test_calendar_compounds_by_month() -> None:
    timestamps = pd.date_range("2020-01-30", periods=5, freq="D").as_unit("ms").asi8
    r = np.array([0.1, 0.1, 0.2, -0.1, np.nan])
    table = pf.calendar(timestamps, r)
    assert table.years.tolist() == [2020]
    assert table.months[0, 0] == pytest.approx(1.1 * 1.1 - 1)
    assert table.months[0, 1] == pytest.approx(1.2 * 0.9 - 1)
    assert np.isnan(table.months[0, 2:]).all()
    assert table.totals[0] == pytest.approx(1.1 * 1.1 * 1.2 * 0.9 - 1)


def test_rolling_matches_pandas() -> None:
    r = daily_returns("ETH")
    series = pd.Series(r)
    np.testing.assert_allclose(
        pf.rolling(r, 30, pf.RollingMetric.VOLATILITY, P),
        (series.rolling(30).std() * np.sqrt(P)).to_numpy(),
        rtol=1e-9,
    )
    b = daily_returns("BTC")
    expected = ep.roll_beta(r, b, window=30)
    np.testing.assert_allclose(
        pf.rolling(r, 30, pf.RollingMetric.BETA, P, benchmark=b)[29:], expected, rtol=1e-9
    )


EDGE_CASES = {
    "constant prices": np.zeros(50),
    "single period": np.array([0.05]),
    "nan run": np.concatenate([[0.01, -0.02], [np.nan] * 10, [0.03, 0.01, -0.01]]),
    "99% crash": np.array([0.01, 0.02, -0.99, 0.05, 0.1]),
    "only gains": np.full(20, 0.01),
    "empty": np.empty(0),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_cases_never_raise_and_undefined_is_nan(name: str) -> None:
    r = EDGE_CASES[name]
    values = {
        "total": compounding.total_return(r),
        "cagr": compounding.cagr(r, P),
        "volatility": pf.volatility(r, P),
        "sharpe": pf.sharpe(r, P),
        "sortino": downside.sortino(r, P),
        "calmar": pf.calmar(r, P),
        "omega": downside.omega(r),
        "tail": distribution.tail_ratio(r),
        "best": distribution.best(r),
        "worst": distribution.worst(r),
        "skew": distribution.skew(r),
        "kurtosis": distribution.kurtosis(r),
        "mdd": pf.max_drawdown(r),
        "ulcer": pf.ulcer_index(r),
    }
    for metric, value in values.items():
        assert np.isnan(value) or np.isfinite(value), (metric, value)
    reasons = tearsheet.undefined_reasons(r)
    if name == "constant prices":
        assert np.isnan(values["sharpe"]) and "sharpe" in reasons
        assert values["mdd"] == 0.0
    if name == "single period":
        assert np.isnan(values["volatility"]) and "volatility" in reasons
        assert values["total"] == pytest.approx(0.05)
    if name == "nan run":
        assert estimators.observations(r) == 5
        assert values["total"] == pytest.approx(1.01 * 0.98 * 1.03 * 1.01 * 0.99 - 1)
    if name == "99% crash":
        assert values["mdd"] == pytest.approx(1 - 0.01, rel=1e-12)
        assert np.isfinite(values["calmar"])
    if name == "only gains":
        assert np.isnan(values["sortino"]) and "sortino" in reasons
        assert np.isnan(values["calmar"]) and "calmar" in reasons


def test_an_empty_matrix_gives_nan_per_column() -> None:
    empty = np.empty((0, 3))
    for metric in (
        distribution.tail_ratio,
        distribution.best,
        distribution.worst,
        compounding.total_return,
        distribution.skew,
    ):
        assert np.isnan(metric(empty)).tolist() == [True] * 3, metric.__name__


def test_many_series_at_once_equal_one_at_a_time() -> None:
    matrix = np.column_stack([daily_returns(s)[-1000:] for s in SYMBOLS])
    together = pf.sharpe(matrix, P, RF)
    alone = [pf.sharpe(matrix[:, i], P, RF) for i in range(matrix.shape[1])]
    np.testing.assert_allclose(together, alone, rtol=1e-12)


returns_arrays = arrays(
    np.float64,
    st.integers(3, 200),
    elements=st.floats(-0.5, 0.5, allow_nan=False, allow_subnormal=False),
)


@settings(max_examples=200, deadline=None)
@given(returns_arrays, st.floats(0.1, 10))
def test_volatility_scales_linearly(r: np.ndarray, scale: float) -> None:
    base = pf.volatility(r, P)
    if np.isfinite(base):
        assert pf.volatility(r * scale, P) == pytest.approx(base * scale, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(returns_arrays)
def test_drawdown_depth_is_a_fraction(r: np.ndarray) -> None:
    depth = pf.max_drawdown(r)
    assert 0.0 <= depth <= 1.0
    assert np.all(pf.drawdown(r) <= 0) and np.all(pf.drawdown(r) >= -1)


# empyrical-reloaded's own test inputs (its tests/conftest.py), daily with P = 252.
MIXED = np.array([np.nan, 1.0, 10.0, -4.0, 2.0, 3.0, 2.0, 1.0, -10.0]) / 100
POSITIVE = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]) / 100
NEGATIVE = np.array([0.0, -6.0, -7.0, -1.0, -9.0, -2.0, -6.0, -8.0, -5.0]) / 100
SIMPLE_BENCHMARK = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]) / 100
FLAT_LINE_1 = np.full(9, 0.01)
ONE_RETURN = np.array([0.01])
EMPTY = np.empty(0)

# (case, coinql's value, the value empyrical's tests expect); None where empyrical expects
# inf or NaN, which coinql reports as undefined (null).
EMPYRICAL_CASES = {
    "cagr empty": (lambda: compounding.cagr(EMPTY, 252), lambda: ep.cagr(EMPTY), None),
    "cagr one return": (
        lambda: compounding.cagr(ONE_RETURN, 252),
        lambda: ep.cagr(ONE_RETURN),
        11.274002099240244,
    ),
    "cagr mixed (a leading NaN)": (
        lambda: compounding.cagr(MIXED, 252),
        lambda: ep.cagr(MIXED),
        1.9135925373194231,
    ),
    "cagr flat line": (
        lambda: compounding.cagr(np.full(1000, 0.01), 252),
        lambda: ep.cagr(np.full(1000, 0.01)),
        11.274002099240256,
    ),
    "calmar one return": (
        lambda: pf.calmar(ONE_RETURN, 252),
        lambda: ep.calmar_ratio(ONE_RETURN),
        None,
    ),
    "calmar mixed": (
        lambda: pf.calmar(MIXED, 252),
        lambda: ep.calmar_ratio(MIXED),
        19.135925373194233,
    ),
    "volatility flat line": (
        lambda: pf.volatility(np.full(1000, 0.01), 252),
        lambda: ep.annual_volatility(np.full(1000, 0.01)),
        0.0,
    ),
    "volatility mixed": (
        lambda: pf.volatility(MIXED, 252),
        lambda: ep.annual_volatility(MIXED),
        0.9136465399704637,
    ),
    "sharpe one return": (
        lambda: pf.sharpe(ONE_RETURN, 252),
        lambda: ep.sharpe_ratio(ONE_RETURN),
        None,
    ),
    "sharpe mixed": (
        lambda: pf.sharpe(MIXED, 252),
        lambda: ep.sharpe_ratio(MIXED),
        1.7238613961706866,
    ),
    "sharpe positive": (
        lambda: pf.sharpe(POSITIVE, 252),
        lambda: ep.sharpe_ratio(POSITIVE),
        52.915026221291804,
    ),
    "sharpe negative": (
        lambda: pf.sharpe(NEGATIVE, 252),
        lambda: ep.sharpe_ratio(NEGATIVE),
        -24.406808633910085,
    ),
    "sharpe flat line": (
        lambda: pf.sharpe(FLAT_LINE_1, 252),
        lambda: ep.sharpe_ratio(FLAT_LINE_1),
        None,
    ),
    "sortino mixed": (
        lambda: downside.sortino(MIXED, 252),
        lambda: ep.sortino_ratio(MIXED),
        2.605531251673693,
    ),
    "sortino positive": (
        lambda: downside.sortino(POSITIVE, 252),
        lambda: ep.sortino_ratio(POSITIVE),
        None,
    ),
    "sortino negative": (
        lambda: downside.sortino(NEGATIVE, 252),
        lambda: ep.sortino_ratio(NEGATIVE),
        -13.532743075043401,
    ),
    "sortino simple benchmark": (
        lambda: downside.sortino(SIMPLE_BENCHMARK, 252),
        lambda: ep.sortino_ratio(SIMPLE_BENCHMARK),
        None,
    ),
    "downside risk mixed": (
        lambda: downside.downside_risk(MIXED, 252),
        lambda: ep.downside_risk(MIXED),
        0.60448325038829653,
    ),
    "downside risk mixed 0.1": (
        lambda: downside.downside_risk(MIXED, 252, 0.1),
        lambda: ep.downside_risk(MIXED, 0.1),
        1.7161730681956295,
    ),
    "omega mixed, required 10": (
        lambda: downside.omega(MIXED, compounding.periodic_rate(10.0, 252)),
        lambda: ep.omega_ratio(MIXED, required_return=10.0),
        0.83354263497557934,
    ),
    "omega positive, rf 0.01": (
        lambda: downside.omega(POSITIVE, 0.01),
        lambda: ep.omega_ratio(POSITIVE, 0.01),
        None,
    ),
    "omega positive, rf 0.011": (
        lambda: downside.omega(POSITIVE, 0.011),
        lambda: ep.omega_ratio(POSITIVE, 0.011),
        1.125,
    ),
    "omega positive, rf 0.02": (
        lambda: downside.omega(POSITIVE, 0.02),
        lambda: ep.omega_ratio(POSITIVE, 0.02),
        0.0,
    ),
    "omega negative, rf 0.01": (
        lambda: downside.omega(NEGATIVE, 0.01),
        lambda: ep.omega_ratio(NEGATIVE, 0.01),
        0.0,
    ),
    "max drawdown mixed": (lambda: -pf.max_drawdown(MIXED), lambda: ep.max_drawdown(MIXED), -0.1),
    "max drawdown negative": (
        lambda: -pf.max_drawdown(NEGATIVE),
        lambda: ep.max_drawdown(NEGATIVE),
        -0.36590730,
    ),
    "excess sharpe mixed vs 0": (
        lambda: bm.benchmark_stats(MIXED, np.zeros(9), 252).information_ratio / np.sqrt(252),
        lambda: ep.excess_sharpe(MIXED, 0.0),
        0.10859306069076737,
    ),
    "excess sharpe mixed vs flat line": (
        lambda: bm.benchmark_stats(MIXED, FLAT_LINE_1, 252).information_ratio / np.sqrt(252),
        lambda: ep.excess_sharpe(MIXED, FLAT_LINE_1),
        -0.06515583641446039,
    ),
    "excess sharpe of a series against itself": (
        lambda: (
            bm.benchmark_stats(
                np.linspace(0, 1, 1000), np.linspace(0, 1, 1000), 252
            ).information_ratio
        ),
        lambda: ep.excess_sharpe(np.linspace(0, 1, 1000), np.linspace(0, 1, 1000)),
        None,
    ),
    "beta mixed vs mixed": (lambda: bm.beta(MIXED, MIXED), lambda: ep.beta(MIXED, MIXED), 1.0),
    "beta mixed vs -mixed": (lambda: bm.beta(MIXED, -MIXED), lambda: ep.beta(MIXED, -MIXED), -1.0),
    "beta one return": (
        lambda: bm.beta(ONE_RETURN, ONE_RETURN),
        lambda: ep.beta(ONE_RETURN, ONE_RETURN),
        None,
    ),
}


@pytest.mark.parametrize("case", list(EMPYRICAL_CASES))
def test_empyrical_test_cases(case: str) -> None:
    """The expectation is the one empyrical's own tests state, and the installed empyrical
    gives it; where it is inf or NaN, coinql's value is undefined (NaN, shown as null)."""
    ours, theirs, expected = EMPYRICAL_CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empyrical's, on the degenerate cases
        reference = float(theirs())
    value = float(ours())
    if expected is None:
        assert not np.isfinite(reference) or abs(reference) > 1e15, reference
        assert np.isnan(value), value
    else:
        assert reference == pytest.approx(expected, rel=1e-8, abs=1e-12)
        assert value == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_one_observation_is_undefined_where_empyrical_answers() -> None:
    """coinql needs 2 observations for a dispersion or a percentile spread; empyrical's tests
    expect 0.0 downside risk and a tail ratio of 1.0 from a single return."""
    assert ep.downside_risk(ONE_RETURN) == 0.0 and ep.tail_ratio(ONE_RETURN) == 1.0
    assert np.isnan(downside.downside_risk(ONE_RETURN, 252)) and np.isnan(
        distribution.tail_ratio(ONE_RETURN)
    )


def constant_growth(rate: float, n: int) -> np.ndarray:
    """Returns of prices that grow by `rate` every period, as computed from the prices: equal
    up to rounding, so their standard deviation is ~1e-17, not 0."""
    prices = 100.0 * (1.0 + rate) ** np.arange(n + 1)
    return prices[1:] / prices[:-1] - 1.0


CONSTANT_SERIES = {
    "0.01 x 100": np.full(100, 0.01),
    "0.0137 x 250": np.full(250, 0.0137),
    "prices growing 0.1 % a day": constant_growth(0.001, 1000),
    "prices falling 0.2 % a day": constant_growth(-0.002, 500),
    "zeros with a NaN run": np.concatenate([np.zeros(20), [np.nan] * 5, np.zeros(20)]),
    "the risk-free rate": np.full(365, compounding.periodic_rate(0.05, 365)),
}


@pytest.mark.parametrize("name", list(CONSTANT_SERIES))
def test_returns_that_do_not_vary_have_no_ratios(name: str) -> None:
    """empyrical gives such series a Sharpe ratio of ~1e17 and a skew of +-1 from rounding
    noise; coinql reports the ratios as undefined and the volatility as 0."""
    r = CONSTANT_SERIES[name]
    assert np.nanstd(r) < 1e-15  # constant up to rounding
    assert pf.volatility(r, P) == 0.0
    for value in (
        pf.sharpe(r, P),
        pf.sharpe(r, P, RF),
        distribution.skew(r),
        distribution.kurtosis(r),
    ):
        assert np.isnan(value)
    reasons = tearsheet.undefined_reasons(r)
    for metric in ("sharpe", "skew", "kurtosis"):
        assert reasons[metric] == "returns do not vary (zero standard deviation)"
    at_its_level = float(np.nanmean(r))  # a required return equal to the returns
    assert np.isnan(downside.sortino(r, P, at_its_level)) and np.isnan(
        downside.omega(r, at_its_level)
    )
    assert "sortino" in tearsheet.undefined_reasons(r, at_its_level)
    assert "omega" in tearsheet.undefined_reasons(r, at_its_level)
    window = pf.rolling(r, 20, pf.RollingMetric.SHARPE, P)
    assert np.isnan(window).all()
    assert np.nanmax(pf.rolling(r, 20, pf.RollingMetric.VOLATILITY, P)) == 0.0


@pytest.mark.parametrize("name", list(CONSTANT_SERIES))
def test_a_benchmark_or_active_return_that_does_not_vary(name: str) -> None:
    """Returns equal to the benchmark plus a constant: no tracking error, so no information
    ratio (empyrical: ~1e17); a constant benchmark: no beta, no correlation."""
    constant = CONSTANT_SERIES[name]
    noise = np.random.default_rng(0).normal(0.0, 0.02, constant.size)
    shifted = bm.benchmark_stats(noise + 0.001, noise, P)
    assert shifted.tracking_error == 0.0 and np.isnan(shifted.information_ratio)
    against_constant = bm.benchmark_stats(noise, constant, P)
    assert np.isnan(against_constant.beta) and np.isnan(against_constant.correlation)
    assert np.isnan(bm.beta(noise, constant))
    rolled = pf.rolling(noise, 20, pf.RollingMetric.BETA, P, benchmark=constant)
    assert np.isnan(rolled).all()


def test_zero_variance_tolerance_is_relative_to_the_mean() -> None:
    """A dispersion is zero when it is at most 1e-12 x max(1, |mean|): tiny real variation
    still counts, rounding noise on large returns does not."""
    rng = np.random.default_rng(0)
    small = 0.01 + rng.normal(0.0, 1e-9, 100)  # a genuine, if tiny, variation
    assert np.isfinite(pf.sharpe(small, P)) and pf.volatility(small, P) > 0
    huge = np.full(100, 123.456)  # 12,345 % a period, constant up to rounding
    assert np.isnan(pf.sharpe(huge, P)) and pf.volatility(huge, P) == 0.0


def test_cagr_counts_missing_periods_as_elapsed_time_as_empyrical() -> None:
    """A NaN period compounds as 0 (equity flat) and still takes its share of the year, in
    CAGR as in the equity curve: empyrical's `annual_return` on series with NaN runs."""
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.03, 800)
    r[rng.choice(800, 60, replace=False)] = np.nan
    r[100:130] = np.nan  # a month without data
    r[:5] = np.nan  # and a missing start
    close(compounding.cagr(r, P), ep.annual_return(r, annualization=P))
    close(pf.calmar(r, P), ep.calmar_ratio(r, annualization=P))
    equity = compounding.equity(r)
    years = r.size / P
    assert compounding.cagr(r, P) == pytest.approx(equity[-1] ** (1 / years) - 1, rel=1e-12)
    matrix = np.column_stack([r, daily_returns("BTC")[:800]])
    np.testing.assert_allclose(
        compounding.cagr(matrix, P),
        [ep.annual_return(column, annualization=P) for column in matrix.T],
    )


def with_nan_runs(values: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = values.copy()
    for start in rng.choice(values.size - 10, 8, replace=False):
        values[start : start + rng.integers(1, 10)] = np.nan
    values[rng.choice(values.size, 20, replace=False)] = np.nan
    return values


def test_rolling_beta_drops_nan_pairs_as_empyrical() -> None:
    r = with_nan_runs(daily_returns("ETH")[-600:], 0)
    b = with_nan_runs(daily_returns("BTC")[-600:], 1)
    window = 30
    ours = pf.rolling(r, window, pf.RollingMetric.BETA, P, benchmark=b)
    theirs = ep.roll_beta(r, b, window=window)
    np.testing.assert_allclose(ours[window - 1 :], theirs, rtol=1e-9)
    assert np.isnan(ours[: window - 1]).all()
    # And a plain reference: population Cov / Var over the pairs where both are known.
    for end in range(window, r.size + 1, 37):
        x, y = b[end - window : end], r[end - window : end]
        both = ~np.isnan(x) & ~np.isnan(y)
        expected = np.cov(y[both], x[both], ddof=0)[0, 1] / np.var(x[both])
        assert ours[end - 1] == pytest.approx(expected, rel=1e-9)
        assert ours[end - 1] == pytest.approx(bm.beta(y, x), rel=1e-12)


def test_rolling_beta_needs_two_pairs_in_the_window() -> None:
    r = np.array([0.01, np.nan, 0.02, np.nan, 0.03, np.nan, -0.01])
    b = np.array([np.nan, 0.01, np.nan, 0.02, 0.01, 0.02, 0.03])
    rolled = pf.rolling(r, 4, pf.RollingMetric.BETA, P, benchmark=b)
    assert np.isnan(rolled[:-1]).all()  # at most one complete pair in these windows of 4
    # The last window has two: (0.03, 0.01) and (-0.01, 0.03), a slope of -2.
    assert rolled[-1] == pytest.approx(-2.0, rel=1e-12)


NON_FINITE = {
    "an infinite gain": np.array([0.01, -0.02, np.inf, 0.03, -0.01, 0.02, -0.04]),
    "a NaN and an inf": np.array([0.01, np.nan, -0.02, np.inf, 0.03, -0.01, 0.02]),
    "a minus inf": np.array([0.01, -np.inf, -0.02, 0.03, -0.01, 0.02, 0.05]),
    "only one finite": np.array([np.inf, 0.01, np.nan]),
}


def every_metric(r: np.ndarray) -> dict[str, object]:
    benchmark = daily_returns("BTC")[: r.size]
    return {
        "total": compounding.total_return(r),
        "cagr": compounding.cagr(r, P),
        "volatility": pf.volatility(r, P),
        "sharpe": pf.sharpe(r, P, RF),
        "sortino": downside.sortino(r, P, RF),
        "calmar": pf.calmar(r, P),
        "omega": downside.omega(r, RF),
        "tail": distribution.tail_ratio(r),
        "tail of a matrix": distribution.tail_ratio(np.column_stack([r, r]))[1],
        "skew": distribution.skew(r),
        "kurtosis": distribution.kurtosis(r),
        "best": distribution.best(r),
        "worst": distribution.worst(r),
        "win rate": distribution.win_rate(r),
        "max drawdown": pf.max_drawdown(r),
        "ulcer": pf.ulcer_index(r),
        "duration": pf.max_drawdown_duration(r),
        "equity": compounding.equity(r),
        "drawdown": pf.drawdown(r),
        "rolling volatility": pf.rolling(r, 3, pf.RollingMetric.VOLATILITY, P),
        "rolling sharpe": pf.rolling(r, 3, pf.RollingMetric.SHARPE, P),
        "rolling return": pf.rolling(r, 3, pf.RollingMetric.RETURN, P),
        "rolling beta": pf.rolling(r, 3, pf.RollingMetric.BETA, P, benchmark=benchmark),
        "benchmark": bm.benchmark_stats(r, benchmark, P),
        "reasons": tearsheet.undefined_reasons(r, RF),
    }


@pytest.mark.parametrize("name", list(NON_FINITE))
def test_infinite_returns_are_missing_like_nan(name: str) -> None:
    """A return from a zero price (+-inf) is missing: every metric equals the one with NaN in
    its place, and nothing warns (warnings are errors here); tail_ratio and max_drawdown
    used to warn (inf - inf, and an overflow in the equity curve)."""
    r = NON_FINITE[name]
    missing = np.where(np.isfinite(r), r, np.nan)
    ours, expected = every_metric(r), every_metric(missing)
    for metric, value in ours.items():
        if isinstance(value, dict | bm.BenchmarkStats):
            assert value == expected[metric] or str(value) == str(expected[metric]), metric
        else:
            np.testing.assert_array_equal(value, expected[metric], err_msg=metric)
    finite = r[np.isfinite(r)]
    if finite.size >= 2:
        assert distribution.tail_ratio(r) == pytest.approx(ep.tail_ratio(finite), rel=1e-12)
    else:
        assert np.isnan(distribution.tail_ratio(r))


UNDEFINED_CASES = {
    **EDGE_CASES,
    **CONSTANT_SERIES,
    **NON_FINITE,
    "mixed": MIXED,
    "positive": POSITIVE,
    "with zeros in the tail": np.concatenate([np.zeros(30), [0.01, 0.02, -0.01]]),
    "three observations": np.array([0.01, -0.02, 0.03]),
}


@pytest.mark.parametrize("name", list(UNDEFINED_CASES))
@pytest.mark.parametrize("risk_free", [0.0, RF])
def test_a_metric_is_undefined_exactly_when_a_reason_is_given(name: str, risk_free: float) -> None:
    r = UNDEFINED_CASES[name]
    values = {
        "totalReturn": compounding.total_return(r),
        "cagr": compounding.cagr(r, P),
        "volatility": pf.volatility(r, P),
        "sharpe": pf.sharpe(r, P, risk_free),
        "sortino": downside.sortino(r, P, risk_free),
        "calmar": pf.calmar(r, P),
        "omega": downside.omega(r, risk_free),
        "maxDrawdown": pf.max_drawdown(r),
        "skew": distribution.skew(r),
        "kurtosis": distribution.kurtosis(r),
        "tailRatio": distribution.tail_ratio(r),
        "bestPeriod": distribution.best(r),
        "worstPeriod": distribution.worst(r),
        "winRate": distribution.win_rate(r),
        "ulcerIndex": pf.ulcer_index(r),
    }
    reasons = tearsheet.undefined_reasons(r, risk_free)
    assert {metric for metric, value in values.items() if np.isnan(value)} == set(reasons)


@pytest.mark.parametrize(
    ("metric", "theirs", "periods"),
    [
        (
            pf.RollingMetric.ALPHA,
            lambda r, b, w: ep.roll_alpha(r, b, window=w, annualization=P),
            P,
        ),
        # empyrical annualises the captures' returns with its daily 252 periods, always.
        (pf.RollingMetric.UP_CAPTURE, lambda r, b, w: ep.roll_up_capture(r, b, window=w), 252),
        (pf.RollingMetric.DOWN_CAPTURE, lambda r, b, w: ep.roll_down_capture(r, b, window=w), 252),
    ],
)
def test_rolling_alpha_and_captures_are_empyricals(
    metric: pf.RollingMetric, theirs: Any, periods: int
) -> None:
    r, b = daily_returns("LTC")[-500:], daily_returns("BTC")[-500:]
    window = 60
    ours = pf.rolling(r, window, metric, periods, benchmark=b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.asarray(theirs(r, b, window))
    np.testing.assert_allclose(ours[window - 1 :], expected, rtol=1e-9)
    assert np.isnan(ours[: window - 1]).all()
    with pytest.raises(ValueError, match="needs a benchmark"):
        pf.rolling(r, window, metric, periods)


def test_rolling_max_drawdown_is_each_windows_own() -> None:
    r = daily_returns("DOGE")[-400:]
    window = 45
    ours = pf.rolling(r, window, pf.RollingMetric.MAX_DRAWDOWN, P)
    for end in range(window, r.size + 1, 17):
        assert ours[end - 1] == pytest.approx(float(pf.max_drawdown(r[end - window : end])))
    assert np.isnan(ours[: window - 1]).all()
