"""A trading bot's decisions, its risk checks and its divergence from its own backtest.

A bot runs a signal strategy on one symbol's closed candles, long only: on each newly closed
candle it computes the strategy's signals over every candle it has seen (its warm-up history
and the live ones since, oldest first) with the backtester's own code (`coinql.domain.signals`)
and sizes an entry with the backtester's own sizing (`coinql.domain.trades.entry_quantity`), so
the last bar's decision is the backtest's decision on that bar: no look-ahead by construction.

Before an order is sent, `check_order` applies the bot's risk settings; `daily_loss_hit` says
when the day's loss pauses the bot. `divergence` backtests the strategy over the candles the bot
saw (signals before its first live bar masked, fills at the close, the bot's fees and slippage)
and compares that backtest's trades with the bot's round trips, trade by trade.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any

import numpy as np

from coinql.domain.backtest import simulate
from coinql.domain.backtest_config import BacktestConfig, Direction, FillPrice, Sizing
from coinql.domain.candles import Candles
from coinql.domain.errors import InvalidInput, UserError
from coinql.domain.signals import lookback, signals
from coinql.domain.strategies import StrategySpec
from coinql.domain.trades import entry_quantity, fill_price
from coinql.domain.volatility import realized_volatility

QUANTITY_STEP = Decimal("0.00000001")  # sizes are rounded down to this before market limits
PRICE_TOLERANCE = 1e-9  # relative: prices that differ by less are the same price


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


@dataclass(frozen=True, slots=True)
class BotFill:
    """One fill of the bot's, as the divergence reads it."""

    side: BotSide
    price: Decimal
    quantity: Decimal
    fee: Decimal
    time: datetime


class DifferenceKind(StrEnum):
    """Why one of the bot's round trips differs from the backtest's."""

    FILL_PRICE = "FILL_PRICE"
    FEE = "FEE"
    MISSED_SIGNAL = "MISSED_SIGNAL"  # the backtest traded where the bot did not
    EXTRA_TRADE = "EXTRA_TRADE"  # the bot traded where the backtest did not
    TIMING = "TIMING"  # both traded, on different bars


@dataclass(frozen=True, slots=True)
class TradeDifference:
    """One reason one round trip differs (`index`: its position, 0 first)."""

    index: int
    kind: DifferenceKind
    detail: str


@dataclass(frozen=True, slots=True)
class Divergence:
    """The bot against its backtest over the candles it saw.

    `backtest_return` and `bot_return` are over the bot's live bars (None before the first);
    `trades_compared` counts round trips on either side; `differences` lists why the trades
    that differ do (one entry per reason).
    """

    backtest_return: float | None
    bot_return: float | None
    trades_compared: int
    differing_trades: int
    differences: list[TradeDifference]


@dataclass(frozen=True, slots=True)
class _RoundTrip:
    entry_time: int
    exit_time: int | None
    entry_price: float
    exit_price: float | None
    fees: float


def _bot_round_trips(fills: Sequence[BotFill], quantum_ms: int) -> list[_RoundTrip]:
    """Return the bot's fills as round trips: a BUY opens one, the SELL after it closes it."""
    trips: list[_RoundTrip] = []
    open_trip: tuple[int, float, float] | None = None
    for fill in sorted(fills, key=lambda f: f.time):
        moment = int(fill.time.timestamp() * 1000) // quantum_ms * quantum_ms
        if fill.side is BotSide.BUY and open_trip is None:
            open_trip = (moment, float(fill.price), float(fill.fee))
        elif fill.side is BotSide.SELL and open_trip is not None:
            entry_time, entry_price, entry_fee = open_trip
            trips.append(
                _RoundTrip(
                    entry_time, moment, entry_price, float(fill.price), entry_fee + float(fill.fee)
                )
            )
            open_trip = None
    if open_trip is not None:
        trips.append(_RoundTrip(open_trip[0], None, open_trip[1], None, open_trip[2]))
    return trips


def divergence(
    spec: StrategySpec,
    candles: Candles,
    config: BacktestConfig,
    *,
    first_live: int,
    fills: Sequence[BotFill],
    bot_return: float | None,
) -> Divergence:
    """Compare the bot's round trips with its backtest's, trade by trade.

    Parameters
    ----------
    spec : StrategySpec
    candles : Candles
        Every candle the bot saw, warm-up included, oldest first.
    config : BacktestConfig
        The bot's (`bot_config`).
    first_live : int
        The index of the first candle the bot traded on; the backtest's signals before it
        are masked, so both start flat there.
    fills : sequence of BotFill
        The bot's fills, each stamped at the close of its signal candle or later.
    bot_return : float, optional
        The bot's return since it started.

    Returns
    -------
    Divergence
    """
    n = len(candles)
    if n == 0 or first_live >= n:
        return Divergence(None, bot_return, 0, 0, [])
    enter, leave = signals(spec, candles)
    enter[:first_live] = False
    leave[:first_live] = False
    result = simulate(candles, enter, leave, config)
    start_equity = (
        float(result.equity[first_live - 1]) if first_live > 0 else config.initial_capital
    )
    backtest_return = float(result.equity[-1]) / start_equity - 1 if start_equity else None
    step = int(np.median(np.diff(candles.timestamps))) if n > 1 else 60_000
    # A fill belongs to the candle whose close it follows: stamped at open time + one step.
    closes = candles.timestamps + step
    expected = [
        _RoundTrip(
            int(closes[trade.entry_bar]),
            None if trade.exit_reason.value == "END" else int(closes[trade.exit_bar]),
            trade.entry_price,
            None if trade.exit_reason.value == "END" else trade.exit_price,
            trade.fees,
        )
        for trade in result.trades
    ]
    actual = _bot_round_trips(fills, step)
    differences: list[TradeDifference] = []
    differing = set()
    for index in range(max(len(expected), len(actual))):
        if index >= len(actual):
            differences.append(
                TradeDifference(index, DifferenceKind.MISSED_SIGNAL, "the bot made no such trade")
            )
            differing.add(index)
            continue
        if index >= len(expected):
            differences.append(
                TradeDifference(
                    index, DifferenceKind.EXTRA_TRADE, "the backtest made no such trade"
                )
            )
            differing.add(index)
            continue
        for kind, detail in _compare(expected[index], actual[index]):
            differences.append(TradeDifference(index, kind, detail))
            differing.add(index)
    return Divergence(
        backtest_return,
        bot_return,
        max(len(expected), len(actual)),
        len(differing),
        differences,
    )


def _compare(expected: _RoundTrip, actual: _RoundTrip) -> list[tuple[DifferenceKind, str]]:
    found: list[tuple[DifferenceKind, str]] = []
    if (expected.entry_time, expected.exit_time) != (actual.entry_time, actual.exit_time):
        found.append((DifferenceKind.TIMING, "entered or exited on another candle"))
    if not _same(expected.entry_price, actual.entry_price) or not _same(
        expected.exit_price, actual.exit_price
    ):
        found.append(
            (
                DifferenceKind.FILL_PRICE,
                f"filled at {actual.entry_price:g} / {actual.exit_price}, the backtest at"
                f" {expected.entry_price:g} / {expected.exit_price}",
            )
        )
    if expected.exit_time is not None and not _same(expected.fees, actual.fees, tolerance=1e-6):
        found.append(
            (DifferenceKind.FEE, f"paid {actual.fees:g} in fees, the backtest {expected.fees:g}")
        )
    return found


def _same(a: float | None, b: float | None, *, tolerance: float = PRICE_TOLERANCE) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= tolerance * max(abs(a), abs(b), 1.0)
