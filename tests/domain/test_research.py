"""Sweeps, walk-forward splits, allocation books and Monte Carlo."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from coinql.domain import allocation as al
from coinql.domain import backtest as bt
from coinql.domain import backtest_config as bc
from coinql.domain import resampling
from coinql.domain import research as rs
from coinql.domain import simulation as sim
from coinql.domain.book import run_book
from coinql.domain.errors import InvalidInput
from coinql.domain.strategies import AllocationConstraints, Rebalance, StrategySpec
from coinql.domain.typing import Progress
from tests.domain.coins import parsed

CONFIG = bc.BacktestConfig(fee_bps=10, fill=bc.FillPrice.CLOSE)


def test_sweep_rows_are_the_engines_backtests() -> None:
    candles = parsed("ETH").candles
    found = rs.sweep("smaCross", {"fast": [5, 10, 40], "slow": [20, 30]}, candles, CONFIG)
    assert [row.params for row in found.rows] == [
        {"fast": 5, "slow": 20},
        {"fast": 5, "slow": 30},
        {"fast": 10, "slow": 20},
        {"fast": 10, "slow": 30},
    ]  # fast >= slow combinations are skipped
    for row in found.rows:
        direct = bt.run(StrategySpec("smaCross", row.params), candles, CONFIG)
        assert row.metrics["total_return"] == pytest.approx(direct.equity[-1] / 10_000 - 1)
        assert row.metrics["trade_count"] == len(direct.trades)
    assert found.best == max(found.rows, key=lambda row: row.metrics["sharpe"] or 0)


SMA_EXPRESSION = {
    "entry": ["crossover(sma(close, $1), sma(close, $2))"],
    "exit": ["crossunder(sma(close, $1), sma(close, $2))"],
}


def test_an_expression_sweep_is_the_built_in_sweep_it_spells() -> None:
    """The grid's p1 and p2 are the numbered parameters; each row is the built-in's row for
    the same windows (its fast >= slow rows, which the built-in skips, aside)."""
    candles = parsed("BNB").candles
    windows = {"fast": [5, 10, 40], "slow": [20, 30]}
    built_in = rs.sweep("smaCross", windows, candles, CONFIG)
    grid = {**SMA_EXPRESSION, "p1": windows["fast"], "p2": windows["slow"]}
    spelled = rs.sweep("expression", grid, candles, CONFIG)
    by_windows = {(row.params["p1"], row.params["p2"]): row for row in spelled.rows}
    assert len(spelled.rows) == 6
    for row in built_in.rows:
        twin = by_windows[(row.params["fast"], row.params["slow"])]
        assert twin.metrics == row.metrics
        assert twin.params["entry"] == SMA_EXPRESSION["entry"][0]
    windows = {"fast": [5, 10], "slow": [20, 30]}  # all valid: the same choices in-sample
    grid = {**SMA_EXPRESSION, "p1": windows["fast"], "p2": windows["slow"]}
    split = {"train": 365, "test": 120, "mode": rs.SplitMode.ROLLING}
    walked = rs.walk_forward("expression", grid, parsed("BTC").candles, CONFIG, **split)
    walked_built_in = rs.walk_forward("smaCross", windows, parsed("BTC").candles, CONFIG, **split)
    assert [split.out_of_sample for split in walked.splits] == [
        split.out_of_sample for split in walked_built_in.splits
    ]


def test_an_expression_grid_names_its_bad_combination() -> None:
    with pytest.raises(InvalidInput, match="column 22: a window is a whole number"):
        rs.combinations("expression", {**SMA_EXPRESSION, "p1": [2.5], "p2": [10]})
    with pytest.raises(InvalidInput) as refused:
        rs.combinations("expression", {"entry": ["close >"], "exit": ["close < 1"]})
    assert refused.value.field == "grid"
    assert "kind.expression.entry, column 8: expected a value" in refused.value.message


def test_sweep_limits() -> None:
    with pytest.raises(InvalidInput, match="at most"):
        rs.combinations("smaCross", {"fast": list(range(100)), "slow": list(range(100))})
    with pytest.raises(InvalidInput, match="no combination"):
        rs.combinations("smaCross", {"fast": [50], "slow": [10]})


@pytest.mark.parametrize("mode", list(rs.SplitMode))
def test_walk_forward_splits_never_overlap_train_and_test(mode: rs.SplitMode) -> None:
    windows = rs.splits(1000, train=300, test=100, mode=mode)
    assert len(windows) == 7
    for window in windows:
        assert window.train[1] == window.test[0]
        assert window.train[0] == (0 if mode is rs.SplitMode.ANCHORED else window.test[0] - 300)
    result = rs.walk_forward(
        "smaCross",
        {"fast": [5, 10], "slow": [30, 50]},
        parsed("BTC").candles,
        CONFIG,
        train=365,
        test=120,
        mode=mode,
    )
    assert len(result.splits) == (1648 - 365) // 120
    assert result.decay is not None


def test_allocation_rebalances_on_schedule_and_respects_constraints() -> None:
    candles = {s: parsed(s).candles for s in ("BTC", "ETH", "LTC", "DOGE")}

    def book(turnover_cap: float | None) -> al.AllocationResult:
        spec = StrategySpec(
            "minVolatility",
            {"lookback": 60},
            constraints=AllocationConstraints(0.0, 0.4, turnover_cap=turnover_cap),
            rebalance=Rebalance.MONTHLY,
        )
        return al.run_allocation(
            spec, candles, initial_capital=10_000, fee_bps=10, periods_per_year=365
        )

    free = book(None)
    days = free.timestamps[free.rebalance_bars].astype("datetime64[ms]").astype("datetime64[D]")
    assert all(str(day).endswith("-01") for day in days)  # first bar of each month
    held = free.weights[free.rebalance_bars]
    assert np.all(held <= 0.4 + 1e-9) and np.all(held >= -1e-12)
    assert free.fees > 0 and free.equity[0] == 10_000
    # A turnover cap slows the moves (so drifted weights may stay above the bound a while).
    capped = book(0.3)
    assert np.all(capped.turnover <= 0.3 + 1e-12) and capped.fees < free.fees


def test_equal_weight_book_without_fees_is_the_average_of_period_growth() -> None:
    candles = {s: parsed(s).candles for s in ("BTC", "ETH")}
    spec = StrategySpec(
        "equalWeight",
        {"lookback": 2},
        constraints=AllocationConstraints(),
        rebalance=Rebalance.DAILY,
    )
    result = al.run_allocation(spec, candles, initial_capital=1.0, fee_bps=0, periods_per_year=365)
    closes = np.column_stack([candles[s].close for s in ("BTC", "ETH")])
    growth = closes[1:] / closes[:-1]
    start = int(result.rebalance_bars[0])
    expected = np.prod(growth[start:].mean(axis=1))
    assert result.equity[-1] / result.equity[start] == pytest.approx(expected, rel=1e-9)


def test_bootstrap_converges_to_the_sample() -> None:
    rng = np.random.default_rng(0)
    returns = rng.normal(0.001, 0.02, 2_000)
    paths = resampling.block_bootstrap(returns, 4_000, 250, 10, np.random.default_rng(1))
    assert paths.mean() == pytest.approx(returns.mean(), abs=3e-4)
    assert paths.std() == pytest.approx(returns.std(), rel=0.02)


def test_simulation_is_seeded_and_bounded() -> None:
    returns = np.diff(np.log(parsed("BTC").candles.close))
    config = sim.SimulationConfig(paths=3_000, horizon=200, block_length=10, seed=3)
    first, second = sim.simulate(returns, config), sim.simulate(returns, config)
    assert first.max_drawdown_percentiles == second.max_drawdown_percentiles
    np.testing.assert_array_equal(first.bands, second.bands)
    assert first.bands.shape == (5, 201) and np.all(first.bands[:, 0] == 1.0)
    assert np.all(np.diff(first.bands, axis=0) >= 0)  # p5 <= p25 <= ... <= p95
    levered = sim.simulate(
        returns,
        sim.SimulationConfig(
            paths=3_000, horizon=200, seed=3, leverage=3, liquidation_threshold=0.2
        ),
    )
    assert levered.liquidation_probability > 0
    assert levered.ruin_probability >= first.ruin_probability


def test_stress_options_make_paths_worse() -> None:
    returns = np.diff(parsed("BTC").candles.close) / parsed("BTC").candles.close[:-1]
    base = sim.simulate(returns, sim.SimulationConfig(paths=3_000, horizon=200, seed=5))
    shocked = sim.simulate(
        returns, sim.SimulationConfig(paths=3_000, horizon=200, seed=5, shock_probability=0.01)
    )
    assert shocked.max_drawdown_percentiles[50] > base.max_drawdown_percentiles[50]
    assert shocked.expected_shortfall_99 > base.expected_shortfall_99
    regime = sim.simulate(
        returns,
        sim.SimulationConfig(
            paths=3_000, horizon=200, seed=5, method=sim.SimulationMethod.REGIME_SWITCHING
        ),
    )
    assert 0 < regime.max_drawdown_percentiles[50] < 1


def test_regime_model_fits_calm_and_turbulent_states() -> None:
    returns = np.diff(parsed("ETH").candles.close) / parsed("ETH").candles.close[:-1]
    model = resampling.RegimeModel.fit(returns)
    assert model.scale[1] > model.scale[0]  # turbulent is wider
    np.testing.assert_allclose(model.transitions.sum(axis=1), 1.0)
    assert np.all(np.diag(model.transitions) > 0.8)  # regimes persist


class Stop(Exception):
    """What a caller raises from `progress` to stop a run (a cancelled job does)."""


def _heavy_runs() -> dict[str, Callable[[Progress | None], object]]:
    """Each long computation a job runs, over real series, taking a `progress`."""
    btc = parsed("BTC").candles
    books = {s: parsed(s).candles for s in ("BTC", "ETH", "LTC", "DOGE")}
    grid = {"fast": [5, 10, 20], "slow": [30, 50, 100]}
    returns = np.diff(btc.close) / btc.close[:-1]
    allocation = StrategySpec(
        "minVolatility",
        {"lookback": 60},
        constraints=AllocationConstraints(0.0, 0.4),
        rebalance=Rebalance.MONTHLY,
    )
    return {
        "simulation": lambda progress: sim.simulate(
            returns, sim.SimulationConfig(paths=5_000, horizon=100, seed=2), progress
        ),
        "regime simulation": lambda progress: sim.simulate(
            returns,
            sim.SimulationConfig(
                paths=3_000, horizon=100, seed=2, method=sim.SimulationMethod.REGIME_SWITCHING
            ),
            progress,
        ),
        "sweep": lambda progress: rs.sweep("smaCross", grid, btc, CONFIG, "sharpe", progress),
        "walk forward": lambda progress: rs.walk_forward(
            "smaCross",
            grid,
            btc,
            CONFIG,
            train=365,
            test=180,
            mode=rs.SplitMode.ROLLING,
            progress=progress,
        ),
        "signal book": lambda progress: run_book(
            StrategySpec("smaCross", {"fast": 10, "slow": 30}), books, CONFIG, progress
        ),
        "allocation book": lambda progress: al.run_allocation(
            allocation,
            books,
            initial_capital=10_000,
            fee_bps=10,
            periods_per_year=365,
            progress=progress,
        ),
    }


@pytest.mark.parametrize("name", list(_heavy_runs()))
def test_long_runs_report_progress_and_stop_when_it_raises(name: str) -> None:
    """Progress rises to 1 in several steps without changing the result, and a caller that
    raises from it stops the run at its next chunk."""
    run = _heavy_runs()[name]
    seen: list[float] = []
    result = run(seen.append)
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert repr(result) == repr(run(None))  # the same numbers with or without a listener
    calls = 0

    def stop_after_two(fraction: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Stop

    with pytest.raises(Stop):
        run(stop_after_two)
    assert calls == 2  # nothing ran past the stop
