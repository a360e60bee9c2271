"""Stress scenarios replayed on the coins."""

from __future__ import annotations

import numpy as np
import pytest

from coinql.domain import stress
from tests.domain.coins import aligned_returns


def test_stress_scenarios_replay_the_worst_window() -> None:
    timestamps, r = aligned_returns(["BTC", "ETH"])
    closes = np.vstack([np.ones(2), np.cumprod(1 + r, axis=0)])
    stamps = np.concatenate([[timestamps[0]], timestamps])
    weights = np.array([0.5, 0.5])
    scenarios = stress.historical_scenarios(stamps, closes, weights, anchor=0, windows=(30,))
    (worst,) = scenarios
    btc_moves = closes[30:, 0] / closes[:-30, 0] - 1
    assert btc_moves.min() < -0.4  # the March 2020 crash is in the data
    start = int(np.argmin(btc_moves))
    moves = closes[start + 30] / closes[start] - 1
    assert worst.basket_return == pytest.approx(weights @ moves)
    shock = stress.beta_shock(r, weights, anchor=0, shock=-0.3)
    eth_beta = np.cov(r[:, 1], r[:, 0], ddof=0)[0, 1] / np.var(r[:, 0])
    assert shock == pytest.approx(0.5 * -0.3 + 0.5 * eth_beta * -0.3, rel=1e-9)
