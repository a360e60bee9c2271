"""Monte Carlo stress of a return stream: block bootstrap paths and their risk statistics.

Paths are drawn in chunks of 1,000 so that memory stays bounded whatever the number of paths:
only per-path statistics are kept, plus the first 2,000 paths' equity for the percentile bands
(paths are independent draws, so those are an unbiased sample). The same returns, parameters
and seed always give the same numbers. `expected_shortfall_99` is the mean loss of the worst
1 % of horizon returns, a positive fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from coinql.domain.typing import FloatArray

CHUNK_PATHS = 1_000
BAND_PATHS = 2_000  # the bands come from the first paths, an unbiased sample of them all
BAND_PERCENTILES = (5, 25, 50, 75, 95)


class SimulationMethod(StrEnum):
    BLOCK_BOOTSTRAP = "BLOCK_BOOTSTRAP"


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    paths: int = 5_000
    horizon: int = 365
    block_length: int = 10
    seed: int = 0
    ruin_threshold: float = 0.5  # equity below this fraction of the start counts as ruin
    leverage: float = 1.0
    liquidation_threshold: float = 0.0  # with leverage: equity at or below this is liquidated
    volatility_scaling: bool = False  # r' = r * sigma_now / sigma_block
    recent_window: int = 30


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """max_drawdown : percentiles of each path's max drawdown; bands : shape (5, horizon + 1),
    the 5/25/50/75/95th percentiles of equity at each step (equity starts at 1)."""

    max_drawdown_percentiles: dict[int, float]
    time_under_water_percentiles: dict[int, float]
    expected_shortfall_99: float
    ruin_probability: float
    liquidation_probability: float
    bands: FloatArray
    final_return_percentiles: dict[int, float]


def block_bootstrap(
    returns: FloatArray, paths: int, horizon: int, block_length: int, rng: np.random.Generator
) -> FloatArray:
    """Paths of shape (paths, horizon) built from random contiguous blocks of the returns
    (circular, so every observation can start a block)."""
    n = returns.shape[0]
    blocks = -(-horizon // block_length)
    starts = rng.integers(0, n, size=(paths, blocks))
    offsets = (starts[:, :, None] + np.arange(block_length)) % n
    return returns[offsets.reshape(paths, -1)[:, :horizon]]


def simulate(returns: FloatArray, config: SimulationConfig) -> SimulationResult:
    """Bootstrap `config.paths` equity paths from `returns` (NaN dropped) and summarise them."""
    clean = returns[~np.isnan(returns)]
    if clean.size < max(2, config.block_length):
        raise ValueError(f"needs at least {max(2, config.block_length)} returns, has {clean.size}")
    if config.volatility_scaling:
        recent = np.std(clean[-config.recent_window :], ddof=1)
        overall = np.std(clean, ddof=1)
        clean = clean * (recent / overall if overall > 0 else 1.0)
    rng = np.random.default_rng(config.seed)
    drawdowns, under_water, finals = [], [], []
    ruined = liquidated = 0
    band_samples: list[Any] = []
    for first in range(0, config.paths, CHUNK_PATHS):
        count = min(CHUNK_PATHS, config.paths - first)
        path_returns = block_bootstrap(clean, count, config.horizon, config.block_length, rng)
        path_returns = path_returns * config.leverage
        equity = np.cumprod(1.0 + np.maximum(path_returns, -1.0), axis=1)
        equity = np.concatenate([np.ones((count, 1)), equity], axis=1)
        peak = np.maximum.accumulate(equity, axis=1)
        drawdown = 1.0 - equity / peak
        drawdowns.append(drawdown.max(axis=1))
        under_water.append((drawdown > 0).sum(axis=1))
        finals.append(equity[:, -1] - 1.0)
        ruined += int(np.sum(equity.min(axis=1) < config.ruin_threshold))
        if config.leverage > 1:
            liquidated += int(np.sum(equity.min(axis=1) <= config.liquidation_threshold))
        kept = sum(sample.shape[0] for sample in band_samples)
        if kept < BAND_PATHS:
            band_samples.append(equity[: BAND_PATHS - kept])
        del path_returns, peak, drawdown, equity
    max_drawdowns = np.concatenate(drawdowns)
    times = np.concatenate(under_water)
    final = np.concatenate(finals)
    bands = np.percentile(np.concatenate(band_samples), BAND_PERCENTILES, axis=0)
    cutoff = np.percentile(final, 1)
    percentiles = (5, 50, 95)
    return SimulationResult(
        max_drawdown_percentiles=dict(
            zip(percentiles, np.percentile(max_drawdowns, percentiles), strict=True)
        ),
        time_under_water_percentiles=dict(
            zip((50, 95), np.percentile(times, (50, 95)), strict=True)
        ),
        expected_shortfall_99=float(-np.mean(final[final <= cutoff])),
        ruin_probability=ruined / config.paths,
        liquidation_probability=liquidated / config.paths,
        bands=bands,
        final_return_percentiles=dict(
            zip(percentiles, np.percentile(final, percentiles), strict=True)
        ),
    )
