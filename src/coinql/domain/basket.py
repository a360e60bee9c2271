"""A weighted basket of assets on their common periods, and the stress scenarios replayed on it.

The input of the risk report, PCA and the optimizer: returns of shape
(n_observations, n_assets), aligned on the timestamps every asset shares, and one weight per
asset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coinql.domain import stress
from coinql.domain.errors import InvalidInput
from coinql.domain.typing import FloatArray, IntArray

# BTC, -30 % and -50 %, others through their beta to it.
SHOCKS = (-0.3, -0.5)


def check_weights(symbols: Sequence[str], weights: Sequence[float] | None) -> None:
    """Raise `InvalidInput` naming `weights` unless they are one finite number per symbol.

    Parameters
    ----------
    symbols : sequence of str
    weights : sequence of float, or None
        None (equal weights) passes.
    """
    if weights is not None:
        if len(weights) != len(symbols):
            raise InvalidInput("weights", "give one weight per symbol")
        if not all(np.isfinite(weights)):
            raise InvalidInput("weights", "weights must be finite numbers")


@dataclass(frozen=True)
class Basket:
    """Aligned returns of several assets and the weights held in them.

    Parameters
    ----------
    symbols : list of str
        One per asset, in the order of the columns.
    weights : ndarray of shape (n_assets,)
        Fractions of the basket's value; negative for a short.
    timestamps : ndarray of shape (n_observations,)
        Epoch ms of each return (the later close's open time).
    returns : ndarray of shape (n_observations, n_assets)
        Simple returns, NaN where missing.
    closes : ndarray of shape (n_observations + 1, n_assets)
        Growth of 1 in each asset, starting at 1, aligned like the returns.
    close_timestamps : ndarray of shape (n_observations + 1,)
        The times of `closes` (the first repeated, for the starting 1).
    periods_per_year : float
        Annualises.
    """

    symbols: list[str]
    weights: FloatArray
    timestamps: IntArray
    returns: FloatArray
    closes: FloatArray
    close_timestamps: IntArray
    periods_per_year: float

    @classmethod
    def of(
        cls,
        symbols: list[str],
        timestamps: IntArray,
        returns: FloatArray,
        weights: Sequence[float] | None,
        periods_per_year: float,
    ) -> Basket:
        """Build the basket of aligned `returns`, equally weighted when `weights` is None.

        Parameters
        ----------
        symbols : list of str
        timestamps : ndarray of shape (n_observations,)
        returns : ndarray of shape (n_observations, n_assets)
        weights : sequence of float of length n_assets, or None
        periods_per_year : float

        Returns
        -------
        Basket

        Raises
        ------
        InvalidInput
            For fewer than 2 common observations, naming `symbols` (the weights are checked
            before the returns are loaded, by `check_weights`).
        """
        if returns.shape[0] < 2:
            raise InvalidInput(
                "symbols", "fewer than 2 common observations for these symbols in this window"
            )
        closes = np.vstack([np.ones(len(symbols)), np.cumprod(1.0 + returns, axis=0)])
        return cls(
            symbols=symbols,
            weights=np.asarray(
                weights if weights is not None else np.full(len(symbols), 1 / len(symbols)),
                dtype=np.float64,
            ),
            timestamps=timestamps,
            returns=returns,
            closes=closes,
            close_timestamps=np.concatenate([[timestamps[0]], timestamps]),
            periods_per_year=periods_per_year,
        )

    @property
    def basket_returns(self) -> FloatArray:
        """The weighted returns, shape (n_observations,); NaN where any asset's is."""
        return self.returns @ self.weights


def stress_scenarios(basket: Basket) -> list[stress.Scenario]:
    """Historical and shock scenarios replayed on the basket's weights.

    Parameters
    ----------
    basket : Basket

    Returns
    -------
    list of Scenario
        The anchor's (BTC's if present, else the first symbol's) worst 1-, 7- and 30-period
        moves replayed on the weights (each asset's own move over the same window; a window
        longer than the history is left out), then -30 % and -50 % shocks of the anchor moved
        through each asset's beta to it (NaN when the anchor does not vary).
    """
    anchor = basket.symbols.index("BTC") if "BTC" in basket.symbols else 0
    name = basket.symbols[anchor]
    scenarios = [
        stress.Scenario(
            name=f"{name} worst {found.window}-period move",
            basket_return=found.basket_return,
            window=found.window,
            start=found.start,
            end=found.end,
        )
        for found in stress.historical_scenarios(
            basket.close_timestamps, basket.closes, basket.weights, anchor=anchor
        )
    ]
    for shock in SHOCKS:
        scenarios.append(
            stress.Scenario(
                name=f"{name} {shock:+.0%}, others through their beta",
                basket_return=stress.beta_shock(
                    basket.returns, basket.weights, anchor=anchor, shock=shock
                ),
            )
        )
    return scenarios
