"""Chunks of research runs: the plans cover every item once, in order, and the chunks' results
merged are the whole run's, bit for bit (a sweep, a walk-forward, a Monte Carlo run)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from coinql.domain import backtest_config as bc
from coinql.domain import chunks
from coinql.domain import research as rs
from coinql.domain import simulation as sim
from coinql.domain.runs import ChunkJob
from tests.domain.coins import parsed

CONFIG = bc.BacktestConfig(fee_bps=10, fill=bc.FillPrice.CLOSE)
GRID = {"fast": [5, 8, 10, 15, 20, 25], "slow": [30, 40, 50, 60, 80, 100, 120, 150, 200]}


def covers(plan: list[ChunkJob], total: int) -> bool:
    """The chunks run [0, total) once each, in order, numbered and counted."""
    starts = [chunk.start for chunk in plan]
    stops = [chunk.stop for chunk in plan]
    return (
        starts[0] == 0
        and stops[-1] == total
        and starts[1:] == stops[:-1]
        and all(chunk.start < chunk.stop for chunk in plan)
        and [chunk.index for chunk in plan] == list(range(len(plan)))
        and all(chunk.count == len(plan) for chunk in plan)
    )


@pytest.mark.parametrize(
    ("total", "parts", "unit", "sizes"),
    [
        (10, 3, 1, [4, 3, 3]),
        (3, 8, 1, [1, 1, 1]),  # no more chunks than items
        (1, 1, 1, [1]),
        (5_500, 3, 1_000, [2_000, 2_000, 1_500]),  # whole blocks, the last one cut
        (999, 4, 1_000, [999]),
    ],
)
def test_even_cuts_cover_every_item_once(
    total: int, parts: int, unit: int, sizes: list[int]
) -> None:
    plan = chunks.even(total, parts, unit=unit)
    assert covers(plan, total)
    assert [chunk.stop - chunk.start for chunk in plan] == sizes
    assert all(chunk.start % unit == 0 for chunk in plan)


@pytest.mark.parametrize(("total", "parts"), [(0, 2), (5, 0)])
def test_even_needs_an_item_and_a_chunk(total: int, parts: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        chunks.even(total, parts)


def test_plans_of_each_kind() -> None:
    assert len(chunks.sweep_chunks(1_000)) == chunks.MAX_CHUNKS
    assert len(chunks.sweep_chunks(60)) == 2  # at least SWEEP_COMBINATIONS each
    assert len(chunks.sweep_chunks(3)) == 1
    assert len(chunks.walk_forward_chunks(5)) == 5
    assert covers(chunks.walk_forward_chunks(40), 40)
    paths = chunks.simulation_chunks(30_000)
    assert covers(paths, 30_000) and len(paths) == 15
    assert paths[0].stop - paths[0].start >= sim.BAND_PATHS  # the bands' paths together
    assert chunks.simulation_chunks(1_500) == [ChunkJob(0, 1, 0, 1_500)]
    assert chunks.simulation_chunks(5_000) == [
        ChunkJob(0, 2, 0, 3_000),
        ChunkJob(1, 2, 3_000, 5_000),
    ]


def test_a_chunk_job_is_stored_as_json() -> None:
    job = ChunkJob(2, 5, 40, 60)
    assert ChunkJob.from_json(job.to_json()) == job
    assert job.part == (40, 60)


def test_a_chunked_sweep_is_the_sweep() -> None:
    candles = parsed("BTC").candles
    whole = rs.sweep("smaCross", GRID, candles, CONFIG, "sortino")
    plan = chunks.sweep_chunks(len(rs.combinations("smaCross", GRID)), max_chunks=4)
    assert len(plan) == 2
    parts = [
        rs.sweep("smaCross", GRID, candles, CONFIG, "sortino", part=chunk.part)
        for chunk in reversed(plan)
    ][::-1]
    merged = chunks.merge_sweep(parts)
    assert merged == whole
    assert merged.best is not None and merged.best == whole.best


def test_a_chunked_walk_forward_is_the_walk_forward() -> None:
    candles = parsed("ETH").candles
    grid = {"fast": [5, 10, 20], "slow": [30, 50, 100]}
    options = {"train": 300, "test": 60, "mode": rs.SplitMode.ROLLING, "metric": "sharpe"}
    whole = rs.walk_forward("smaCross", grid, candles, CONFIG, **options)  # type: ignore[arg-type]
    windows = rs.splits(len(candles), train=300, test=60, mode=rs.SplitMode.ROLLING)
    plan = chunks.walk_forward_chunks(len(windows), max_chunks=3)
    merged = chunks.merge_walk_forward(
        [
            rs.walk_forward("smaCross", grid, candles, CONFIG, part=chunk.part, **options)  # type: ignore[arg-type]
            for chunk in plan
        ]
    )
    assert len(whole.splits) > 3
    assert merged == whole
    assert merged.decay == whole.decay


@pytest.mark.parametrize(
    "config",
    [
        sim.SimulationConfig(paths=5_500, horizon=120, seed=7),
        sim.SimulationConfig(
            paths=4_000,
            horizon=90,
            seed=3,
            leverage=3,
            liquidation_threshold=0.3,
            shock_probability=0.01,
            method=sim.SimulationMethod.REGIME_SWITCHING,
        ),
    ],
)
def test_a_chunked_simulation_is_the_simulation(config: sim.SimulationConfig) -> None:
    btc = parsed("BTC").candles.close
    returns = btc[1:] / btc[:-1] - 1
    whole = sim.simulate(returns, config)
    plan = chunks.simulation_chunks(config.paths)
    assert len(plan) > 1
    parts = [
        sim.simulate_paths(returns, config, chunk.start, chunk.stop - chunk.start)
        for chunk in reversed(plan)  # in any order
    ]
    merged = sim.summarize_paths(parts, config)
    np.testing.assert_array_equal(merged.bands, whole.bands)
    assert replace(merged, bands=whole.bands) == whole


def test_chunks_of_paths_must_cover_the_run_once() -> None:
    returns = np.random.default_rng(0).normal(0.0, 0.02, 500)
    config = sim.SimulationConfig(paths=3_000, horizon=20)
    first = sim.simulate_paths(returns, config, 0, 2_000)
    last = sim.simulate_paths(returns, config, 2_000, 1_000)
    with pytest.raises(ValueError, match="missing or drawn twice"):
        sim.summarize_paths([first, first, last], config)
    with pytest.raises(ValueError, match="2000 paths drawn of 3000"):
        sim.summarize_paths([first], config)
    with pytest.raises(ValueError, match="do not start a block"):
        sim.simulate_paths(returns, config, 500, 1_000)
    with pytest.raises(ValueError, match="do not start a block"):
        sim.simulate_paths(returns, config, 0, 1_000)  # the bands need 2,000 paths together
