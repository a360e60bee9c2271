"""Strategy specs: each kind's parameters checked and defaulted, refusals naming the field, and
the JSON form read back to an equal spec."""

from __future__ import annotations

from typing import Any

import pytest

from coinql.domain.errors import InvalidInput
from coinql.domain.strategies import (
    AllocationConstraints,
    AllocationKind,
    Rebalance,
    SignalKind,
    StrategySpec,
    UniverseRank,
    validate_allocation,
    validate_signal,
    validate_universe,
)


@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [
        (SignalKind.SMA_CROSS, {"fast": 10, "slow": 30}, {"fast": 10, "slow": 30}),
        (SignalKind.EMA_CROSS, {"fast": 1, "slow": 2}, {"fast": 1, "slow": 2}),
        (SignalKind.RSI_REVERSION, {"window": 14}, {"window": 14, "lower": 30.0, "upper": 70.0}),
        (
            SignalKind.RSI_REVERSION,
            {"window": 2, "lower": 10, "upper": 90},
            {"window": 2, "lower": 10.0, "upper": 90.0},
        ),
        (SignalKind.DONCHIAN_BREAKOUT, {"entry": 20, "exit": 10}, {"entry": 20, "exit": 10}),
        (SignalKind.MOMENTUM, {"lookback": 30}, {"lookback": 30, "threshold": 0.0}),
        (
            SignalKind.MOMENTUM,
            {"lookback": 1000, "threshold": -0.5},
            {"lookback": 1000, "threshold": -0.5},
        ),
    ],
)
def test_signal_parameters_are_checked_and_defaulted(
    kind: SignalKind, params: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert validate_signal(kind, params) == expected


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        (SignalKind.SMA_CROSS, {"fast": 30, "slow": 30}, "kind.fast"),
        (SignalKind.SMA_CROSS, {"fast": 0, "slow": 30}, "kind.fast"),
        (SignalKind.EMA_CROSS, {"fast": 1, "slow": 1}, "kind.slow"),
        (SignalKind.SMA_CROSS, {"fast": 5, "slow": 1001}, "kind.slow"),
        (SignalKind.SMA_CROSS, {"fast": 5.0, "slow": 20}, "kind.fast"),
        (SignalKind.RSI_REVERSION, {"window": 1}, "kind.window"),
        (SignalKind.RSI_REVERSION, {"window": 14, "lower": 70, "upper": 30}, "kind.lower"),
        (SignalKind.RSI_REVERSION, {"window": 14, "lower": 0}, "kind.lower"),
        (SignalKind.RSI_REVERSION, {"window": 14, "upper": 100}, "kind.lower"),
        (SignalKind.DONCHIAN_BREAKOUT, {"entry": 20}, "kind.exit"),
        (SignalKind.DONCHIAN_BREAKOUT, {"entry": 1, "exit": 10}, "kind.entry"),
        (SignalKind.MOMENTUM, {}, "kind.lookback"),
        (SignalKind.MOMENTUM, {"lookback": 30, "threshold": -1}, "kind.threshold"),
        (SignalKind.MOMENTUM, {"lookback": 30, "threshold": 10}, "kind.threshold"),
    ],
)
def test_bad_signal_parameters_are_refused_naming_the_field(
    kind: SignalKind, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_signal(kind, params)
    assert refused.value.field == field


def test_allocation_lookback_defaults_to_90_periods() -> None:
    kind = AllocationKind.EQUAL_WEIGHT
    assert validate_allocation(kind, {}, AllocationConstraints()) == {"lookback": 90}
    assert validate_allocation(kind, {"lookback": 2}, AllocationConstraints()) == {"lookback": 2}
    shorts = AllocationConstraints(min_weight=-1.0, long_only=False, max_assets=1)
    assert validate_allocation(kind, {}, shorts) == {"lookback": 90}


@pytest.mark.parametrize(
    ("params", "constraints", "field", "message"),
    [
        ({"lookback": 1}, AllocationConstraints(), "kind.lookback", "from 2 to 1000"),
        (
            {},
            AllocationConstraints(min_weight=-0.1),
            "constraints.maxWeight",
            "need 0 <= minWeight <= maxWeight <= 1 for a long-only book",
        ),
        (
            {},
            AllocationConstraints(min_weight=-1.5, long_only=False),
            "constraints.maxWeight",
            "need -1 <= minWeight <= maxWeight <= 1",
        ),
        (
            {},
            AllocationConstraints(min_weight=0.6, max_weight=0.5),
            "constraints.maxWeight",
            "minWeight <= maxWeight",
        ),
        ({}, AllocationConstraints(max_weight=1.1), "constraints.maxWeight", "maxWeight <= 1"),
        ({}, AllocationConstraints(max_assets=0), "constraints.maxAssets", "at least 1"),
        ({}, AllocationConstraints(turnover_cap=0.0), "constraints.turnoverCap", "(0, 2]"),
        ({}, AllocationConstraints(turnover_cap=2.5), "constraints.turnoverCap", "(0, 2]"),
    ],
)
def test_bad_allocation_constraints_are_refused_naming_the_field(
    params: dict[str, Any], constraints: AllocationConstraints, field: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_allocation(AllocationKind.RISK_PARITY, params, constraints)
    assert refused.value.field == field
    assert message in refused.value.message


def test_universe_symbols_are_cleaned_and_checked() -> None:
    assert validate_universe([" btc", "Eth "], None) == ["BTC", "ETH"]
    assert validate_universe([], 200) == []
    with pytest.raises(InvalidInput) as repeated:
        validate_universe(["BTC", " btc"], None)
    assert repeated.value.field == "symbols"
    for top in (0, 201):
        with pytest.raises(InvalidInput) as out_of_range:
            validate_universe(["BTC"], top)
        assert out_of_range.value.field == "universeTop"


@pytest.mark.parametrize(
    "spec",
    [
        StrategySpec("smaCross", {"fast": 10, "slow": 30}, ["BTC"]),
        StrategySpec(
            "hierarchicalRiskParity",
            {"lookback": 60},
            ["BTC", "ETH", "LTC"],
            universe_top=2,
            constraints=AllocationConstraints(max_weight=0.6, turnover_cap=0.5),
            rebalance=Rebalance.MONTHLY,
            universe_by=UniverseRank.MARKET_CAP,
        ),
    ],
)
def test_a_spec_survives_its_json_form(spec: StrategySpec) -> None:
    data = spec.to_json()
    assert data["universe_by"] == spec.universe_by.value
    assert StrategySpec.from_json(data) == spec


def test_a_spec_from_minimal_json_takes_the_defaults() -> None:
    spec = StrategySpec.from_json({"kind": "momentum"})
    assert spec == StrategySpec("momentum", {})
    assert spec.family == "signal"
    assert StrategySpec("equalWeight", {}).family == "allocation"
