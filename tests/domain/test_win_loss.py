"""The distribution of wins and losses against quantstats 0.0.86 on random and real series."""

from __future__ import annotations

import numpy as np
import pytest

from coinql.domain import win_loss as wl
from coinql.domain.aggregate import Period, aggregate
from tests.domain.coins import NAMES, aligned_returns, daily_returns
from tests.domain.tear_oracles import (
    as_series,
    close,
    fresh_seed,
    oracle,
    quantstats,
    random_returns,
)

SYMBOLS = list(NAMES)
# Same name, same arguments in both libraries.
METRICS = [
    "avg_win",
    "avg_loss",
    "payoff_ratio",
    "profit_factor",
    "gain_to_pain_ratio",
    "common_sense_ratio",
    "cpc_index",
    "kelly_criterion",
    "risk_of_ruin",
    "consecutive_wins",
    "consecutive_losses",
    "expected_return",
    "outlier_win_ratio",
    "outlier_loss_ratio",
]
# quantstats breaks a streak on a missing day; coinql leaves the day out (tested below).
GAP_AGNOSTIC = [name for name in METRICS if not name.startswith("consecutive")]


def compare(returns: np.ndarray, names: list[str], context: object) -> None:
    qs = quantstats()
    series = as_series(returns)
    for name in names:
        theirs = oracle(getattr(qs.stats, name), series)
        close(getattr(wl, name)(returns), theirs, f"{name}, {context}")


def test_random_series_against_quantstats() -> None:
    seed = fresh_seed()
    r = random_returns(seed)
    compare(r, METRICS, f"seed {seed}")
    compare(r[:25], METRICS, f"first 25 of seed {seed}")  # a risk of ruin that is not ~0


def test_random_series_with_gaps_against_quantstats() -> None:
    seed = fresh_seed()
    compare(random_returns(seed, missing=0.05), GAP_AGNOSTIC, f"seed {seed}, 5 % missing")


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_coins_against_quantstats(symbol: str) -> None:
    r = daily_returns(symbol)
    compare(r, METRICS, symbol)
    compare(r[-30:], METRICS, f"last 30 days of {symbol}")


@pytest.mark.parametrize("period", [Period.WEEK, Period.MONTH])
def test_gain_to_pain_at_a_coarser_resolution(period: Period) -> None:
    """quantstats' `resolution` sums the returns by period first; so does aggregate's
    compounded=False."""
    qs = quantstats()
    timestamps, returns = aligned_returns(["BTC"])
    r = returns[:, 0]
    _, summed = aggregate(timestamps, r, period, compounded=False)
    resolution = {Period.WEEK: "W", Period.MONTH: "ME"}[period]
    theirs = oracle(qs.stats.gain_to_pain_ratio, as_series(r, timestamps), resolution=resolution)
    close(wl.gain_to_pain_ratio(summed), theirs, period)


def test_many_series_at_once_equal_each_alone() -> None:
    _, returns = aligned_returns(SYMBOLS)
    returns = returns.copy()
    returns[5:40, 2] = np.nan  # one series with a gap
    for name in METRICS:
        together = getattr(wl, name)(returns)
        assert together.shape == (len(SYMBOLS),)
        for column in range(len(SYMBOLS)):
            close(together[column], getattr(wl, name)(returns[:, column]), (name, column))


def test_a_missing_day_neither_breaks_nor_extends_a_streak() -> None:
    r = np.array([0.01, 0.02, np.nan, 0.03, -0.01, np.inf, -0.02, 0.0, -0.01])
    assert wl.consecutive_wins(r) == 3
    assert wl.consecutive_losses(r) == 2  # the zero breaks it
    qs = quantstats()
    assert oracle(qs.stats.consecutive_wins, as_series(r)) == 2  # quantstats breaks on NaN
    values, counts = wl.known_first(r)
    np.testing.assert_array_equal(values[:7], [0.01, 0.02, 0.03, -0.01, -0.02, 0.0, -0.01])
    assert np.isnan(values[7:]).all()
    assert counts == 7


NO_LOSSES = ["payoff_ratio", "profit_factor", "gain_to_pain_ratio", "cpc_index"]


def test_without_losses_the_loss_ratios_are_nan_not_inf() -> None:
    r = np.array([0.01, 0.0, 0.03, 0.02, 0.05])
    for name in [*NO_LOSSES, "kelly_criterion", "common_sense_ratio", "avg_loss"]:
        assert np.isnan(getattr(wl, name)(r)), name
    assert np.isnan(wl.outlier_loss_ratio(r))
    assert wl.consecutive_losses(r) == 0
    assert wl.avg_win(r) == pytest.approx(0.0275)
    qs = quantstats()
    assert oracle(qs.stats.profit_factor, as_series(r)) == np.inf  # quantstats' convention


def test_rounding_noise_is_not_a_loss() -> None:
    r = np.array([0.01, -1e-18, 0.02, 0.03])
    for name in NO_LOSSES:
        assert np.isnan(getattr(wl, name)(r)), name


def test_without_wins() -> None:
    r = np.array([-0.01, -0.02, 0.0, -0.03])
    assert np.isnan(wl.avg_win(r))
    assert np.isnan(wl.payoff_ratio(r))
    assert np.isnan(wl.kelly_criterion(r))
    assert wl.profit_factor(r) == 0.0  # no gains over real losses is a defined 0
    assert wl.risk_of_ruin(r) == 1.0  # win rate 0: ((1 - 0) / (1 + 0)) ** n
    assert np.isnan(wl.outlier_win_ratio(r))  # the non-negative returns (one 0) average 0


@pytest.mark.parametrize(
    "returns",
    [np.array([]), np.array([np.nan, np.inf]), np.zeros(5)],
    ids=["empty", "all missing", "all flat"],
)
def test_undefined_without_decided_periods(returns: np.ndarray) -> None:
    for name in METRICS:
        value = getattr(wl, name)(returns)
        if name.startswith("consecutive"):
            assert value == 0, name
        elif name == "expected_return" and returns.size == 5:
            assert value == 0.0
        elif name == "outlier_win_ratio" and returns.size == 5:
            assert np.isnan(value)  # the non-negative returns average 0
        else:
            assert np.isnan(value), name
        assert not np.isinf(value), name


def test_one_observation() -> None:
    r = np.array([0.02])
    assert wl.expected_return(r) == pytest.approx(0.02)
    assert wl.consecutive_wins(r) == 1
    assert wl.risk_of_ruin(r) == 0.0
    assert np.isnan(wl.common_sense_ratio(r))


def test_kelly_is_the_fixed_odds_fraction() -> None:
    # Wins of 2 % half the time, losses of 1 %: p = 0.5, b = 2, f = 0.5 - 0.5 / 2.
    r = np.tile([0.02, -0.01], 50)
    assert wl.kelly_criterion(r) == pytest.approx(0.25)
    assert wl.payoff_ratio(r) == pytest.approx(2.0)
    assert wl.profit_factor(r) == pytest.approx(2.0)
    assert wl.gain_to_pain_ratio(r) == pytest.approx(1.0)
    assert wl.consecutive_wins(r) == wl.consecutive_losses(r) == 1
