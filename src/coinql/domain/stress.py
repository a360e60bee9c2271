"""Stress scenarios for a weighted basket: replayed historical moves and a beta shock.

Basket returns are simple returns of the basket for the given weights (fractions of its
value, as `coinql.domain.basket` builds them): the weighted sum of each asset's move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coinql.domain.covariance import complete_rows
from coinql.domain.typing import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Scenario:
    """A stress scenario and the basket's return under it.

    `window`, `start` and `end` (epoch ms) say which historical move a replayed scenario is;
    they are None for a hypothetical one.
    """

    name: str
    basket_return: float
    window: int | None = None
    start: int | None = None
    end: int | None = None


def worst_window(closes: FloatArray, window: int) -> tuple[int, int] | None:
    """Find the worst price change over `window` periods of a close series.

    Parameters
    ----------
    closes : ndarray of shape (n_observations,)
        NaN for a missing close.
    window : int
        Periods between the two closes compared.

    Returns
    -------
    tuple of (int, int) or None
        The (start, end) indexes, end = start + window; None when the series is not longer
        than the window or no change is known.
    """
    if closes.shape[0] <= window:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        change = closes[window:] / closes[:-window] - 1
    if np.all(np.isnan(change)):
        return None
    end = int(np.nanargmin(change)) + window
    return end - window, end


def historical_scenarios(
    timestamps: IntArray,
    closes: FloatArray,
    weights: FloatArray,
    *,
    anchor: int = 0,
    windows: tuple[int, ...] = (1, 7, 30),
) -> list[Scenario]:
    """Replay the anchor asset's worst moves over each window on today's weights.

    Each asset's own move over the same window is applied to its weight.

    Parameters
    ----------
    timestamps : ndarray of shape (n_observations,)
        Epoch ms of each row of `closes`.
    closes : ndarray of shape (n_observations, n_assets)
        NaN for a missing close; an asset without a move counts as 0 in the basket return.
    weights : ndarray of shape (n_assets,)
    anchor : int, default 0
        The column whose worst moves are replayed.
    windows : tuple of int, default (1, 7, 30)
        Periods of each move.

    Returns
    -------
    list of Scenario
        One per window that the anchor's history is long enough for, in the order given.
    """
    scenarios = []
    for window in windows:
        found = worst_window(closes[:, anchor], window)
        if found is None:
            continue
        start, end = found
        with np.errstate(divide="ignore", invalid="ignore"):
            moves = closes[end] / closes[start] - 1
        scenarios.append(
            Scenario(
                name=f"worst {window}-period move of asset {anchor}",
                basket_return=float(np.nansum(weights * moves)),
                window=window,
                start=int(timestamps[start]),
                end=int(timestamps[end]),
            )
        )
    return scenarios


def beta_shock(returns: FloatArray, weights: FloatArray, *, anchor: int, shock: float) -> float:
    """Compute the basket return when the anchor moves by `shock`.

    Every asset moves by its beta to the anchor (population moments over the complete rows)
    times the shock; the anchor's own beta is 1.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_assets)
        Rows holding a NaN are left out.
    weights : ndarray of shape (n_assets,)
    anchor : int
        The column of the shocked asset.
    shock : float
        The anchor's return, e.g. -0.3.

    Returns
    -------
    float
        NaN below two complete rows or when the anchor does not vary.
    """
    rows = complete_rows(returns)
    if rows.shape[0] < 2:
        return np.nan
    factor = rows[:, anchor] - rows[:, anchor].mean()
    variance = np.mean(factor**2)
    if variance == 0:
        return np.nan
    betas = (factor @ (rows - rows.mean(axis=0))) / rows.shape[0] / variance
    return float(weights @ (betas * shock))
