"""Allocation books: which candidates universeTop keeps, by each named ranking."""

from __future__ import annotations

import numpy as np
import pytest

from coinql.domain.allocation import run_allocation
from coinql.domain.candles import DAY_MS, Candles
from coinql.domain.strategies import (
    AllocationConstraints,
    AllocationKind,
    Rebalance,
    StrategySpec,
    UniverseRank,
)

DAYS = 200


def coin(rng: np.random.Generator, *, price: float, quote_volume: float) -> Candles:
    close = price * np.exp(np.cumsum(rng.normal(0, 0.02, DAYS)))
    timestamps = np.arange(DAYS, dtype=np.int64) * DAY_MS
    return Candles.from_columns(
        timestamps, close, close, close, close, np.ones(DAYS), np.full(DAYS, quote_volume)
    )


@pytest.mark.parametrize(
    ("rank", "kept"), [(UniverseRank.QUOTE_VOLUME, "BUSY"), (UniverseRank.MARKET_CAP, "BIG")]
)
def test_universe_top_keeps_the_first_by_its_ranking(rank: UniverseRank, kept: str) -> None:
    """BUSY trades the most, BIG is worth the most (price x supply), SMALL neither: the top 1
    by each ranking is held alone, at every rebalance."""
    rng = np.random.default_rng(0)
    candles = {
        "BUSY": coin(rng, price=10.0, quote_volume=1e9),
        "BIG": coin(rng, price=100.0, quote_volume=1e6),
        "SMALL": coin(rng, price=1.0, quote_volume=1e5),
    }
    supply = {"BUSY": 1e6, "BIG": 1e8, "SMALL": 1e6}
    spec = StrategySpec(
        AllocationKind.EQUAL_WEIGHT.value,
        {"lookback": 30},
        list(candles),
        universe_top=1,
        constraints=AllocationConstraints(),
        rebalance=Rebalance.MONTHLY,
        universe_by=rank,
    )
    found = run_allocation(
        spec, candles, initial_capital=1000.0, fee_bps=0.0, periods_per_year=365, supply=supply
    )
    held = found.weights[found.rebalance_bars]
    column = found.symbols.index(kept)
    assert np.allclose(held[:, column], 1.0)
    assert np.allclose(np.delete(held, column, axis=1), 0.0)
    assert StrategySpec.from_json(spec.to_json()) == spec
