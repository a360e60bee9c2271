"""Resampling a return history into paths: stationary block bootstrap, and a two-regime model.

`block_bootstrap` draws paths of whole blocks of the history (optionally weighted toward recent
days), keeping the short-range dependence of returns. `volatility_regimes` labels each day
calm or turbulent by its rolling volatility, and `RegimeModel` draws each path's days from the
regime a fitted Markov chain is in, so calm and turbulent stretches persist as they did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from coinql.domain.typing import FloatArray


def block_bootstrap(
    returns: FloatArray,
    paths: int,
    horizon: int,
    block_length: int,
    rng: np.random.Generator,
    weights: FloatArray | None = None,
) -> FloatArray:
    """Draw return paths from random contiguous blocks of a return stream.

    Blocks wrap around the end (circular), so every observation can start a block.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
        The history, without NaN.
    paths, horizon : int
        The number of paths and the steps in each.
    block_length : int
        Consecutive returns per block; the last block of a path is cut at the horizon.
    rng : numpy.random.Generator
        The source of randomness.
    weights : ndarray of shape (n_observations,) or None, default None
        Probabilities of each observation starting a block, summing to 1; None for uniform.

    Returns
    -------
    ndarray of shape (paths, horizon)
        The paths' returns.
    """
    n = returns.shape[0]
    blocks = -(-horizon // block_length)
    if weights is None:
        starts = rng.integers(0, n, size=(paths, blocks))
    else:
        starts = rng.choice(n, size=(paths, blocks), p=weights)
    steps = np.arange(horizon)
    # Step t of a path is observation (start of block t // L) + t % L, circularly: index a
    # history extended by its first L - 1 observations instead of taking a modulo per step.
    extended = np.concatenate([returns, returns[np.arange(block_length - 1) % n]])
    # Drawn step-major, (horizon, paths), and returned as its transpose: the simulation's `.T`
    # is then a contiguous buffer whose running products and peaks advance one step for all
    # paths at a time.
    by_step: FloatArray = extended[
        starts.T[steps // block_length] + (steps % block_length)[:, None]
    ]
    return by_step.T


REGIME_WINDOW = 30


def volatility_regimes(returns: FloatArray, window: int = REGIME_WINDOW) -> Any:
    """Label each observation calm (0) or turbulent (1).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
        The history, without NaN.
    window : int, default 30
        Returns in the trailing window whose std (ddof 0) is the realised volatility.

    Returns
    -------
    ndarray of int64 of shape (n_observations,)
        1 where the trailing realised volatility is above its median, else 0; the first
        `window - 1` observations, which lack a full window, count as at the median (0).
    """
    padded = np.concatenate([np.full(window - 1, np.nan), returns])
    rolling = np.std(np.lib.stride_tricks.sliding_window_view(padded, window), axis=-1)
    rolling[np.isnan(rolling)] = np.nanmedian(rolling)
    return (rolling > np.nanmedian(rolling)).astype(np.int64)


@dataclass(frozen=True, slots=True)
class RegimeModel:
    """A two-state Markov chain of Student-t returns, fitted to a return stream.

    Parameters
    ----------
    transitions : ndarray of shape (2, 2)
        Row-stochastic transition probabilities between calm (0) and turbulent (1).
    location, scale, tail : ndarray of shape (2,)
        Each state's Student-t location, scale and degrees of freedom (at least 2.1, so the
        variance is finite).
    """

    transitions: FloatArray  # (2, 2)
    location: FloatArray  # (2,)
    scale: FloatArray
    tail: FloatArray

    @classmethod
    def fit(cls, returns: FloatArray) -> RegimeModel:
        """Fit the chain to the regimes of a return stream by maximum likelihood.

        Parameters
        ----------
        returns : ndarray of shape (n_observations,)
            The history, without NaN.

        Returns
        -------
        RegimeModel
            Transitions counted between `volatility_regimes` labels (plus one of each, so
            every state has a way out); a Student-t per state, fitted to the whole stream
            when the state has fewer than 10 observations.
        """
        labels = volatility_regimes(returns)
        counts = np.zeros((2, 2))
        np.add.at(counts, (labels[:-1], labels[1:]), 1)
        counts += 1  # a state seen once still gets a way out
        transitions = counts / counts.sum(axis=1, keepdims=True)
        fits = []
        for state in (0, 1):
            sample = returns[labels == state]
            if sample.size < 10:
                sample = returns
            tail, location, scale = stats.t.fit(sample)
            fits.append((location, scale, max(tail, 2.1)))
        location, scale, tail = (np.array(values) for values in zip(*fits, strict=True))
        return cls(transitions, location, scale, tail)

    def paths(self, paths: int, horizon: int, start_state: int, rng: np.random.Generator) -> Any:
        """Draw return paths from the chain.

        Parameters
        ----------
        paths, horizon : int
            The number of paths and the steps in each.
        start_state : int
            The state of the first step, 0 or 1.
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        ndarray of shape (paths, horizon)
            The paths' returns.
        """
        states = np.empty((paths, horizon), dtype=np.int64)
        state = np.full(paths, start_state)
        draws = rng.random((paths, horizon))
        for step in range(horizon):  # a Markov chain is sequential; vectorized over paths
            states[:, step] = state
            state = np.where(draws[:, step] < self.transitions[state, 1], 1, 0)
        shocks = stats.t.rvs(self.tail[states], random_state=rng, size=(paths, horizon))
        return self.location[states] + self.scale[states] * shocks
