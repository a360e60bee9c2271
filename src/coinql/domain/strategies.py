"""Strategy specifications: what a saved strategy is, validated, in a JSON-ready form.

Signal strategies decide when to hold each symbol; allocation strategies decide weights across
a universe at each rebalance. The backtest engine reads these specs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from coinql.domain.errors import InvalidInput
from coinql.domain.expressions import signals_from_params

MAX_WINDOW = 1_000


class SignalKind(StrEnum):
    """The signal strategies: each decides, bar by bar, when to hold a symbol."""

    SMA_CROSS = "smaCross"
    EMA_CROSS = "emaCross"
    RSI_REVERSION = "rsiReversion"
    DONCHIAN_BREAKOUT = "donchianBreakout"
    MOMENTUM = "momentum"
    EXPRESSION = "expression"  # entry and exit written over the indicators (domain/expressions)


class AllocationKind(StrEnum):
    """The allocation strategies: each sets weights across a universe at each rebalance."""

    EQUAL_WEIGHT = "equalWeight"
    MARKET_CAP_WEIGHT = "marketCapWeight"
    INVERSE_VOLATILITY = "inverseVolatility"
    MIN_VOLATILITY = "minVolatility"
    MAX_SHARPE = "maxSharpe"
    RISK_PARITY = "riskParity"
    HIERARCHICAL_RISK_PARITY = "hierarchicalRiskParity"


class Rebalance(StrEnum):
    """How often an allocation strategy rebalances."""

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
    """Limits on an allocation strategy's weights.

    Parameters
    ----------
    min_weight, max_weight : float, default 0.0 and 1.0
        Bounds of each asset's weight; `min_weight` may be negative only when not
        `long_only`.
    long_only : bool, default True
        Whether short positions (negative weights) are forbidden.
    max_assets : int or None, default None
        The most assets held at once; None for no limit.
    turnover_cap : float or None, default None
        The most one rebalance may trade, as a fraction of the book in (0, 2]; None for no
        limit.
    """

    min_weight: float = 0.0
    max_weight: float = 1.0
    long_only: bool = True
    max_assets: int | None = None
    turnover_cap: float | None = None


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A strategy as saved: its kind, parameters and universe.

    Parameters
    ----------
    kind : str
        A `SignalKind` or `AllocationKind` value.
    params : dict
        Its parameters, as `validate_signal` or `validate_allocation` returned them.
    symbols : list of str, default []
        The symbols traded (signal strategies) or the universe's candidates.
    universe_top : int or None, default None
        When set, hold only the top this many candidates at each rebalance.
    constraints : AllocationConstraints or None, default None
        Allocation strategies' weight limits.
    rebalance : Rebalance or None, default None
        Allocation strategies' rebalance frequency.
    universe_by : UniverseRank, default UniverseRank.QUOTE_VOLUME
        How `universe_top` ranks the candidates.
    """

    kind: str
    params: dict[str, Any]
    symbols: list[str] = field(default_factory=list)
    universe_top: int | None = None
    constraints: AllocationConstraints | None = None
    rebalance: Rebalance | None = None
    universe_by: UniverseRank = UniverseRank.QUOTE_VOLUME

    @property
    def family(self) -> str:
        """Return "signal" for a `SignalKind`, else "allocation"."""
        return "signal" if self.kind in SignalKind._value2member_map_ else "allocation"

    def to_json(self) -> dict[str, Any]:
        """Encode the spec as a JSON-ready dict (enums as their values).

        Returns
        -------
        dict
            The fields by name; `from_json` reads it back to an equal spec.
        """
        data = asdict(self)
        data["rebalance"] = self.rebalance.value if self.rebalance else None
        data["universe_by"] = self.universe_by.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StrategySpec:
        """Decode a spec from `to_json`'s form.

        Parameters
        ----------
        data : dict
            A dict from `to_json`; the optional fields may be missing or None.

        Returns
        -------
        StrategySpec
            The spec, with the defaults for missing fields.
        """
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
    """Check the parameters of a signal strategy.

    Windows are integers up to 1,000: smaCross / emaCross need `fast` < `slow`;
    rsiReversion a `window` and 0 < `lower` < `upper` < 100 (default 30 and 70);
    donchianBreakout an `entry` and an `exit` window; momentum a `lookback` and a `threshold`
    return in (-1, 10) (default 0); expression an `entry` and an `exit` expression and the
    values `p1`, `p2`, ... of their numbered parameters (`coinql.domain.expressions`).

    Parameters
    ----------
    kind : SignalKind
        The strategy.
    params : dict
        Its parameters as given.

    Returns
    -------
    dict
        The parameters the strategy uses, with defaults filled in and thresholds as floats.

    Raises
    ------
    InvalidInput
        Naming the field (`kind.fast`, `kind.window`, `kind.expression.entry`, ...) of the
        first bad parameter; an expression's error gives the column too.
    """
    if kind is SignalKind.EXPRESSION:
        signals_from_params(params)  # parses and checks: the first error, with its column
        return {name: float(value) if name[0] == "p" else value for name, value in params.items()}
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
    """Check the parameters and constraints of an allocation strategy.

    Parameters
    ----------
    kind : AllocationKind
        The strategy.
    params : dict
        Its parameters as given: an optional `lookback` in periods, from 2 to 1,000.
    constraints : AllocationConstraints
        Its weight limits: min_weight <= max_weight <= 1 with min_weight >= 0 when long-only
        (>= -1 otherwise), max_assets >= 1, turnover_cap in (0, 2].

    Returns
    -------
    dict
        {"lookback": ...}, 90 periods when not given.

    Raises
    ------
    InvalidInput
        Naming the field of the first bad parameter or constraint.
    """
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
    """Check a strategy's universe.

    Parameters
    ----------
    symbols : list of str
        The symbols as given.
    universe_top : int or None
        The top-N rule, from 1 to 200, or None.

    Returns
    -------
    list of str
        The symbols trimmed and upper-cased, in the given order.

    Raises
    ------
    InvalidInput
        When a symbol repeats (after cleaning), or `universe_top` is out of range.
    """
    cleaned = [symbol.strip().upper() for symbol in symbols]
    if len(set(cleaned)) != len(cleaned):
        raise InvalidInput("symbols", "symbols must not repeat")
    if universe_top is not None and not 1 <= universe_top <= 200:
        raise InvalidInput("universeTop", "universeTop must be between 1 and 200")
    return cleaned
