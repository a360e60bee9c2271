"""Recovery factor, ulcer performance and serenity indexes against quantstats 0.0.86."""

from __future__ import annotations

import numpy as np
import pytest

from coinql.domain import drawdown_ratios as dr
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
METRICS = ["recovery_factor", "ulcer_performance_index", "serenity_index"]
RF = 0.03  # subtracted from the total as is, in both libraries


def compare(returns: np.ndarray, names: list[str], context: object) -> None:
    qs = quantstats().stats
    series = as_series(returns)
    for name in names:
        for rf in (0.0, RF):
            theirs = oracle(getattr(qs, name), series, rf=rf)
            close(getattr(dr, name)(returns, rf), theirs, f"{name}, rf {rf}, {context}")


def test_random_series_against_quantstats() -> None:
    seed = fresh_seed()
    returns = random_returns(seed)
    compare(returns, METRICS, f"seed {seed}")
    compare(returns[:20], METRICS, f"first 20 of seed {seed}")


def test_random_series_with_gaps_against_quantstats() -> None:
    """quantstats' ulcer index divides by all periods less one, missing ones too, so only the
    recovery factor agrees on series with gaps."""
    seed = fresh_seed()
    compare(random_returns(seed, missing=0.05), ["recovery_factor"], f"seed {seed}, gaps")


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_coins_against_quantstats(symbol: str) -> None:
    r = daily_returns(symbol)
    compare(r, METRICS, symbol)
    compare(r[-60:], METRICS, f"last 60 days of {symbol}")


def test_many_series_at_once_equal_each_alone() -> None:
    _, returns = aligned_returns(SYMBOLS)
    for name in METRICS:
        together = getattr(dr, name)(returns, RF)
        assert together.shape == (len(SYMBOLS),)
        for column in range(len(SYMBOLS)):
            close(together[column], getattr(dr, name)(returns[:, column], RF), (name, column))


@pytest.mark.parametrize(
    "returns",
    [np.array([]), np.array([0.01]), np.array([0.01, 0.02, 0.0, 0.03]), np.full(10, 0.01)],
    ids=["empty", "one", "never down", "constant"],
)
def test_undefined_without_a_drawdown(returns: np.ndarray) -> None:
    for name in METRICS:
        assert np.isnan(getattr(dr, name)(returns)), name


def test_a_first_period_loss_is_a_drawdown() -> None:
    r = np.array([-0.10, 0.05, 0.02])
    assert dr.recovery_factor(r) == pytest.approx(0.03 / 0.10)
    assert np.isfinite(dr.serenity_index(r))
