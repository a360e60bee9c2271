"""Monte Carlo stress of a return stream: block bootstrap paths and their risk statistics.

The paths are drawn by `coinql.domain.resampling` (blocks of the history, or a regime-switching
model's); here they are shocked, run in chunks and summarized.

Paths are drawn in chunks of 1,000 so that memory stays bounded whatever the number of paths
(and a caller can stop a run between them, through `progress`):
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

from coinql.domain.resampling import RegimeModel, block_bootstrap, volatility_regimes
from coinql.domain.typing import FloatArray, Progress

CHUNK_PATHS = 1_000
BAND_PATHS = 2_000  # the bands come from the first paths, an unbiased sample of them all
BAND_PERCENTILES = (5, 25, 50, 75, 95)


class SimulationMethod(StrEnum):
    """How paths are drawn: blocks of the history, or a fitted two-regime model."""

    BLOCK_BOOTSTRAP = "BLOCK_BOOTSTRAP"
    REGIME_SWITCHING = "REGIME_SWITCHING"


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """The parameters of a Monte Carlo run; each field's comment says what it changes.

    `paths` paths of `horizon` steps, drawn by `method` from blocks of `block_length`
    returns with `seed`; `leverage` multiplies every step's return; `ruin_threshold` and
    `liquidation_threshold` are fractions of the starting equity; the `shock_*` fields
    describe black swans (see `inject_shocks`).
    """

    paths: int = 5_000
    horizon: int = 365
    block_length: int = 10
    seed: int = 0
    ruin_threshold: float = 0.5  # equity below this fraction of the start counts as ruin
    leverage: float = 1.0
    liquidation_threshold: float = 0.0  # with leverage: equity at or below this is liquidated
    volatility_scaling: bool = False  # r' = r * sigma_now / sigma_block
    recent_window: int = 30
    method: SimulationMethod = SimulationMethod.BLOCK_BOOTSTRAP
    regime_weight: float = 1.0  # > 1 favours blocks from the current volatility regime
    shock_probability: float = 0.0  # per step: a black swan (gap move) starts
    shock_size: float = -0.2  # the gap move, a return
    shock_volatility: float = 3.0  # returns are scaled by this for `shock_duration` steps
    shock_duration: int = 10
    shock_slippage_bps: float = 50.0  # liquidity cost paid on each shocked step

    def to_json(self) -> dict[str, Any]:
        """Encode the config as a JSON-ready dict (the method as its value)."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["method"] = self.method.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimulationConfig:
        """Decode a config from `to_json`'s form.

        Parameters
        ----------
        data : dict
            A dict from `to_json`; missing fields take their defaults, a missing method is
            BLOCK_BOOTSTRAP.

        Returns
        -------
        SimulationConfig
            The config.
        """
        return cls(**{**data, "method": SimulationMethod(data.get("method", "BLOCK_BOOTSTRAP"))})


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """The risk statistics of a run's paths.

    Parameters
    ----------
    max_drawdown_percentiles : dict of int to float
        The 5th, 50th and 95th percentiles of each path's max drawdown, fractions in [0, 1].
    time_under_water_percentiles : dict of int to float
        The 50th and 95th percentiles of the steps each path spends below its peak.
    expected_shortfall_99 : float
        The mean loss of the worst 1 % of horizon returns, a positive fraction.
    ruin_probability : float
        The share of paths whose equity ever falls below `ruin_threshold`.
    liquidation_probability : float
        With leverage above 1, the share of paths whose equity ever reaches
        `liquidation_threshold`; else 0.
    bands : ndarray of shape (5, horizon + 1)
        The 5/25/50/75/95th percentiles of equity at each step (equity starts at 1), from
        the first 2,000 paths.
    final_return_percentiles : dict of int to float
        The 5th, 50th and 95th percentiles of the return over the horizon.
    """

    max_drawdown_percentiles: dict[int, float]
    time_under_water_percentiles: dict[int, float]
    expected_shortfall_99: float
    ruin_probability: float
    liquidation_probability: float
    bands: FloatArray
    final_return_percentiles: dict[int, float]


def inject_shocks(path_returns: Any, config: SimulationConfig, rng: np.random.Generator) -> Any:
    """Add black swans to return paths.

    With `shock_probability` per step a shock starts: a gap move of `shock_size` on that
    step, and `shock_duration` steps from it whose returns are scaled by `shock_volatility`
    and each pay `shock_slippage_bps` (wider spreads).

    Parameters
    ----------
    path_returns : ndarray of shape (paths, horizon)
        The paths' returns.
    config : SimulationConfig
        The shock parameters.
    rng : numpy.random.Generator
        The source of randomness; not drawn from when `shock_probability` is 0.

    Returns
    -------
    ndarray of shape (paths, horizon)
        The shocked returns (the input itself when `shock_probability` is 0).
    """
    if config.shock_probability <= 0:
        return path_returns
    starts = rng.random(path_returns.shape) < config.shock_probability
    shocked = np.zeros(path_returns.shape, dtype=bool)
    horizon = path_returns.shape[1]
    # a few steps, vectorized over paths and time; a shock ends with the paths at the latest
    for lag in range(min(config.shock_duration, horizon)):
        shocked[:, lag:] |= starts[:, : horizon - lag]
    scaled = np.where(shocked, path_returns * config.shock_volatility, path_returns)
    scaled = scaled - shocked * config.shock_slippage_bps / 10_000
    return scaled + starts * config.shock_size


@dataclass(frozen=True, slots=True)
class PathStats:
    """The per-path statistics of a range of paths, from which a run's result is summarised.

    Parameters
    ----------
    first : int
        The index of the range's first path.
    max_drawdowns : ndarray of shape (n_paths,)
        Each path's max drawdown, a fraction in [0, 1].
    under_water : ndarray of shape (n_paths,)
        The steps each path spends below its peak.
    finals : ndarray of shape (n_paths,)
        Each path's return over the horizon.
    ruined, liquidated : int
        The paths that fell below the ruin threshold, and those liquidated.
    bands : ndarray of shape (5, horizon + 1) or None
        The equity percentiles of the run's first `BAND_PATHS` paths, in the range that
        starts at path 0 (which holds them all); None in the others.
    """

    first: int
    max_drawdowns: FloatArray
    under_water: FloatArray
    finals: FloatArray
    ruined: int
    liquidated: int
    bands: FloatArray | None


def block_rng(seed: int, block: int) -> np.random.Generator:
    """Return the generator of the block of `CHUNK_PATHS` paths number `block` of a run.

    Each block has its own stream, so a range of blocks draws the same paths wherever and in
    whichever order it runs.

    Parameters
    ----------
    seed : int
        The run's seed.
    block : int
        The block's index (its first path // `CHUNK_PATHS`).

    Returns
    -------
    numpy.random.Generator
        Seeded with (seed, block).
    """
    return np.random.default_rng([seed, block])


def simulate_paths(
    returns: FloatArray,
    config: SimulationConfig,
    first: int = 0,
    count: int | None = None,
    progress: Progress | None = None,
) -> PathStats:
    """Draw the paths [first, first + count) of a run and keep their statistics.

    `progress` is called twice per block of paths (after drawing them and after summarising
    them), so that a caller raising from it stops the run within a fraction of a second.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
        The return stream, e.g. a backtest's daily returns; NaN values are dropped.
    config : SimulationConfig
        The run's parameters.
    first : int, default 0
        The first path, a multiple of `CHUNK_PATHS`; a range holding path 0 must hold the
        first `BAND_PATHS` paths (or all of them, when fewer).
    count : int or None, default None
        The paths to draw; None for every path from `first`.
    progress : callable or None, default None
        Called with the fraction of the range done, see `Progress`.

    Returns
    -------
    PathStats
        A step's return is floored at -1 (equity never goes negative), after leverage and
        shocks.

    Raises
    ------
    ValueError
        When fewer than max(2, block_length) returns remain without NaN, or the range does
        not start a block.
    """
    count = config.paths - first if count is None else count
    if first % CHUNK_PATHS or (first == 0 and count < min(BAND_PATHS, config.paths)):
        raise ValueError(f"paths [{first}, {first + count}) do not start a block of the bands")
    clean = returns[~np.isnan(returns)]
    if clean.size < max(2, config.block_length):
        raise ValueError(f"needs at least {max(2, config.block_length)} returns, has {clean.size}")
    if config.volatility_scaling:
        recent = np.std(clean[-config.recent_window :], ddof=1)
        overall = np.std(clean, ddof=1)
        clean = clean * (recent / overall if overall > 0 else 1.0)
    regimes = volatility_regimes(clean)
    model = RegimeModel.fit(clean) if config.method is SimulationMethod.REGIME_SWITCHING else None
    weights = None
    if config.regime_weight != 1.0:
        weights = np.where(regimes == regimes[-1], config.regime_weight, 1.0)
        weights /= weights.sum()
    drawdowns, under_water, finals = [], [], []
    ruined = liquidated = 0
    band_samples: list[Any] = []
    for start in range(first, first + count, CHUNK_PATHS):
        size = min(CHUNK_PATHS, first + count - start)
        rng = block_rng(config.seed, start // CHUNK_PATHS)
        if model is not None:
            drawn = model.paths(size, config.horizon, int(regimes[-1]), rng)
        else:
            drawn = block_bootstrap(clean, size, config.horizon, config.block_length, rng, weights)
        if progress is not None:
            progress((start - first + size / 2) / count)
        # Shocks are drawn path-major, as ever; then step-major and contiguous, in place, one
        # (horizon, size) buffer at a time, with the starting equity of 1 folded into the
        # peak and the minimum rather than stored as a step of its own.
        by_step = np.ascontiguousarray(inject_shocks(drawn, config, rng).T)
        if config.leverage != 1.0:
            by_step = by_step * config.leverage
        equity = np.maximum(by_step, -1.0, out=by_step)
        equity += 1.0
        np.cumprod(equity, axis=0, out=equity)
        peak = np.maximum.accumulate(equity, axis=0)
        np.maximum(peak, 1.0, out=peak)
        relative = np.divide(equity, peak, out=peak)  # drawdown = 1 - relative
        drawdowns.append(1.0 - relative.min(axis=0, initial=1.0))
        under_water.append((relative < 1.0).sum(axis=0).astype(np.float64))
        finals.append(equity[-1] - 1.0)
        lowest = equity.min(axis=0, initial=1.0)
        ruined += int(np.sum(lowest < config.ruin_threshold))
        if config.leverage > 1:
            liquidated += int(np.sum(lowest <= config.liquidation_threshold))
        if start < BAND_PATHS:
            sample = equity[:, : BAND_PATHS - start]
            band_samples.append(np.concatenate([np.ones((1, sample.shape[1])), sample]))
        del by_step, peak, relative, equity
        if progress is not None:
            progress((start - first + size) / count)
    bands = None
    if band_samples:
        bands = np.percentile(np.concatenate(band_samples, axis=1), BAND_PERCENTILES, axis=1)
    return PathStats(
        first=first,
        max_drawdowns=np.concatenate(drawdowns),
        under_water=np.concatenate(under_water),
        finals=np.concatenate(finals),
        ruined=ruined,
        liquidated=liquidated,
        bands=bands,
    )


def summarize_paths(parts: list[PathStats], config: SimulationConfig) -> SimulationResult:
    """Summarise the statistics of every path of a run, drawn in one range or several.

    Parameters
    ----------
    parts : list of PathStats
        Ranges covering the run's paths once each, in any order.
    config : SimulationConfig
        The run's parameters.

    Returns
    -------
    SimulationResult
        The same whichever ranges the paths were drawn in.

    Raises
    ------
    ValueError
        When the ranges do not cover the paths once each from path 0.
    """
    ordered = sorted(parts, key=lambda part: part.first)
    covered = 0
    for part in ordered:
        if part.first != covered:
            raise ValueError(f"paths from {covered} are missing or drawn twice")
        covered += part.finals.shape[0]
    if covered != config.paths or ordered[0].bands is None:
        raise ValueError(f"{covered} paths drawn of {config.paths}")
    max_drawdowns = np.concatenate([part.max_drawdowns for part in ordered])
    times = np.concatenate([part.under_water for part in ordered])
    final = np.concatenate([part.finals for part in ordered])
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
        ruin_probability=sum(part.ruined for part in ordered) / config.paths,
        liquidation_probability=sum(part.liquidated for part in ordered) / config.paths,
        bands=ordered[0].bands,
        final_return_percentiles=dict(
            zip(percentiles, np.percentile(final, percentiles), strict=True)
        ),
    )


def simulate(
    returns: FloatArray, config: SimulationConfig, progress: Progress | None = None
) -> SimulationResult:
    """Bootstrap `config.paths` equity paths from `returns` and summarise them.

    The paths are drawn in blocks of `CHUNK_PATHS`, each from its own stream (`block_rng`),
    so that a run split into ranges of blocks (`simulate_paths`, `summarize_paths`), on as
    many processes or machines, gives the same numbers.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
        The return stream, e.g. a backtest's daily returns; NaN values are dropped.
    config : SimulationConfig
        The run's parameters.
    progress : callable or None, default None
        Called with the fraction done, see `Progress`.

    Returns
    -------
    SimulationResult
        The statistics of the paths. A step's return is floored at -1 (equity never goes
        negative), after leverage and shocks.

    Raises
    ------
    ValueError
        When fewer than max(2, block_length) returns remain without NaN.
    """
    return summarize_paths([simulate_paths(returns, config, 0, None, progress)], config)
