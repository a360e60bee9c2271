"""The settings of a signal backtest: capital, costs, fills, direction, sizing and stops.

A `BacktestConfig` is a run's input as it is stored with the run (`to_json`/`from_json`) and
read by the engine in `coinql.domain.backtest` and the trade rules in `coinql.domain.trades`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FillPrice(StrEnum):
    """The price a signal on bar t fills at: bar t's close or bar t+1's open."""

    CLOSE = "CLOSE"
    NEXT_OPEN = "NEXT_OPEN"


class Sizing(StrEnum):
    """How large a position the engine opens on an entry."""

    ALL_IN = "ALL_IN"
    FIXED_FRACTION = "FIXED_FRACTION"
    VOLATILITY_TARGET = "VOLATILITY_TARGET"


class Direction(StrEnum):
    """Whether an exit signal only closes a long or also opens a short."""

    LONG_ONLY = "LONG_ONLY"
    LONG_SHORT = "LONG_SHORT"


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """The inputs of a backtest besides the strategy and the candles.

    Parameters
    ----------
    initial_capital : float, default 10_000.0
        The cash at the first bar, in the quote currency.
    fee_bps : float, default 0.0
        The fee in basis points of the traded notional, paid on entry and on exit.
    slippage_bps : float, default 0.0
        The move of each fill against the trade, in basis points of the price.
    slippage_range : float, default 0.0
        A further move against the trade, as a fraction of the bar's high - low.
    fill : FillPrice, default FillPrice.NEXT_OPEN
    direction : Direction, default Direction.LONG_ONLY
    sizing : Sizing, default Sizing.ALL_IN
    fraction : float, default 1.0
        The share of equity a FIXED_FRACTION entry uses.
    volatility_target : float, default 0.5
        The annualised volatility a VOLATILITY_TARGET entry aims at.
    volatility_window : int, default 30
        The bars of the realised volatility VOLATILITY_TARGET divides by.
    max_leverage : float, default 1.0
        The cap on the VOLATILITY_TARGET scale (and the scale used when the volatility is NaN or
        not positive).
    stop_loss, take_profit : float, optional
        The adverse and favourable moves from the entry price, as fractions, that close a trade.
    periods_per_year : float, default 365.0
        The bars in a year, for annualising.
    """

    initial_capital: float = 10_000.0
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    slippage_range: float = 0.0
    fill: FillPrice = FillPrice.NEXT_OPEN
    direction: Direction = Direction.LONG_ONLY
    sizing: Sizing = Sizing.ALL_IN
    fraction: float = 1.0
    volatility_target: float = 0.5
    volatility_window: int = 30
    max_leverage: float = 1.0
    stop_loss: float | None = None
    take_profit: float | None = None
    periods_per_year: float = 365.0

    @property
    def fee(self) -> float:
        """The fee as a fraction of the traded notional (`fee_bps` / 10_000)."""
        return self.fee_bps / 10_000

    def to_json(self) -> dict[str, object]:
        """Return the fields as a JSON-ready dict, enums by their values.

        Returns
        -------
        dict of str to object
            One entry per field; `from_json` reads it back.
        """
        return {
            name: value.value if isinstance(value, StrEnum) else value
            for name, value in ((name, getattr(self, name)) for name in self.__slots__)
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BacktestConfig:
        """Build a config from the dict `to_json` wrote.

        Parameters
        ----------
        data : dict of str to Any
            Field names to values; enums by their values, missing fields take their defaults.

        Returns
        -------
        BacktestConfig

        Raises
        ------
        ValueError
            When an enum field holds an unknown value.
        """
        enums = {"fill": FillPrice, "direction": Direction, "sizing": Sizing}
        values = {
            name: enums[name](value) if name in enums else value for name, value in data.items()
        }
        return cls(**values)  # type: ignore[arg-type]
