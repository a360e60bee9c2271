"""Monte Carlo paths: blocks drawn as stated (contiguous, circular, weighted), shocks applied
exactly, the stress options equal to their definitions, progress reported per chunk."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from coinql.domain import resampling
from coinql.domain import simulation as sim

RNG_SEED = 0


def test_blocks_are_contiguous_and_wrap_around() -> None:
    returns = np.arange(50, dtype=np.float64)
    paths = resampling.block_bootstrap(returns, 200, 37, 5, np.random.default_rng(RNG_SEED))
    assert paths.shape == (200, 37)
    # Inside each block the next return is the next observation, modulo the series' length.
    steps = (paths[:, 1:] - paths[:, :-1]) % 50
    within = np.arange(1, 37) % 5 != 0
    assert np.all(steps[:, within] == 1)
    assert (paths == 49).any() and (paths == 0).any()


def test_weights_decide_where_blocks_start() -> None:
    returns = np.arange(10, dtype=np.float64)
    weights = np.zeros(10)
    weights[8] = 1.0  # every block starts at the second-to-last observation
    paths = resampling.block_bootstrap(returns, 3, 9, 4, np.random.default_rng(RNG_SEED), weights)
    np.testing.assert_array_equal(paths, np.tile([8, 9, 0, 1, 8, 9, 0, 1, 8], (3, 1)))


def test_every_step_shocked_is_the_gap_the_scale_and_the_slippage() -> None:
    config = sim.SimulationConfig(
        shock_probability=1.0, shock_size=-0.2, shock_volatility=3.0, shock_slippage_bps=50
    )
    path_returns = np.full((4, 12), 0.01)  # shocks last 10 steps
    shocked = sim.inject_shocks(path_returns, config, np.random.default_rng(RNG_SEED))
    np.testing.assert_allclose(shocked, 0.01 * 3.0 - 0.005 - 0.2)
    calm = sim.SimulationConfig()
    assert sim.inject_shocks(path_returns, calm, np.random.default_rng(RNG_SEED)) is path_returns


def test_a_shock_lasts_its_duration() -> None:
    config = sim.SimulationConfig(
        shock_probability=1e-9, shock_size=0.0, shock_volatility=2.0, shock_duration=3
    )

    class OneShock:
        """A generator whose draws start one shock, at step 2 of the only path."""

        def random(self, shape: tuple[int, int]) -> np.ndarray:
            draws = np.ones(shape)
            draws[0, 2] = 0.0
            return draws

    shocked = sim.inject_shocks(np.full((1, 8), 0.01), config, OneShock())  # type: ignore[arg-type]
    slip = config.shock_slippage_bps / 10_000
    expected = [0.01, 0.01, *[0.02 - slip] * 3, 0.01, 0.01, 0.01]
    np.testing.assert_allclose(shocked[0], expected)


def returns_with_regimes() -> np.ndarray:
    """A calm first half and a turbulent second half, ending turbulent."""
    rng = np.random.default_rng(RNG_SEED)
    return np.concatenate([rng.normal(0.001, 0.005, 400), rng.normal(0.0, 0.06, 400)])


def test_volatility_scaling_is_the_recent_to_overall_std_ratio() -> None:
    returns = returns_with_regimes()
    config = sim.SimulationConfig(paths=500, horizon=50, seed=1, recent_window=30)
    scaled = sim.simulate(returns, replace(config, volatility_scaling=True))
    ratio = np.std(returns[-30:], ddof=1) / np.std(returns, ddof=1)
    by_hand = sim.simulate(returns * ratio, config)
    np.testing.assert_array_equal(scaled.bands, by_hand.bands)
    assert scaled.max_drawdown_percentiles == by_hand.max_drawdown_percentiles


def test_regime_weight_draws_from_the_current_regime() -> None:
    returns = returns_with_regimes()
    base = sim.SimulationConfig(paths=1_000, horizon=100, seed=2)
    uniform = sim.simulate(returns, base)
    current = sim.simulate(
        returns, sim.SimulationConfig(paths=1_000, horizon=100, seed=2, regime_weight=1e6)
    )
    # The last observations are turbulent: drawing from them widens every outcome.
    assert current.max_drawdown_percentiles[50] > 1.2 * uniform.max_drawdown_percentiles[50]
    spread = current.bands[-1, -1] - current.bands[0, -1]
    assert spread > uniform.bands[-1, -1] - uniform.bands[0, -1]


def test_progress_is_reported_twice_per_chunk_up_to_one() -> None:
    seen: list[float] = []
    sim.simulate(returns_with_regimes(), sim.SimulationConfig(paths=2_500, horizon=10), seen.append)
    assert seen == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.9, 1.0])


def test_too_few_returns_are_refused_after_dropping_nan() -> None:
    returns = np.array([0.01, np.nan, -0.02, np.nan, 0.03])
    with pytest.raises(ValueError, match="needs at least 10 returns, has 3"):
        sim.simulate(returns, sim.SimulationConfig())
    with pytest.raises(ValueError, match="needs at least 2 returns, has 1"):
        sim.simulate(np.array([np.nan, 0.01]), sim.SimulationConfig(block_length=1))


def test_a_config_survives_its_json_form() -> None:
    config = sim.SimulationConfig(
        paths=10, method=sim.SimulationMethod.REGIME_SWITCHING, shock_probability=0.01
    )
    assert sim.SimulationConfig.from_json(config.to_json()) == config
    assert sim.SimulationConfig.from_json({"paths": 7}) == sim.SimulationConfig(paths=7)


def test_regime_labels_split_at_the_median() -> None:
    returns = np.random.default_rng(RNG_SEED).standard_t(4, 400) * 0.01
    labels = resampling.volatility_regimes(returns)
    assert labels.shape == (400,) and set(np.unique(labels)) == {0, 1}
    assert 150 <= labels.sum() <= 200  # above the median: at most half
    model = resampling.RegimeModel.fit(returns)
    np.testing.assert_allclose(model.transitions.sum(axis=1), 1.0)
    assert np.all(model.tail >= 2.1)


def test_a_state_seen_too_rarely_takes_the_fit_of_the_whole_stream() -> None:
    # 40 returns: the 29 without a full window count as the median, so only 5 are turbulent.
    returns = np.random.default_rng(RNG_SEED).standard_t(4, 40) * 0.01
    assert resampling.volatility_regimes(returns).sum() == 5
    model = resampling.RegimeModel.fit(returns)
    tail, location, scale = stats.t.fit(returns)
    assert model.location[1] == location and model.scale[1] == scale
    assert model.tail[1] == max(tail, 2.1)
    assert model.location[0] != location


def test_a_shock_longer_than_the_horizon_lasts_to_its_end() -> None:
    """A shock may outlast the paths (the API bounds each separately): it shocks every step
    after its start, as one that ends exactly at the horizon does."""
    path_returns = np.full((3, 5), 0.01)
    longer = sim.SimulationConfig(shock_probability=1.0, shock_duration=30)
    exact = replace(longer, shock_duration=5)
    np.testing.assert_array_equal(
        sim.inject_shocks(path_returns, longer, np.random.default_rng(RNG_SEED)),
        sim.inject_shocks(path_returns, exact, np.random.default_rng(RNG_SEED)),
    )


def by_definition(returns: np.ndarray, config: sim.SimulationConfig) -> sim.SimulationResult:
    """The statistics as stated, from every path's whole equity curve held at once (the same
    draws: one `block_bootstrap` call per chunk of paths from the chunk's own stream, shocks
    after each)."""
    chunks = []
    for first in range(0, config.paths, sim.CHUNK_PATHS):
        count = min(sim.CHUNK_PATHS, config.paths - first)
        rng = sim.block_rng(config.seed, first // sim.CHUNK_PATHS)
        drawn = resampling.block_bootstrap(returns, count, config.horizon, config.block_length, rng)
        chunks.append(sim.inject_shocks(drawn, config, rng) * config.leverage)
    path_returns = np.concatenate(chunks)
    equity = np.cumprod(1.0 + np.maximum(path_returns, -1.0), axis=1)
    equity = np.concatenate([np.ones((config.paths, 1)), equity], axis=1)
    drawdown = 1.0 - equity / np.maximum.accumulate(equity, axis=1)
    final = equity[:, -1] - 1.0
    cutoff = np.percentile(final, 1)
    return sim.SimulationResult(
        max_drawdown_percentiles=dict(
            zip((5, 50, 95), np.percentile(drawdown.max(axis=1), (5, 50, 95)), strict=True)
        ),
        time_under_water_percentiles=dict(
            zip((50, 95), np.percentile((drawdown > 0).sum(axis=1), (50, 95)), strict=True)
        ),
        expected_shortfall_99=float(-np.mean(final[final <= cutoff])),
        ruin_probability=float(np.mean(equity.min(axis=1) < config.ruin_threshold)),
        liquidation_probability=float(np.mean(equity.min(axis=1) <= config.liquidation_threshold))
        if config.leverage > 1
        else 0.0,
        bands=np.percentile(equity[: sim.BAND_PATHS], sim.BAND_PERCENTILES, axis=0),
        final_return_percentiles=dict(
            zip((5, 50, 95), np.percentile(final, (5, 50, 95)), strict=True)
        ),
    )


@pytest.mark.parametrize(
    "config",
    [
        sim.SimulationConfig(paths=3_500, horizon=120, block_length=7, seed=4),
        sim.SimulationConfig(
            paths=2_100,
            horizon=50,
            block_length=60,
            seed=5,
            leverage=3.0,
            liquidation_threshold=0.3,
            ruin_threshold=1.1,
            shock_probability=0.02,
        ),
    ],
    ids=["plain", "levered-shocked"],
)
def test_the_chunked_run_equals_the_statistics_of_all_paths_at_once(
    config: sim.SimulationConfig,
) -> None:
    returns = np.random.default_rng(RNG_SEED).standard_t(4, 300) * 0.03
    found, expected = sim.simulate(returns, config), by_definition(returns, config)
    np.testing.assert_array_equal(found.bands, expected.bands)
    for name in ("max_drawdown_percentiles", "time_under_water_percentiles"):
        assert getattr(found, name) == getattr(expected, name)
    assert found.final_return_percentiles == expected.final_return_percentiles
    assert found.expected_shortfall_99 == expected.expected_shortfall_99
    assert found.ruin_probability == expected.ruin_probability
    assert found.liquidation_probability == expected.liquidation_probability
