"""A bot's decisions are its backtest's, bar by bar, on real candles; its risk checks refuse
what they should, naming the limit; its divergence finds what differs and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

from coinql.domain import backtest as bt
from coinql.domain import backtest_config as bc
from coinql.domain.bots import (
    BotRisk,
    BotSide,
    RiskRefused,
    bot_config,
    check_order,
    daily_loss_hit,
    decide,
    warmup_bars,
)
from coinql.domain.candles import Candles
from coinql.domain.divergence import BotFill, DifferenceKind, divergence
from coinql.domain.errors import InvalidInput
from coinql.domain.signals import signals
from coinql.domain.strategies import StrategySpec
from tests.domain.coins import parsed

SPECS = [
    StrategySpec("smaCross", {"fast": 10, "slow": 30}),
    StrategySpec("emaCross", {"fast": 12, "slow": 26}),
    StrategySpec("rsiReversion", {"window": 14, "lower": 30.0, "upper": 70.0}),
    StrategySpec("donchianBreakout", {"entry": 20, "exit": 10}),
]
CONFIGS = [
    bc.BacktestConfig(fee_bps=10, slippage_bps=5),
    bc.BacktestConfig(fee_bps=25, sizing=bc.Sizing.FIXED_FRACTION, fraction=0.5),
    bc.BacktestConfig(sizing=bc.Sizing.VOLATILITY_TARGET, volatility_target=0.4),
]


def stamp(candles: Candles, bar: int) -> datetime:
    """The moment a fill on `bar`'s close happens: its close time (one day after it opened)."""
    return datetime.fromtimestamp((int(candles.timestamps[bar]) + 86_400_000) / 1000, tz=UTC)


def replay(
    spec: StrategySpec, candles: Candles, config: bc.BacktestConfig, first_live: int | None = None
) -> tuple[list[BotFill], Decimal, int]:
    """A bot fed the candles one closed candle at a time from `first_live` (by default the
    first bar its warm-up allows), filling each market order at the candle's close with the
    config's slippage and fee, as the paper exchange does: its fills, its final value and its
    first live bar."""
    fee, slip = Decimal(str(config.fee_bps)) / 10_000, Decimal(str(config.slippage_bps)) / 10_000
    cash, position, fills = Decimal(str(config.initial_capital)), Decimal(0), []
    if first_live is None:
        first_live = warmup_bars(spec, config) - 1
    for bar in range(first_live, len(candles)):
        seen = candles.select(np.arange(bar + 1))
        decision = decide(spec, seen, config, position=position, cash=cash)
        if decision is None:
            continue
        sign = 1 if decision.side is BotSide.BUY else -1
        price = decision.price * (1 + sign * slip)
        paid = decision.quantity * price * fee
        cash -= sign * decision.quantity * price + paid
        position += sign * decision.quantity
        fills.append(BotFill(decision.side, price, decision.quantity, paid, stamp(candles, bar)))
    value = cash + position * Decimal(repr(float(candles.close[-1])))
    return fills, value, first_live


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.kind)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda config: config.sizing.value)
def test_a_bot_on_real_candles_makes_its_backtests_trades(
    spec: StrategySpec, config: bc.BacktestConfig
) -> None:
    candles = parsed("BTC").candles.select(np.arange(900))  # 2017 to mid-2019
    config = bot_config(config)
    fills, value, first_live = replay(spec, candles, config)
    assert len(fills) >= 6, "too few trades to compare"
    found = divergence(
        spec,
        candles,
        config,
        first_live=first_live,
        fills=fills,
        bot_return=float(value) / config.initial_capital - 1,
    )
    assert found.differences == []
    assert (found.differing_trades, found.trades_compared) == (0, (len(fills) + 1) // 2)
    assert found.backtest_return == pytest.approx(found.bot_return, rel=1e-6)
    # The backtest itself, with its signals before the first live bar masked, agrees.
    enter, leave = signals(spec, candles)
    enter[:first_live], leave[:first_live] = False, False
    trades = bt.simulate(candles, enter, leave, config).trades
    buys = [fill for fill in fills if fill.side is BotSide.BUY]
    assert [float(fill.price) for fill in buys] == pytest.approx(
        [trade.entry_price for trade in trades], rel=1e-12
    )


def test_a_bot_started_with_less_history_than_its_warm_up_is_compared_after_it() -> None:
    """A bot started on a fresh feed acts on candles from the first one, but decides nothing
    until it has seen its warm-up; its backtest's signals on the bars before are not trades it
    missed. (The backtest's signals start earlier: a crossover of 2 and 4 needs 5 candles, the
    warm-up 6.)"""
    spec, config = StrategySpec("smaCross", {"fast": 2, "slow": 4}), bot_config(CONFIGS[0])
    warmup = warmup_bars(spec, config)
    everything = parsed("BTC").candles
    # The first window whose backtest enters on a bar the bot's warm-up still covers.
    for start in range(len(everything) - 200):
        candles = everything.select(np.arange(start, start + 200))
        if signals(spec, candles)[0][: warmup - 1].any():
            break
    else:
        pytest.fail("no window signals inside the warm-up")
    fills, value, first_live = replay(spec, candles, config, first_live=0)
    found = divergence(
        spec,
        candles,
        config,
        first_live=first_live,
        warmup=warmup,
        fills=fills,
        bot_return=float(value) / config.initial_capital - 1,
    )
    assert found.differences == []
    assert found.backtest_return == pytest.approx(found.bot_return, rel=1e-6)


def test_a_divergence_names_the_missed_signal_and_the_other_fill_price() -> None:
    spec, config = SPECS[0], bot_config(CONFIGS[0])
    candles = parsed("BTC").candles.select(np.arange(900))
    fills, _, first_live = replay(spec, candles, config)
    worse = [
        BotFill(fill.side, fill.price * Decimal("1.01"), fill.quantity, fill.fee, fill.time)
        if index == 0
        else fill
        # The last round trip (an open BUY, or a BUY and its SELL) never happened.
        for index, fill in enumerate(fills[: len(fills) - (1 if len(fills) % 2 else 2)])
    ]
    found = divergence(spec, candles, config, first_live=first_live, fills=worse, bot_return=None)
    kinds = {(difference.index, difference.kind) for difference in found.differences}
    last = (len(fills) + 1) // 2 - 1
    assert (0, DifferenceKind.FILL_PRICE) in kinds
    assert (last, DifferenceKind.MISSED_SIGNAL) in kinds
    assert found.differing_trades == 2


def test_nothing_is_decided_before_the_warm_up() -> None:
    spec, config = SPECS[0], bot_config(CONFIGS[0])
    candles = parsed("BTC").candles.select(np.arange(warmup_bars(spec, config) - 1))
    assert decide(spec, candles, config, position=Decimal(0), cash=Decimal(1000)) is None


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (bc.BacktestConfig(direction=bc.Direction.LONG_SHORT), "direction"),
        (bc.BacktestConfig(stop_loss=0.1), "stopLoss"),
    ],
)
def test_a_bot_config_refuses_what_spot_cannot_do(config: bc.BacktestConfig, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        bot_config(config)
    assert refused.value.field == field


ORDER = {"side": BotSide.BUY, "price": Decimal(100), "value": Decimal(1000), "open_orders": 0}


@pytest.mark.parametrize(
    ("risk", "quantity", "position", "limit"),
    [
        (BotRisk(max_order_value=Decimal(500)), Decimal(6), Decimal(0), "maxOrderValue"),
        (
            BotRisk(max_position_fraction=Decimal("0.5")),
            Decimal(3),
            Decimal(3),
            "maxPositionFraction",
        ),
    ],
)
def test_an_order_past_a_limit_is_refused_naming_it(
    risk: BotRisk, quantity: Decimal, position: Decimal, limit: str
) -> None:
    with pytest.raises(RiskRefused) as refused:
        check_order(risk, quantity=quantity, position=position, **ORDER)  # type: ignore[arg-type]
    assert refused.value.limit == limit
    check_order(risk, quantity=Decimal(1), position=Decimal(0), **ORDER)  # type: ignore[arg-type]


def test_open_orders_are_capped_and_a_sell_is_never_held_by_the_position_share() -> None:
    risk = BotRisk(max_open_orders=2, max_position_fraction=Decimal("0.1"))
    with pytest.raises(RiskRefused) as refused:
        check_order(
            risk,
            side=BotSide.BUY,
            quantity=Decimal(1),
            price=Decimal(1),
            value=Decimal(100),
            position=Decimal(0),
            open_orders=2,
        )
    assert refused.value.limit == "maxOpenOrders"
    check_order(
        risk,
        side=BotSide.SELL,
        quantity=Decimal(50),
        price=Decimal(1),
        value=Decimal(100),
        position=Decimal(50),
        open_orders=0,
    )


def test_the_daily_loss_limit_is_hit_at_the_limit() -> None:
    risk = BotRisk(daily_loss_limit=Decimal("0.05"))
    assert not daily_loss_hit(risk, value=Decimal(951), day_start_value=Decimal(1000))
    assert daily_loss_hit(risk, value=Decimal(950), day_start_value=Decimal(1000))
    assert not daily_loss_hit(BotRisk(), value=Decimal(1), day_start_value=Decimal(1000))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_order_value": Decimal(0)}, "risk.maxOrderValue"),
        ({"max_position_fraction": Decimal("1.5")}, "risk.maxPositionFraction"),
        ({"max_open_orders": 0}, "risk.maxOpenOrders"),
        ({"daily_loss_limit": Decimal(1)}, "risk.dailyLossLimit"),
    ],
)
def test_limits_out_of_range_name_their_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        BotRisk(**fields)  # type: ignore[arg-type]
    assert refused.value.field == field
