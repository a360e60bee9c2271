"""A trading bot's decisions and its risk checks.

A bot runs a signal strategy on one symbol's closed candles, long only: on each newly closed
candle it computes the strategy's signals over every candle it has seen (its warm-up history
and the live ones since, oldest first) with the backtester's own code (`coinql.domain.signals`)
and sizes an entry with the backtester's own sizing (`coinql.domain.trades.entry_quantity`), so
the last bar's decision is the backtest's decision on that bar: no look-ahead by construction.

Before an order is sent, `check_order` applies the bot's risk settings; `daily_loss_hit` says
when the day's loss pauses the bot. How far a bot drifts from its backtest is
`coinql.domain.divergence`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any

from coinql.domain.backtest_config import BacktestConfig, Direction, FillPrice, Sizing
from coinql.domain.candles import Candles
from coinql.domain.errors import InvalidInput, UserError
from coinql.domain.signals import lookback, signals
from coinql.domain.strategies import StrategySpec
from coinql.domain.trades import entry_quantity, fill_price
from coinql.domain.volatility import realized_volatility

QUANTITY_STEP = Decimal("0.00000001")  # sizes are rounded down to this before market limits


class BotSide(StrEnum):
    """Which way an order goes."""

    BUY = "BUY"
    SELL = "SELL"


class RiskRefused(UserError):
    """An order the bot's risk settings refuse; `limit` names the setting."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True, slots=True)
class BotRisk:
    """The limits checked before each order; None: no limit.

    Parameters
    ----------
    max_order_value : Decimal, optional
        The most one order may be worth, in the quote currency.
    max_position_fraction : Decimal, optional
        The largest share of the bot's value its position may reach after a buy, in (0, 1].
    max_open_orders : int, optional
        The most orders that may be open at once.
    daily_loss_limit : Decimal, optional
        The loss, as a fraction of the value at the start of the (UTC) day, that pauses the
        bot, in (0, 1).
    """

    max_order_value: Decimal | None = None
    max_position_fraction: Decimal | None = None
    max_open_orders: int | None = None
    daily_loss_limit: Decimal | None = None

    def __post_init__(self) -> None:
        """Refuse limits outside their ranges, naming the field."""
        if self.max_order_value is not None and self.max_order_value <= 0:
            raise InvalidInput("risk.maxOrderValue", "maxOrderValue must be more than 0")
        fraction = self.max_position_fraction
        if fraction is not None and not 0 < fraction <= 1:
            raise InvalidInput("risk.maxPositionFraction", "maxPositionFraction is in (0, 1]")
        if self.max_open_orders is not None and self.max_open_orders < 1:
            raise InvalidInput("risk.maxOpenOrders", "maxOpenOrders must be at least 1")
        loss = self.daily_loss_limit
        if loss is not None and not 0 < loss < 1:
            raise InvalidInput("risk.dailyLossLimit", "dailyLossLimit is in (0, 1)")


@dataclass(frozen=True, slots=True)
class BotSettings:
    """What a bot trades by: its strategy, backtest config and risk limits.

    The strategy is a copy, as it was when the bot was made; the config is `bot_config`'s. The
    capital is the config's `initial_capital`: a paper bot's account starts with it.
    """

    spec: StrategySpec
    config: BacktestConfig
    risk: BotRisk

    def to_json(self) -> dict[str, object]:
        """Return the settings as a JSON-ready dict (decimals as strings)."""
        risk = {
            name: None if getattr(self.risk, name) is None else str(getattr(self.risk, name))
            for name in self.risk.__slots__
        }
        return {"spec": self.spec.to_json(), "config": self.config.to_json(), "risk": risk}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BotSettings:
        """Return the settings `to_json` wrote."""
        risk = data.get("risk") or {}
        return cls(
            StrategySpec.from_json(data["spec"]),
            BacktestConfig.from_json(data["config"]),
            BotRisk(
                max_order_value=_optional(risk.get("max_order_value")),
                max_position_fraction=_optional(risk.get("max_position_fraction")),
                max_open_orders=None
                if risk.get("max_open_orders") is None
                else int(risk["max_open_orders"]),
                daily_loss_limit=_optional(risk.get("daily_loss_limit")),
            ),
        )


def _optional(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True, slots=True)
class Decision:
    """A market order the strategy asks for on the last closed bar."""

    side: BotSide
    quantity: Decimal
    price: Decimal  # the signal bar's close, the price the order is expected at
    reason: str


def bot_config(config: BacktestConfig) -> BacktestConfig:
    """Return the backtest config a bot trades by.

    Fills are at the close of the signal bar; long only, and no stops (a bot exits on its
    strategy's signals), each refused with `InvalidInput` naming the field.
    """
    if config.direction is not Direction.LONG_ONLY:
        raise InvalidInput("direction", "a bot trades long only: spot accounts cannot short")
    if config.stop_loss is not None or config.take_profit is not None:
        raise InvalidInput("stopLoss", "a bot exits on its strategy's signals; stops are not set")
    return replace(config, fill=FillPrice.CLOSE)


def warmup_bars(spec: StrategySpec, config: BacktestConfig) -> int:
    """Return how many closed candles a bot loads before it trades.

    The strategy's lookback plus two, as a backtest needs; at least the volatility window
    (plus two) for VOLATILITY_TARGET sizing.
    """
    needed = lookback(spec) + 2
    if config.sizing is Sizing.VOLATILITY_TARGET:
        needed = max(needed, config.volatility_window + 2)
    return needed


def decide(
    spec: StrategySpec,
    candles: Candles,
    config: BacktestConfig,
    *,
    position: Decimal,
    cash: Decimal,
) -> Decision | None:
    """Return the order the strategy asks for on the last of `candles`, or None.

    Parameters
    ----------
    spec : StrategySpec
        A signal strategy.
    candles : Candles
        Every closed candle the bot has seen, oldest first; the last one just closed.
    config : BacktestConfig
        `bot_config`'s: fees, slippage and sizing as the backtest has them.
    position : Decimal
        The units the bot holds (0: flat).
    cash : Decimal
        The bot's free cash, in the quote currency.

    Returns
    -------
    Decision or None
        A BUY sized by the backtest's sizing when flat on an entry signal; a SELL of the whole
        position when long on an exit signal; else None.
    """
    if len(candles) < warmup_bars(spec, config):
        return None
    enter, leave = signals(spec, candles)
    bar = len(candles) - 1
    close = Decimal(repr(float(candles.close[bar])))
    if position > 0 and leave[bar]:
        return Decision(BotSide.SELL, position, close, "exit signal")
    if position == 0 and enter[bar] and cash > 0:
        volatility = (
            realized_volatility(candles.close, config.volatility_window, config.periods_per_year)
            if config.sizing is Sizing.VOLATILITY_TARGET
            else None
        )
        price = fill_price(candles, bar, 1, config)
        units = entry_quantity(float(cash), price, config, volatility, bar)
        quantity = Decimal(repr(float(units))).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)
        if quantity > 0:
            return Decision(BotSide.BUY, quantity, close, "entry signal")
    return None


def check_order(
    risk: BotRisk,
    *,
    side: BotSide,
    quantity: Decimal,
    price: Decimal,
    value: Decimal,
    position: Decimal,
    open_orders: int,
) -> None:
    """Raise `RiskRefused` naming the first limit the order would break.

    Parameters
    ----------
    risk : BotRisk
    side : BotSide
    quantity, price : Decimal
        The order's size and its expected price.
    value : Decimal
        The bot's value (cash and position at `price`) before the order.
    position : Decimal
        The units held before the order.
    open_orders : int
        The bot's orders open now, this one not included.
    """
    notional = quantity * price
    if risk.max_order_value is not None and notional > risk.max_order_value:
        raise RiskRefused(
            "maxOrderValue",
            f"the order is worth {notional:.2f}, more than maxOrderValue {risk.max_order_value}",
        )
    if risk.max_open_orders is not None and open_orders >= risk.max_open_orders:
        raise RiskRefused("maxOpenOrders", f"{open_orders} orders are open already (maxOpenOrders)")
    if side is BotSide.BUY and risk.max_position_fraction is not None and value > 0:
        share = (position + quantity) * price / value
        if share > risk.max_position_fraction:
            raise RiskRefused(
                "maxPositionFraction",
                f"the position would be {share:.1%} of the bot's value, more than"
                f" maxPositionFraction {risk.max_position_fraction}",
            )


def daily_loss_hit(risk: BotRisk, *, value: Decimal, day_start_value: Decimal) -> bool:
    """Whether the bot has lost its daily loss limit since the day began."""
    if risk.daily_loss_limit is None or day_start_value <= 0:
        return False
    return (day_start_value - value) / day_start_value >= risk.daily_loss_limit
