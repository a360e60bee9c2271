"""A paper bot on real BTC candles, on both backends: started with its warm-up history, it
trades on its own signals as candles close (the runner driven on a clock of the test's), each
order written before it is sent, and its trades are its backtest's over the candles it saw;
its risk limits, a stop that flattens it, and manual limit orders that fill when crossed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from starlette.applications import Starlette

from coinql.domain import backtest_config as bc
from coinql.domain.backtest import simulate
from coinql.domain.bots import BotRisk, BotSettings, BotSide, bot_config
from coinql.domain.candles import Interval
from coinql.domain.errors import InvalidInput
from coinql.domain.orders import OrderKind
from coinql.domain.signals import signals
from coinql.domain.strategies import StrategySpec
from coinql.realtime.bot_candles import bot_divergence, closed_candles
from coinql.realtime.bots import BotLifecycle, BotRunner
from coinql.realtime.order_rows import Quote
from coinql.realtime.orders import BotEngine, new_bot
from coinql.resolvers.auth import create_user
from coinql.store import bots as bot_store
from coinql.store import portfolio as portfolio_store
from coinql.store.bots import Bot, BotStatus
from tests.client import GraphQLClient
from tests.conftest import COINS_DIR, upload

SPEC = StrategySpec("smaCross", {"fast": 10, "slow": 30})
START = datetime(2018, 6, 1, tzinfo=UTC)  # a year and a half into the real candles


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def btc(client: GraphQLClient, admin: str) -> None:
    report = await upload(client, (COINS_DIR / "coin_Bitcoin.csv").read_bytes(), token=admin)
    assert report["__typename"] == "ImportReport", report


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def engine(app: Starlette, clock: Clock) -> BotEngine:
    services = app.state.services
    return BotEngine(
        sessions=services.sessions, hub=services.hub, prices=services.prices, clock=clock
    )


async def make_bot(app: Starlette, engine: BotEngine, risk: BotRisk | None = None) -> Bot:
    config = bot_config(bc.BacktestConfig(initial_capital=10_000, fee_bps=10, slippage_bps=5))
    async with engine.sessions() as session, session.begin():
        user = await create_user(
            session,
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            password="a long password",
            is_admin=False,
            now=engine.clock(),
        )
        strategy = await portfolio_store.add_strategy(
            session,
            owner_id=user.id,
            name="trend",
            family="signal",
            spec=SPEC.to_json(),
            now=engine.clock(),
        )
        bot = new_bot(
            owner_id=user.id,
            strategy_id=strategy.id,
            name="BTC trend",
            symbol="BTC",
            interval=Interval.D1.value,
            settings=BotSettings(SPEC, config, risk or BotRisk()),
            now=engine.clock(),
        )
        return await bot_store.add_bot(session, bot)


async def fills_and_orders(engine: BotEngine, bot: Bot) -> tuple[list[Any], list[Any]]:
    async with engine.sessions() as session:
        return (
            await bot_store.fills_of(session, bot_id=bot.id),
            await bot_store.orders_of(session, bot_id=bot.id),
        )


async def test_a_paper_bot_trades_its_signals_and_does_what_its_backtest_does(
    app: Starlette, btc: None, engine: BotEngine, clock: Clock
) -> None:
    bot = await make_bot(app, engine)
    lifecycle, runner = BotLifecycle(engine), BotRunner(engine=engine, poll_seconds=1)
    bot = await lifecycle.start(bot)
    assert bot.status == "RUNNING" and bot.last_bar_ms == int(
        (START - timedelta(days=1)).timestamp() * 1000
    )  # the candles before are its warm-up, not trades
    placed = 0
    for _ in range(30):  # two years of daily candles closing, a month per pass
        clock.now += timedelta(days=24)
        placed += await runner.run_once()
    assert placed >= 6
    fills, orders = await fills_and_orders(engine, bot)
    assert len(fills) == placed and all(order.status == "FILLED" for order in orders)
    assert all(order.sent_at is not None and order.origin == "SIGNAL" for order in orders)
    bot = await lifecycle.reload(bot)
    found = await divergence_at(engine, bot, clock.now)
    assert found is not None
    assert found.differences == [] and found.trades_compared >= 3
    assert found.bot_return == pytest.approx(found.backtest_return, rel=1e-6)
    # Against the backtest of its candles as the domain runs it, with its signals masked
    # before the first bar it traded on.
    async with engine.sessions() as session:
        candles = await closed_candles(session, symbol="BTC", interval=Interval.D1, now=clock.now)
    enter, leave = signals(SPEC, candles)
    first = int(np.searchsorted(candles.timestamps, bot.first_live_ms))
    last = int(np.searchsorted(candles.timestamps, bot.last_bar_ms))
    enter[:first], leave[:first] = False, False
    seen = candles.select(np.arange(last + 1))
    trades = simulate(
        seen, enter[: last + 1], leave[: last + 1], BotSettings.from_json(bot.config).config
    ).trades
    buys = [fill for fill in fills if fill.side == "BUY"]
    assert [float(fill.price) for fill in buys] == pytest.approx(
        [trade.entry_price for trade in trades], rel=1e-12
    )


async def test_a_fill_read_before_its_candle_is_marked_is_compared_on_that_candle(
    app: Starlette, btc: None, engine: BotEngine, clock: Clock
) -> None:
    """The runner marks a candle done after its signal's order has filled: read in between,
    the bot's fill is on a candle past its last marked one, and it is no extra trade."""
    bot = await make_bot(app, engine)
    lifecycle, runner = BotLifecycle(engine), BotRunner(engine=engine, poll_seconds=1)
    bot = await lifecycle.start(bot)
    for _ in range(30):
        clock.now += timedelta(days=24)
        await runner.run_once()
    fills, _ = await fills_and_orders(engine, bot)
    newest = max(fill.time for fill in fills)
    signal_bar = int(newest.timestamp() * 1000) - Interval.D1.milliseconds  # it fills at close
    async with engine.sessions() as session, session.begin():
        stored = await session.get(Bot, bot.id)
        assert stored is not None
        stored.last_bar_ms = signal_bar - Interval.D1.milliseconds  # the candle before it
    between = await divergence_at(engine, await lifecycle.reload(bot), newest)
    assert between is not None
    assert between.differences == [] and between.trades_compared >= 3
    assert between.bot_return == pytest.approx(between.backtest_return, rel=1e-6)


async def divergence_at(engine: BotEngine, bot: Bot, now: datetime) -> Any:
    async with engine.sessions() as session:
        candles = await closed_candles(session, symbol="BTC", interval=Interval.D1, now=now)
        fills = await bot_store.fills_of(session, bot_id=bot.id)
    return await bot_divergence(engine, bot, candles=candles, fills=fills)


async def test_a_refused_signal_keeps_the_bot_running_and_sends_nothing(
    app: Starlette, btc: None, engine: BotEngine, clock: Clock
) -> None:
    bot = await make_bot(app, engine, BotRisk(max_order_value=Decimal(100)))
    runner = BotRunner(engine=engine, poll_seconds=1)
    bot = await BotLifecycle(engine).start(bot)
    clock.now += timedelta(days=365)
    assert await runner.run_once() == 0
    fills, orders = await fills_and_orders(engine, bot)
    assert fills == [] and orders == []  # refused before anything was written
    assert (await BotLifecycle(engine).reload(bot)).status == "RUNNING"


async def test_a_manual_limit_order_rests_fills_when_crossed_and_a_stop_flattens(
    app: Starlette, btc: None, engine: BotEngine, clock: Clock
) -> None:
    bot = await make_bot(app, engine)
    lifecycle = BotLifecycle(engine)
    bot = await lifecycle.start(bot)
    now = int(clock.now.timestamp() * 1000)
    order = await engine.place(
        bot,
        side=BotSide.BUY,
        kind=OrderKind.LIMIT,
        quantity=Decimal("0.5"),
        price=Decimal(400),
        origin="MANUAL",
        at=Quote("BTC", Decimal(430), now),
    )
    assert (order.status, order.exchange_order_id is not None) == ("NEW", True)
    bot = await lifecycle.reload(bot)
    await engine.offer_price(bot, Quote("BTC", Decimal(410), now + 1))  # not crossed
    bot = await lifecycle.reload(bot)
    account = await engine.account(bot)
    reserved = Decimal(200) * Decimal("1.001")  # the limit's value and its fee
    assert account.cash == Decimal(10_000) - reserved and account.reserved == reserved
    await engine.offer_price(bot, Quote("BTC", Decimal(399), now + 2))
    fills, orders = await fills_and_orders(engine, bot)
    assert [(o.status, o.average_price) for o in orders] == [("FILLED", Decimal(400))]
    assert [(f.price, f.quantity, f.fee) for f in fills] == [
        (Decimal(400), Decimal("0.5"), Decimal("0.2"))
    ]
    with pytest.raises(InvalidInput) as refused:  # more than the cash left
        await engine.place(
            await lifecycle.reload(bot),
            side=BotSide.BUY,
            kind=OrderKind.MARKET,
            quantity=Decimal(100),
            price=None,
            origin="MANUAL",
            at=Quote("BTC", Decimal(400), now + 3),
        )
    assert refused.value.field == "quantity"
    engine.prices.record("BTC", 420.0, now + 4)
    stopped = await lifecycle.stop([await lifecycle.reload(bot)], close_positions=True, reason=None)
    assert (stopped.bots, stopped.orders_cancelled, stopped.positions_closed) == (1, 0, 1)
    bot = await lifecycle.reload(bot)
    account = await engine.account(bot)
    position, cash = account.position, account.cash
    assert bot.status == BotStatus.STOPPED.value and position == 0
    sell = Decimal(420) * (1 - Decimal("0.0005"))
    assert cash == Decimal(10_000) - Decimal("200.2") + Decimal("0.5") * sell * (
        1 - Decimal("0.001")
    )
    _, orders = await fills_and_orders(engine, bot)
    (closing,) = [order for order in orders if order.origin == "CLOSE"]
    assert (closing.side, closing.status) == ("SELL", "FILLED")


async def test_the_daily_loss_limit_pauses_the_bot(
    app: Starlette, btc: None, engine: BotEngine, clock: Clock
) -> None:
    bot = await make_bot(app, engine, BotRisk(daily_loss_limit=Decimal("0.05")))
    lifecycle, runner = BotLifecycle(engine), BotRunner(engine=engine, poll_seconds=1)
    bot = await lifecycle.start(bot)
    now = int(clock.now.timestamp() * 1000)
    await engine.place(
        bot,
        side=BotSide.BUY,
        kind=OrderKind.MARKET,
        quantity=Decimal(20),
        price=None,
        origin="MANUAL",
        at=Quote("BTC", Decimal(400), now),
        fill_at=Quote("BTC", Decimal(400), now + 1),
    )
    engine.prices.record("BTC", 400.0, now + 2)
    await runner.run_once()  # the day starts at about 10,000
    engine.prices.record("BTC", 380.0, now + 3)  # -400 of ~10,000: -4 %
    await runner.run_once()
    assert (await lifecycle.reload(bot)).status == "RUNNING"
    engine.prices.record("BTC", 370.0, now + 4)  # -600: -6 %
    await runner.run_once()
    paused = await lifecycle.reload(bot)
    assert paused.status == "PAUSED" and "daily loss limit: 6.0% lost today" in (
        paused.reason or ""
    )
    clock.now += timedelta(days=1)  # a new day counts from its own start
    await lifecycle.start(paused)
    engine.prices.record("BTC", 365.0, now + 5)
    await runner.run_once()
    assert (await lifecycle.reload(bot)).status == "RUNNING"
