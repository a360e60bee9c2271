"""What the optimizer tests share: the six real coins' daily returns on their common days, the
mean and covariance PyPortfolioOpt is given too, and how its weights are read."""

from __future__ import annotations

import numpy as np

from tests.domain.coins import aligned_returns

SYMBOLS = ["BTC", "ETH", "BNB", "ADA", "DOGE", "LTC"]
_, RETURNS = aligned_returns(SYMBOLS)
MU = RETURNS.mean(axis=0) * 365
COV = np.cov(RETURNS, rowvar=False) * 365
TOLERANCE = 1e-4  # weights, against PyPortfolioOpt's


def weights_of(frontier) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A PyPortfolioOpt optimizer's weights, unrounded, in the symbols' order."""
    return np.array(list(frontier.clean_weights(rounding=None).values()))
