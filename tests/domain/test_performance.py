"""Performance metrics against empyrical-reloaded and quantstats on the real coins data."""

from __future__ import annotations

import warnings

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coinql.domain import performance as pf
from tests.domain.coins import NAMES, daily_returns

P = 365
RF = pf.periodic_rate(0.03, P)
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
    close(pf.total_return(r), ep.cum_returns_final(r))
    close(pf.cagr(r, P), ep.annual_return(r, annualization=P))
    close(pf.volatility(r, P), ep.annual_volatility(r, annualization=P))
    close(pf.sharpe(r, P, RF), ep.sharpe_ratio(r, risk_free=RF, annualization=P))
    close(pf.sortino(r, P, RF), ep.sortino_ratio(r, required_return=RF, annualization=P))
    close(pf.downside_risk(r, P, RF), ep.downside_risk(r, required_return=RF, annualization=P))
    close(pf.omega(r, RF), ep.omega_ratio(r, risk_free=RF, annualization=P))
    close(pf.tail_ratio(r), ep.tail_ratio(r))
    close(pf.calmar(r, P), ep.calmar_ratio(r, annualization=P))
    close(pf.max_drawdown(r), -ep.max_drawdown(r))


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_benchmark_relative_against_empyrical(symbol: str) -> None:
    r, b = daily_returns(symbol)[-1000:], daily_returns("BTC")[-1000:]
    found = pf.benchmark_stats(r, b, P, RF)
    alpha, beta = ep.alpha_beta(r, b, risk_free=RF, annualization=P)
    close(found.alpha, alpha)
    close(found.beta, beta)
    close(found.correlation, np.corrcoef(r, b)[0, 1])
    close(found.information_ratio, ep.excess_sharpe(r, b) * np.sqrt(P))  # empyrical: per period
    close(found.tracking_error, np.std(r - b, ddof=1) * np.sqrt(P))
    # empyrical's capture ratios annualise with 252 periods and take no annualization argument.
    close(pf.benchmark_stats(r, b, 252).up_capture, ep.up_capture(r, b))
    close(pf.benchmark_stats(r, b, 252).down_capture, ep.down_capture(r, b))


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_against_quantstats(symbol: str) -> None:
    qs = quantstats()
    r = daily_returns(symbol)
    series = as_series(r)
    close(pf.skew(r), qs.stats.skew(series))
    close(pf.kurtosis(r), qs.stats.kurtosis(series))
    close(pf.ulcer_index(r), qs.stats.ulcer_index(series))
    close(pf.win_rate(r), qs.stats.win_rate(series))
    close(pf.best(r), qs.stats.best(series))
    close(pf.worst(r), qs.stats.worst(series))
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
        "total": pf.total_return(r),
        "cagr": pf.cagr(r, P),
        "volatility": pf.volatility(r, P),
        "sharpe": pf.sharpe(r, P),
        "sortino": pf.sortino(r, P),
        "calmar": pf.calmar(r, P),
        "omega": pf.omega(r),
        "tail": pf.tail_ratio(r),
        "best": pf.best(r),
        "worst": pf.worst(r),
        "skew": pf.skew(r),
        "kurtosis": pf.kurtosis(r),
        "mdd": pf.max_drawdown(r),
        "ulcer": pf.ulcer_index(r),
    }
    for metric, value in values.items():
        assert np.isnan(value) or np.isfinite(value), (metric, value)
    reasons = pf.undefined_reasons(r)
    if name == "constant prices":
        assert np.isnan(values["sharpe"]) and "sharpe" in reasons
        assert values["mdd"] == 0.0
    if name == "single period":
        assert np.isnan(values["volatility"]) and "volatility" in reasons
        assert values["total"] == pytest.approx(0.05)
    if name == "nan run":
        assert pf.observations(r) == 5
        assert values["total"] == pytest.approx(1.01 * 0.98 * 1.03 * 1.01 * 0.99 - 1)
    if name == "99% crash":
        assert values["mdd"] == pytest.approx(1 - 0.01, rel=1e-12)
        assert np.isfinite(values["calmar"])
    if name == "only gains":
        assert np.isnan(values["sortino"]) and "sortino" in reasons
        assert np.isnan(values["calmar"]) and "calmar" in reasons


def test_an_empty_matrix_gives_nan_per_column() -> None:
    empty = np.empty((0, 3))
    for metric in (pf.tail_ratio, pf.best, pf.worst, pf.total_return, pf.skew):
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
