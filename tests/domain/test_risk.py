"""Risk engines against scikit-learn, numpy's SVD, empyrical and quantstats."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coinql.domain import covariance, risk
from coinql.domain.covariance import CovarianceMethod
from coinql.domain.risk import VarMethod
from tests.domain.coins import NAMES, aligned_returns, daily_returns

SYMBOLS = list(NAMES)


LEVELS = [0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.975, 0.99]


def cutoff(level: float) -> float:
    """1 - level as the decimal the caller means: 0.1 for 0.9, where the float 1 - 0.9 is
    0.09999999999999998 and makes empyrical drop the boundary observation itself."""
    return float(Decimal(1) - Decimal(repr(level)))


def exact_tail_mean(r: np.ndarray, level: float) -> float:
    """The mean of the floor((n - 1) (1 - level)) + 1 lowest returns, counted in fractions."""
    count = math.floor((r.size - 1) * (1 - Fraction(repr(level)))) + 1
    return float(np.mean(np.sort(r)[:count]))


@pytest.mark.parametrize("n", [21, 101, 500, 1000, 1001, 2001, 5000])
@pytest.mark.parametrize("level", LEVELS)
def test_historical_es_equals_empyrical_at_every_level(n: int, level: float) -> None:
    """n - 1 a multiple of 10 or 20 puts the tail's edge on an observation at 0.8 and 0.9,
    where 1 - level is not a binary fraction."""
    r = np.random.default_rng(0).standard_normal(n) * 0.03
    r[::7] = np.round(r[::7], 3)  # ties, so that the count at the boundary matters
    found = risk.expected_shortfall(r, level, VarMethod.HISTORICAL)
    assert found == pytest.approx(-ep.conditional_value_at_risk(r, cutoff(level)), rel=1e-12)
    assert found == pytest.approx(-exact_tail_mean(r, level), rel=1e-12)
    assert found >= risk.value_at_risk(r, level, VarMethod.HISTORICAL) - 1e-15


def test_the_boundary_observation_is_in_the_tail() -> None:
    """1,001 returns at 0.9: the tail is the 101 lowest, the 101st being the VaR itself."""
    r = np.random.default_rng(0).standard_normal(1001) * 0.03
    ordered = np.sort(r)
    assert risk.value_at_risk(r, 0.9, VarMethod.HISTORICAL) == pytest.approx(-ordered[100])
    found = risk.expected_shortfall(r, 0.9, VarMethod.HISTORICAL)
    assert found == pytest.approx(-ordered[:101].mean(), rel=1e-12)
    assert found != pytest.approx(-ordered[:100].mean(), rel=1e-9)


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("days", [None, 1000, 1001])
def test_historical_var_and_es_equal_empyrical_on_the_coins(symbol: str, days: int | None) -> None:
    r = daily_returns(symbol)
    r = r if days is None else r[-days:]
    for level in LEVELS:
        assert risk.value_at_risk(r, level, VarMethod.HISTORICAL) == pytest.approx(
            -ep.value_at_risk(r, cutoff(level)), rel=1e-12
        ), level
        assert risk.expected_shortfall(r, level, VarMethod.HISTORICAL) == pytest.approx(
            -ep.conditional_value_at_risk(r, cutoff(level)), rel=1e-12
        ), level


def test_empyrical_var_and_cvar_test_cases() -> None:
    """empyrical's own cases (its test_value_at_risk and test_conditional_value_at_risk),
    with coinql's sign (a loss is positive) and level = 1 - cutoff."""
    assert risk.value_at_risk(np.array([1.0, 2.0]), 0.7, VarMethod.HISTORICAL) == pytest.approx(
        -1.3
    )
    six = np.array([1.0, 81, 82, 83, 84, 85])
    for tail, expected in ((0.1, 41.0), (0.2, 81.0), (0.3, 81.5)):
        assert risk.value_at_risk(six, 1 - tail, VarMethod.HISTORICAL) == pytest.approx(-expected)
    r = np.random.default_rng(0).normal(0, 0.02, 21)
    for tail in (0.0499, 0.05, 0.20, 0.999):
        var = np.percentile(r, tail * 100)
        expected = -np.mean(r[r <= var])  # their test: the mean at or below the VaR
        assert risk.expected_shortfall(r, 1 - tail, VarMethod.HISTORICAL) == pytest.approx(
            expected, rel=1e-12
        )


NON_FINITE = {
    "an infinite gain": np.array([0.01, -0.02, np.inf, 0.03, -0.01, 0.02, -0.04, 0.0, 0.01]),
    "NaN and inf": np.array([0.01, np.nan, -0.02, np.inf, 0.03, -0.01, 0.02, -0.03, 0.04]),
    "minus inf": np.array([0.01, -np.inf, -0.02, 0.03, -0.01, 0.02, 0.05, -0.02, 0.0]),
    "only one finite": np.array([np.inf, 0.01, np.nan]),
    "only non-finite": np.array([np.inf, -np.inf, np.nan]),
}


@pytest.mark.parametrize("name", list(NON_FINITE))
@pytest.mark.parametrize("method", list(VarMethod))
def test_var_and_es_use_the_finite_returns_without_warnings(name: str, method: VarMethod) -> None:
    r = NON_FINITE[name]  # warnings are errors: any RuntimeWarning fails the test
    finite = r[np.isfinite(r)]
    for measure in (risk.value_at_risk, risk.expected_shortfall):
        found, clean = measure(r, 0.95, method), measure(finite, 0.95, method)
        assert found == clean or (np.isnan(found) and np.isnan(clean)), measure.__name__
        if finite.size < 2:
            assert np.isnan(found)
    reasons = risk.undefined_reasons(r)
    assert (method.value in reasons) == np.isnan(risk.value_at_risk(r, 0.95, method))


def test_quantstats_var_is_parametric_and_signed() -> None:
    """quantstats' value_at_risk is the Gaussian one, returned as a (negative) return:
    it equals minus coinql's GAUSSIAN VaR, not the HISTORICAL one coinql defaults to."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantstats as qs
    r = daily_returns("BTC")
    series = pd.Series(r, index=pd.date_range("2017-01-02", periods=r.size, freq="D"))
    theirs = qs.stats.value_at_risk(series, confidence=0.99)
    assert risk.value_at_risk(r, 0.99, VarMethod.GAUSSIAN) == pytest.approx(-theirs, rel=1e-9)
    assert risk.value_at_risk(r, 0.99, VarMethod.HISTORICAL) != pytest.approx(-theirs, rel=0.05)
    assert risk.expected_shortfall(r, 0.99, VarMethod.GAUSSIAN) == pytest.approx(
        -qs.stats.cvar(series, confidence=0.99), rel=1e-9
    )


def test_cornish_fisher_reduces_to_gaussian_without_skew_or_kurtosis() -> None:
    rng = np.random.default_rng(0)
    # A symmetric, mesokurtic sample: antithetic normal draws rescaled to kurtosis 0.
    half = rng.standard_normal(50_000)
    r = np.concatenate([half, -half]) * 0.01
    gaussian = risk.value_at_risk(r, 0.99, VarMethod.GAUSSIAN)
    cornish = risk.value_at_risk(r, 0.99, VarMethod.CORNISH_FISHER)
    # The sample's excess kurtosis is only near 0 (about +/-0.03), hence 1 %.
    assert cornish == pytest.approx(gaussian, rel=1e-2)
    fat = daily_returns("BTC")  # a fat left tail: Cornish-Fisher sees a larger loss
    assert risk.value_at_risk(fat, 0.99, VarMethod.CORNISH_FISHER) > risk.value_at_risk(
        fat, 0.99, VarMethod.GAUSSIAN
    )


def test_cornish_fisher_outside_its_domain_is_undefined() -> None:
    wild = daily_returns("DOGE")  # the 2021 pump: skew and kurtosis far outside the domain
    assert np.isnan(risk.value_at_risk(wild, 0.99, VarMethod.CORNISH_FISHER))
    assert np.isnan(risk.expected_shortfall(wild, 0.99, VarMethod.CORNISH_FISHER))
    assert np.isfinite(risk.value_at_risk(wild, 0.99, VarMethod.GAUSSIAN))


def test_gaussian_expected_shortfall_closed_form() -> None:
    from scipy import stats

    r = daily_returns("ETH")
    mu, sigma = r.mean(), r.std(ddof=1)
    expected = sigma * stats.norm.pdf(stats.norm.ppf(0.05)) / 0.05 - mu
    assert risk.expected_shortfall(r, 0.95, VarMethod.GAUSSIAN) == pytest.approx(expected)


@pytest.mark.parametrize("method", list(CovarianceMethod))
def test_risk_contributions_sum_to_volatility(method: CovarianceMethod) -> None:
    _, r = aligned_returns(["BTC", "ETH", "LTC", "DOGE"])
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    found = risk.basket_risk(weights, covariance.covariance(r, method), 365)
    assert found.contributions.sum() == pytest.approx(found.volatility, rel=1e-12)
    basket = r @ weights
    if method is CovarianceMethod.SAMPLE:
        assert found.volatility == pytest.approx(basket.std(ddof=1) * np.sqrt(365), rel=1e-12)
    assert found.diversification_ratio > 1  # imperfect correlation diversifies


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.float64, st.integers(10, 300), elements=st.floats(-0.5, 0.5, allow_subnormal=False)),
    st.sampled_from(list(VarMethod)),
)
def test_var_is_monotone_in_the_level(r: np.ndarray, method: VarMethod) -> None:
    if np.std(r) == 0:
        return
    levels = [0.9, 0.95, 0.975, 0.99]
    values = [risk.value_at_risk(r, level, method) for level in levels]
    if np.isnan(values).any():
        assert method is VarMethod.CORNISH_FISHER  # outside its domain: undefined, not wrong
        return
    assert all(a <= b + 1e-12 for a, b in pairwise(values))


@settings(max_examples=100, deadline=None)
@given(
    arrays(np.float64, (60, 3), elements=st.floats(-0.2, 0.2, allow_subnormal=False)),
    arrays(np.float64, 3, elements=st.floats(0.01, 1)),
)
def test_contributions_always_sum_to_volatility(r: np.ndarray, weights: np.ndarray) -> None:
    found = risk.basket_risk(weights, covariance.sample_covariance(r), 365)
    if found.volatility > 1e-9:
        assert found.contributions.sum() == pytest.approx(found.volatility, rel=1e-9)
