"""Strategy specifications: what a saved strategy is, validated, in a JSON-ready form.

Signal strategies decide when to hold each symbol; allocation strategies decide weights across
a universe at each rebalance. The backtest engine reads these specs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from coinql.domain.errors import InvalidInput

MAX_WINDOW = 1_000


class SignalKind(StrEnum):
    SMA_CROSS = "smaCross"
    EMA_CROSS = "emaCross"
    RSI_REVERSION = "rsiReversion"
    DONCHIAN_BREAKOUT = "donchianBreakout"
    MOMENTUM = "momentum"


class AllocationKind(StrEnum):
    EQUAL_WEIGHT = "equalWeight"
    MARKET_CAP_WEIGHT = "marketCapWeight"
    INVERSE_VOLATILITY = "inverseVolatility"
    MIN_VOLATILITY = "minVolatility"
    MAX_SHARPE = "maxSharpe"
    RISK_PARITY = "riskParity"
    HIERARCHICAL_RISK_PARITY = "hierarchicalRiskParity"


class Rebalance(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"


class UniverseRank(StrEnum):
    """How `universe_top` ranks the candidates at each rebalance, from what was known then.

    QUOTE_VOLUME: traded quote volume over the trailing lookback window.
    MARKET_CAP: the close at the rebalance times the asset's circulating supply as stored now
    (supply changes slowly; a coin without a known supply ranks last).
    """

    QUOTE_VOLUME = "QUOTE_VOLUME"
    MARKET_CAP = "MARKET_CAP"


@dataclass(frozen=True, slots=True)
class AllocationConstraints:
    min_weight: float = 0.0
    max_weight: float = 1.0
    long_only: bool = True
    max_assets: int | None = None
    turnover_cap: float | None = None


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """`kind` is a SignalKind or AllocationKind value; `params` its typed parameters."""

    kind: str
    params: dict[str, Any]
    symbols: list[str] = field(default_factory=list)
    universe_top: int | None = None
    constraints: AllocationConstraints | None = None
    rebalance: Rebalance | None = None
    universe_by: UniverseRank = UniverseRank.QUOTE_VOLUME

    @property
    def family(self) -> str:
        return "signal" if self.kind in SignalKind._value2member_map_ else "allocation"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rebalance"] = self.rebalance.value if self.rebalance else None
        data["universe_by"] = self.universe_by.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StrategySpec:
        constraints = data.get("constraints")
        rebalance = data.get("rebalance")
        return cls(
            kind=data["kind"],
            params=dict(data.get("params") or {}),
            symbols=list(data.get("symbols") or []),
            universe_top=data.get("universe_top"),
            constraints=AllocationConstraints(**constraints) if constraints else None,
            rebalance=Rebalance(rebalance) if rebalance else None,
            universe_by=UniverseRank(data.get("universe_by") or UniverseRank.QUOTE_VOLUME),
        )


def _window(params: dict[str, Any], name: str, *, minimum: int = 1) -> int:
    value = params.get(name)
    if not isinstance(value, int) or not minimum <= value <= MAX_WINDOW:
        raise InvalidInput(
            f"kind.{name}", f"{name} must be an integer from {minimum} to {MAX_WINDOW}"
        )
    return value


def validate_signal(kind: SignalKind, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a signal strategy, checked; raises `InvalidInput` naming the field."""
    if kind in (SignalKind.SMA_CROSS, SignalKind.EMA_CROSS):
        fast, slow = _window(params, "fast"), _window(params, "slow", minimum=2)
        if fast >= slow:
            raise InvalidInput("kind.fast", f"fast ({fast}) must be shorter than slow ({slow})")
        return {"fast": fast, "slow": slow}
    if kind is SignalKind.RSI_REVERSION:
        window = _window(params, "window", minimum=2)
        lower, upper = float(params.get("lower", 30)), float(params.get("upper", 70))
        if not 0 < lower < upper < 100:
            raise InvalidInput("kind.lower", "need 0 < lower < upper < 100")
        return {"window": window, "lower": lower, "upper": upper}
    if kind is SignalKind.DONCHIAN_BREAKOUT:
        entry = _window(params, "entry", minimum=2)
        exit_window = _window(params, "exit", minimum=2)
        return {"entry": entry, "exit": exit_window}
    lookback = _window(params, "lookback", minimum=2)
    threshold = float(params.get("threshold", 0.0))
    if not -1 < threshold < 10:
        raise InvalidInput("kind.threshold", "threshold is a return, e.g. 0.05")
    return {"lookback": lookback, "threshold": threshold}


def validate_allocation(
    kind: AllocationKind,
    params: dict[str, Any],
    constraints: AllocationConstraints,
) -> dict[str, Any]:
    """The parameters of an allocation strategy (`lookback` in periods, default 90)."""
    lookback = _window(params, "lookback", minimum=2) if "lookback" in params else 90
    lowest = 0.0 if constraints.long_only else -1.0
    if not lowest <= constraints.min_weight <= constraints.max_weight <= 1:
        raise InvalidInput(
            "constraints.maxWeight",
            f"need {lowest:g} <= minWeight <= maxWeight <= 1"
            + (" for a long-only book" if constraints.long_only else ""),
        )
    if constraints.max_assets is not None and constraints.max_assets < 1:
        raise InvalidInput("constraints.maxAssets", "maxAssets must be at least 1")
    if constraints.turnover_cap is not None and not 0 < constraints.turnover_cap <= 2:
        raise InvalidInput("constraints.turnoverCap", "turnoverCap is a fraction in (0, 2]")
    return {"lookback": lookback}


def validate_universe(symbols: list[str], universe_top: int | None) -> list[str]:
    cleaned = [symbol.strip().upper() for symbol in symbols]
    if len(set(cleaned)) != len(cleaned):
        raise InvalidInput("symbols", "symbols must not repeat")
    if universe_top is not None and not 1 <= universe_top <= 200:
        raise InvalidInput("universeTop", "universeTop must be between 1 and 200")
    return cleaned
