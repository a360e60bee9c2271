"""Smart, adjusted and probabilistic ratios, Treynor, R-squared and stability against
quantstats 0.0.86 and empyrical-reloaded on random and real series."""

from __future__ import annotations

from typing import Any

import empyrical as ep
import numpy as np
import pytest

from coinql.domain import ratios
from coinql.domain.compounding import periodic_rate
from tests.domain.coins import NAMES, aligned_returns, daily_returns
from tests.domain.tear_oracles import (
    P,
    as_series,
    close,
    fresh_seed,
    oracle,
    quantstats,
    random_returns,
)

SYMBOLS = list(NAMES)
ANNUAL_RF = 0.03
RF = periodic_rate(ANNUAL_RF, P)  # quantstats de-annualises geometrically too


def compare_single(returns: np.ndarray, context: object, *, gaps: bool = False) -> None:
    qs = quantstats().stats
    series = as_series(returns)
    rates: dict[str, Any] = {"rf": ANNUAL_RF, "periods": P}
    pairs = [
        (ratios.autocorrelation_penalty(returns), oracle(qs.autocorr_penalty, series)),
        (ratios.smart_sharpe(returns, P, RF), oracle(qs.smart_sharpe, series, **rates)),
        (ratios.smart_sortino(returns, P, RF), oracle(qs.smart_sortino, series, **rates)),
        (ratios.adjusted_sortino(returns, P, RF), oracle(qs.adjusted_sortino, series, **rates)),
        (
            ratios.adjusted_sortino(returns, P, RF, smart=True),
            oracle(qs.adjusted_sortino, series, smart=True, **rates),
        ),
        (ratios.stability(returns), oracle(ep.stability_of_timeseries, returns)),
    ]
    # quantstats' probabilistic Sharpe ratio counts missing days in n; coinql does not.
    known = series.dropna()
    pairs += [
        (
            ratios.probabilistic_sharpe_ratio(returns, RF),
            oracle(qs.probabilistic_sharpe_ratio, known, **rates),
        ),
        (
            ratios.probabilistic_sharpe_ratio(returns, RF, smart=True),
            oracle(qs.probabilistic_sharpe_ratio, known, smart=True, **rates),
        ),
    ]
    names = ["penalty", "smart sharpe", "smart sortino", "adjusted", "adjusted smart"]
    names += ["stability", "psr", "smart psr"]
    for name, (ours, theirs) in zip(names, pairs, strict=True):
        close(ours, theirs, f"{name}, {context}")


def compare_relative(returns: np.ndarray, benchmark: np.ndarray, context: object) -> None:
    qs = quantstats().stats
    series, bench = as_series(returns), as_series(benchmark)
    theirs = oracle(qs.treynor_ratio, series, bench, periods=P, rf=ANNUAL_RF)
    close(ratios.treynor_ratio(returns, benchmark, ANNUAL_RF), theirs, f"treynor, {context}")
    theirs = oracle(qs.r_squared, series, bench)
    close(ratios.r_squared(returns, benchmark), theirs, f"r squared, {context}")


def test_random_series_against_quantstats() -> None:
    seed = fresh_seed()
    returns = random_returns(seed)
    compare_single(returns, f"seed {seed}")
    compare_single(returns[:40], f"first 40 of seed {seed}")
    benchmark = 0.6 * returns + random_returns(seed + 1)
    compare_relative(returns, benchmark, f"seed {seed}")


def test_random_series_with_gaps_against_quantstats() -> None:
    seed = fresh_seed()
    returns = random_returns(seed, missing=0.05)
    compare_single(returns, f"seed {seed}, 5 % missing")
    benchmark = random_returns(seed + 1, missing=0.05)
    compare_relative(returns, np.where(np.isnan(benchmark), np.nan, returns + benchmark), seed)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_coins_against_quantstats(symbol: str) -> None:
    r = daily_returns(symbol)
    compare_single(r, symbol)
    compare_single(r[-90:], f"last 90 days of {symbol}")  # a PSR away from 1


@pytest.mark.parametrize("symbol", [s for s in SYMBOLS if s != "BTC"])
def test_coins_against_bitcoin(symbol: str) -> None:
    _, returns = aligned_returns(["BTC", symbol])
    compare_relative(returns[:, 1], returns[:, 0], symbol)


def test_many_series_at_once_equal_each_alone() -> None:
    _, returns = aligned_returns(SYMBOLS)
    returns = returns.copy()
    returns[10:30, 1] = np.nan
    benchmark = np.repeat(returns[:, :1], len(SYMBOLS), axis=1)
    single = [
        ratios.autocorrelation_penalty,
        lambda r: ratios.smart_sharpe(r, P, RF),
        lambda r: ratios.smart_sortino(r, P, RF),
        lambda r: ratios.probabilistic_sharpe_ratio(r, RF, smart=True),
        ratios.stability,
    ]
    for function in single:
        together = function(returns)
        for column in range(len(SYMBOLS)):
            close(together[column], function(returns[:, column]), (function, column))
    for relative in (ratios.treynor_ratio, ratios.r_squared):
        together = relative(returns, benchmark)
        for column in range(len(SYMBOLS)):
            alone = relative(returns[:, column], benchmark[:, column])
            close(together[column], alone, (relative, column))


def test_autocorrelation_raises_the_penalty() -> None:
    seed = fresh_seed()
    noise = np.random.default_rng(seed).normal(0.001, 0.02, 2_000)
    trending = np.convolve(noise, np.ones(5) / 5, mode="valid")  # strongly autocorrelated
    assert ratios.autocorrelation_penalty(trending) > 1.5, seed
    assert abs(ratios.smart_sharpe(trending, P)) < abs(
        np.mean(trending) / np.std(trending, ddof=1) * np.sqrt(P)
    ), seed


@pytest.mark.parametrize("n", [0, 1])
def test_too_few_observations(n: int) -> None:
    r = np.full(n, 0.01)
    assert ratios.autocorrelation_penalty(r) == 1.0
    for value in (
        ratios.smart_sharpe(r, P),
        ratios.smart_sortino(r, P),
        ratios.adjusted_sortino(r, P),
        ratios.probabilistic_sharpe_ratio(r),
        ratios.stability(r),
        ratios.r_squared(r, r),
    ):
        assert np.isnan(value)


def test_probabilistic_sharpe_needs_four_observations() -> None:
    assert np.isnan(ratios.probabilistic_sharpe_ratio(np.array([0.01, -0.02, 0.03])))
    assert 0 < ratios.probabilistic_sharpe_ratio(np.array([0.01, -0.02, 0.03, 0.02])) < 1


def test_flat_series_are_undefined_not_infinite() -> None:
    flat = np.full(50, 0.001)
    assert np.isnan(ratios.smart_sharpe(flat, P))  # no dispersion
    assert np.isnan(ratios.smart_sortino(flat, P))  # no downside
    assert np.isnan(ratios.probabilistic_sharpe_ratio(flat))
    zeros = np.zeros(50)
    assert np.isnan(ratios.stability(zeros))
    assert np.isnan(oracle(ep.stability_of_timeseries, zeros))
    assert ratios.stability(flat) == pytest.approx(1.0)  # a straight line fits exactly


def test_benchmark_that_does_not_move() -> None:
    seed = fresh_seed()
    r = random_returns(seed, 200)
    still = np.zeros(200)
    assert np.isnan(ratios.treynor_ratio(r, still)), seed
    assert np.isnan(ratios.r_squared(r, still)), seed
    qs = quantstats().stats
    assert oracle(qs.treynor_ratio, as_series(r), as_series(still)) == 0  # quantstats: 0
