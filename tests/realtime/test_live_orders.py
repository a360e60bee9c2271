"""LIVE bots' orders through a ccxt-shaped exchange, on both backends: every order written
before it is sent, refusals, rate limits, a timeout after the exchange took the order (asked
about by its client order id, never sent twice, after a restart too), an order that never
arrived, partial fills, cancels, a stream of order updates, the emergency stop, and the
operator's switch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt
import pytest
from starlette.applications import Starlette

from coinql.domain import backtest_config as bc
from coinql.domain.bots import BotRisk, BotSettings, BotSide, bot_config
from coinql.domain.candles import Interval
from coinql.domain.errors import Conflict, Forbidden, InvalidInput, Unavailable
from coinql.domain.orders import OrderKind
from coinql.domain.strategies import StrategySpec
from coinql.exchanges.ccxt import Backoff
from coinql.realtime.accounts import box_of
from coinql.realtime.bots import BotLifecycle, BotRunner
from coinql.realtime.live_orders import ASK_AFTER, GIVE_UP_AFTER
from coinql.realtime.order_rows import Quote
from coinql.realtime.orders import BotEngine, new_bot
from coinql.resolvers.auth import create_user
from coinql.store import accounts as account_store
from coinql.store import bots as bot_store
from coinql.store import portfolio as portfolio_store
from coinql.store.bots import Bot, BotOrder, OrderStatus
from tests.fakes import FakeTradingExchange

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
PRICE = Quote("BTC", Decimal(50_000), int(NOW.timestamp() * 1000))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def exchange() -> FakeTradingExchange:
    return FakeTradingExchange()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def live(app: Starlette, clock: Clock, exchange: FakeTradingExchange, sleeps: list[float]) -> Any:
    """Builds an engine over the app's store trading on `exchange` (a new one: a restart)."""
    services = app.state.services

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def build(*, switch: bool = True) -> BotEngine:
        return BotEngine(
            sessions=services.sessions,
            hub=services.hub,
            prices=services.prices,
            clock=clock,
            clients=lambda connection: exchange,
            live_trading=lambda: switch,
            backoff=Backoff(base_seconds=0.1, max_attempts=4, sleep=sleep),
        )

    return build


async def live_bot(app: Starlette, clock: Clock) -> Bot:
    services = app.state.services
    async with services.sessions() as session, session.begin():
        user = await create_user(
            session,
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            password="a long password",
            is_admin=False,
            now=clock(),
        )
        portfolio = await portfolio_store.add_portfolio(
            session,
            owner_id=user.id,
            name="Binance",
            base_currency="USDT",
            cost_basis="FIFO",
            now=clock(),
        )
        connection = await account_store.add_connection(
            session,
            box=box_of(services.settings),
            owner_id=user.id,
            portfolio_id=portfolio.id,
            exchange="binance",
            label="main",
            api_key="key-1234",
            secret="secret",
            passphrase=None,
            sandbox=False,
            permissions=(True, True, False),
            now=clock(),
        )
        strategy = await portfolio_store.add_strategy(
            session,
            owner_id=user.id,
            name="trend",
            family="signal",
            spec=StrategySpec("smaCross", {"fast": 2, "slow": 3}).to_json(),
            now=clock(),
        )
        config = bot_config(bc.BacktestConfig(initial_capital=10_000, fee_bps=10))
        bot = new_bot(
            owner_id=user.id,
            strategy_id=strategy.id,
            name="BTC live",
            symbol="BTC",
            interval=Interval.M1.value,
            settings=BotSettings(strategy_spec(strategy.spec), config, BotRisk()),
            now=clock(),
            connection_id=connection.id,
            portfolio_id=connection.portfolio_id,
        )
        bot.status = "RUNNING"
        return await bot_store.add_bot(session, bot)


def strategy_spec(spec: dict[str, Any]) -> StrategySpec:
    return StrategySpec.from_json(spec)


async def orders(engine: BotEngine, bot: Bot) -> list[BotOrder]:
    async with engine.sessions() as session:
        return await bot_store.orders_of(session, bot_id=bot.id)


async def fills(engine: BotEngine, bot: Bot) -> list[Any]:
    async with engine.sessions() as session:
        return await bot_store.fills_of(session, bot_id=bot.id)


async def buy(engine: BotEngine, bot: Bot, quantity: str = "0.1", **kwargs: Any) -> BotOrder:
    return await engine.place(
        bot,
        side=BotSide.BUY,
        kind=kwargs.pop("kind", OrderKind.MARKET),
        quantity=Decimal(quantity),
        price=kwargs.pop("price", None),
        origin="MANUAL",
        at=PRICE,
    )


async def test_a_market_order_is_written_before_it_is_sent_and_fills_with_its_fee(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    seen: list[tuple[str, bool]] = []

    async def look(client_id: str) -> None:  # what the store holds while the request is out
        async with engine.sessions() as session:
            rows = await bot_store.orders_of(session, bot_id=bot.id)
        seen.extend(
            (row.status, row.sent_at is None) for row in rows if row.client_order_id == client_id
        )

    exchange.before_create = look
    order = await buy(engine, bot, "0.12345")
    assert seen == [("NEW", True)]
    assert (order.status, order.quantity, order.filled_quantity) == (
        "FILLED",
        Decimal("0.1234"),  # truncated to the market's amount step
        Decimal("0.1234"),
    )
    assert order.exchange_order_id == "1000" and order.sent_at is not None
    assert exchange.creates[0]["clientOrderId"] == order.client_order_id
    [fill] = await fills(engine, bot)
    assert (fill.price, fill.quantity) == (Decimal(50_000), Decimal("0.1234"))
    assert fill.fee == pytest.approx(Decimal("6.17"))
    account = await engine.account(await BotLifecycle(engine).reload(bot))
    assert account.position == Decimal("0.1234")
    assert account.cash == pytest.approx(Decimal(10_000) - Decimal("6170") - Decimal("6.17"))


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (ccxt.InsufficientFunds("binance Account has insufficient balance"), "InsufficientFunds"),
        (ccxt.InvalidOrder("binance Filter failure: LOT_SIZE"), "InvalidOrder"),
        (ccxt.PermissionDenied("binance key may not trade"), "PermissionDenied"),
    ],
)
async def test_a_refused_order_is_rejected_with_ccxts_class_and_nothing_is_held(
    app: Starlette,
    clock: Clock,
    live: Callable[..., BotEngine],
    exchange: FakeTradingExchange,
    error: Exception,
    says: str,
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    exchange.script = [error]
    order = await buy(engine, bot)
    assert order.status == "REJECTED"
    assert order.error == f"binance refused the order ({says})"
    assert "balance" not in (order.error or "") and "LOT_SIZE" not in (order.error or "")
    assert await fills(engine, bot) == [] and exchange.orders == {}
    assert (await engine.account(bot)).cash == Decimal(10_000)


async def test_rate_limits_are_waited_out_and_the_order_is_sent_once_under_one_id(
    app: Starlette,
    clock: Clock,
    live: Callable[..., BotEngine],
    exchange: FakeTradingExchange,
    sleeps: list[float],
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    exchange.script = [ccxt.RateLimitExceeded("429"), ccxt.DDoSProtection("418")]
    order = await buy(engine, bot)
    assert order.status == "FILLED" and len(exchange.orders) == 1
    assert len(exchange.creates) == 3 and len(sleeps) == 2
    assert {call["clientOrderId"] for call in exchange.creates} == {order.client_order_id}
    exchange.script = [ccxt.RateLimitExceeded("429")] * 4  # more than the retries
    refused = await buy(engine, await BotLifecycle(engine).reload(bot), "0.05")
    assert refused.status == "REJECTED" and "rate limiting" in (refused.error or "")


async def test_a_timeout_after_the_exchange_took_the_order_is_resolved_by_its_client_id(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    exchange.script = ["timeout"]
    order = await buy(engine, bot)
    assert order.status == "FILLED" and order.exchange_order_id == "1000"
    assert len(exchange.creates) == 1 and len(exchange.orders) == 1  # never sent again
    assert len(await fills(engine, bot)) == 1


async def test_an_unknown_outcome_survives_a_restart_and_the_bot_waits_for_the_answer(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    bot = await live_bot(app, clock)
    exchange.script = ["timeout"]
    exchange.lookups_fail = 4  # the look-up after the timeout fails too
    order = await buy(live(), bot)
    assert (order.status, order.sent_at, order.exchange_order_id) == ("NEW", None, None)
    assert "asking the exchange" in (order.error or "")
    runner = BotRunner(engine=live(), poll_seconds=1)  # the service restarted
    assert await runner.engine.reconcile(bot) is False  # too recent: maybe still in flight
    clock.now += ASK_AFTER + timedelta(seconds=1)
    assert await runner.engine.reconcile(bot) is True
    [found] = await orders(runner.engine, bot)
    assert (found.status, found.exchange_order_id, found.error) == ("FILLED", "1000", None)
    assert len(exchange.creates) == 1 and len(await fills(runner.engine, bot)) == 1


async def test_an_order_the_exchange_never_got_is_rejected_after_asking_and_never_resent(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    exchange.script = [ccxt.RequestTimeout("binance timed out")]  # before it arrived
    order = await buy(engine, bot)
    assert order.status == "NEW" and order.sent_at is None
    runner = BotRunner(engine=live(), poll_seconds=1)
    clock.now += ASK_AFTER + timedelta(seconds=1)
    assert await runner.step(bot) == 0  # asked, not found yet: nothing new is placed
    assert (await orders(runner.engine, bot))[0].status == "NEW"
    clock.now += GIVE_UP_AFTER
    assert await runner.engine.reconcile(bot) is True
    [given_up] = await orders(runner.engine, bot)
    assert given_up.status == "REJECTED" and "never reached" in (given_up.error or "")
    assert len(exchange.creates) == 1 and exchange.orders == {}


async def test_partial_fills_are_recorded_as_they_come_and_once_each(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    exchange.script = ["partial"]
    order = await buy(engine, bot, "0.2", kind=OrderKind.LIMIT, price=Decimal(49_000))
    assert (order.status, order.filled_quantity) == ("PARTIALLY_FILLED", Decimal("0.1"))
    assert [f.quantity for f in await fills(engine, bot)] == [Decimal("0.1")]
    account = await engine.account(await BotLifecycle(engine).reload(bot))
    assert account.position == Decimal("0.1") and account.reserved == Decimal("0.1") * 49_000
    assert await engine.reconcile(bot) is True  # the rest fills
    assert await engine.reconcile(bot) is True  # nothing new: nothing added
    [done] = await orders(engine, bot)
    recorded = await fills(engine, bot)
    assert (done.status, done.filled_quantity, done.average_price) == (
        "FILLED",
        Decimal("0.2"),
        Decimal(49_000),
    )
    assert [f.quantity for f in recorded] == [Decimal("0.1"), Decimal("0.1")]
    assert sum(f.fee for f in recorded) == pytest.approx(done.fee)
    assert exchange.fetches == 1  # a finished order is not asked about again


async def test_a_cancel_reaches_the_exchange_and_keeps_what_already_filled(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    resting = await buy(engine, bot, "0.1", kind=OrderKind.LIMIT, price=Decimal(40_000))
    assert resting.status == "NEW" and resting.exchange_order_id is not None
    cancelled = await engine.cancel(bot, resting)
    assert cancelled.status == "CANCELLED"
    assert exchange.orders[resting.exchange_order_id]["status"] == "canceled"
    exchange.script = ["partial"]
    bot = await BotLifecycle(engine).reload(bot)  # its version moved on with each order
    half = await buy(engine, bot, "0.2", kind=OrderKind.LIMIT, price=Decimal(45_000))
    exchange.orders[half.exchange_order_id or ""]["partial"] = False  # the rest never fills
    ended = await engine.cancel(await BotLifecycle(engine).reload(bot), half)
    assert (ended.status, ended.filled_quantity) == ("CANCELLED", Decimal("0.1"))
    assert (await engine.account(bot)).position == Decimal("0.1")


async def test_where_the_exchange_streams_orders_a_watcher_applies_them_without_polling(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    import asyncio

    updates: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()

    async def watch_orders(symbol: str | None = None, **_: Any) -> list[dict[str, Any]]:
        return await updates.get()

    exchange.has["watchOrders"] = True
    exchange.watch_orders = watch_orders  # type: ignore[attr-defined]
    engine = live()
    bot = await live_bot(app, clock)
    order = await buy(engine, bot, "0.1", kind=OrderKind.LIMIT, price=Decimal(48_000))
    await engine.reconcile(bot)  # polls once and starts the stream
    polled = exchange.fetches
    await updates.put([exchange.fill_resting(order.exchange_order_id or "")])
    for _ in range(100):
        if (await orders(engine, bot))[0].status == "FILLED":
            break
        await asyncio.sleep(0.02)
    assert (await orders(engine, bot))[0].status == "FILLED"
    assert await engine.reconcile(bot) is True and exchange.fetches == polled
    await engine.close()


async def test_the_emergency_stop_cancels_a_live_bots_orders_on_its_exchange_and_sells(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    await buy(engine, bot, "0.1")
    resting = await buy(
        engine,
        await BotLifecycle(engine).reload(bot),
        "0.1",
        kind=OrderKind.LIMIT,
        price=Decimal(30_000),
    )
    engine.prices.record("BTC", 50_000.0, PRICE.timestamp)
    stopped = await BotLifecycle(engine).stop(
        [await BotLifecycle(engine).reload(bot)], close_positions=True, reason="emergency stop"
    )
    assert (stopped.bots, stopped.orders_cancelled, stopped.positions_closed) == (1, 1, 1)
    assert exchange.orders[resting.exchange_order_id or ""]["status"] == "canceled"
    sell = [o for o in await orders(engine, bot) if o.side == "SELL"]
    assert [(o.origin, o.status, o.quantity) for o in sell] == [
        ("CLOSE", "FILLED", Decimal("0.1"))
    ] or [(o.origin, o.status) for o in sell] == [("EMERGENCY", "FILLED")]
    assert (await engine.account(await BotLifecycle(engine).reload(bot))).position == 0


async def test_with_the_switch_off_nothing_is_sent_and_a_running_live_bot_pauses(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live(switch=False)
    bot = await live_bot(app, clock)
    with pytest.raises(Forbidden):
        await buy(engine, bot)
    assert exchange.creates == [] and await orders(engine, bot) == []
    assert await BotRunner(engine=engine, poll_seconds=1).step(bot) == 0
    paused = await BotLifecycle(engine).reload(bot)
    assert paused.status == "PAUSED" and "COINQL_LIVE_TRADING" in (paused.reason or "")


async def test_an_order_the_market_rules_refuse_is_not_written(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    with pytest.raises(InvalidInput) as refused:
        await buy(engine, bot, "0.00001")  # under the market's minimum amount
    assert refused.value.field == "quantity"
    exchange.balance["USDT"] = 100.0  # the exchange holds less than the bot's capital
    with pytest.raises(InvalidInput) as short:
        await buy(engine, bot, "0.1")
    assert short.value.field == "quantity" and type(short.value).__name__ == "InsufficientBalance"
    assert await orders(engine, bot) == [] and exchange.creates == []


async def test_a_stop_goes_out_as_ccxts_market_order_with_a_trigger_price(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    await buy(engine, bot, "0.1")
    stop = await engine.place(
        await BotLifecycle(engine).reload(bot),
        side=BotSide.SELL,
        kind=OrderKind.STOP_MARKET,
        quantity=Decimal("0.1"),
        price=Decimal(45_000),
        origin="MANUAL",
        at=PRICE,
    )
    sent = exchange.creates[-1]
    assert (sent["type"], sent["side"], sent["params"]["triggerPrice"]) == (
        "market",
        "sell",
        45_000,
    )
    assert (stop.kind, stop.status, stop.price) == ("STOP_MARKET", "NEW", Decimal(45_000))


async def test_two_orders_racing_on_one_bot_cannot_both_pass_its_checks(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)  # the same read of the bot, as two requests would have
    first, second = await asyncio.gather(
        buy(engine, bot, "0.15"), buy(engine, bot, "0.15"), return_exceptions=True
    )
    outcomes = sorted(type(o).__name__ for o in (first, second))
    assert outcomes == ["BotOrder", "Conflict"], outcomes
    assert len(exchange.creates) == 1 and len(await orders(engine, bot)) == 1


async def test_nothing_new_is_placed_while_an_orders_outcome_is_unknown(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    exchange.script = [ccxt.NullResponse("binance answered nothing")]  # may have taken it
    unknown = await buy(engine, bot)
    assert unknown.status == "NEW" and unknown.sent_at is None
    with pytest.raises(Conflict):  # (its cash is held for it meanwhile)
        await buy(engine, await BotLifecycle(engine).reload(bot), "0.01")
    assert len(exchange.creates) == 1


async def test_a_stale_word_never_moves_an_order_back_and_an_end_never_overrides_a_fill(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    exchange.script = ["partial"]
    order = await buy(engine, bot, "0.2", kind=OrderKind.LIMIT, price=Decimal(49_000))
    assert order.status == "PARTIALLY_FILLED"
    older = {"id": order.exchange_order_id, "status": "open", "filled": 0.0}
    again = await engine.live.follow(bot, order, older)  # the create answer, arriving late
    assert (again.status, again.filled_quantity) == ("PARTIALLY_FILLED", Decimal("0.1"))
    await engine.reconcile(bot)  # filled
    ended = await engine.end(bot, order, OrderStatus.EXPIRED, "a late give-up")
    assert ended.status == "FILLED" and len(await fills(engine, bot)) == 2


async def test_a_fill_at_no_known_price_keeps_the_order_open_until_one_is_known(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    order = await buy(engine, bot, "0.1", kind=OrderKind.LIMIT, price=Decimal(40_000))
    bare = {"id": order.exchange_order_id, "status": "closed", "filled": 0.1}
    held = await engine.live.follow(bot, order, bare)  # filled, no average, cost or price
    assert held.status == "PARTIALLY_FILLED" and await fills(engine, bot) == []
    exchange.fill_resting(order.exchange_order_id or "")
    assert await engine.reconcile(bot) is True
    [done] = await orders(engine, bot)
    assert done.status == "FILLED" and [f.price for f in await fills(engine, bot)] == [40_000]


async def test_a_cancel_before_the_exchange_answered_is_kept_and_carried_out_once_found(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    exchange.script = ["timeout"]
    exchange.lookups_fail = 4  # the look-up after the send fails too
    order = await buy(engine, bot, "0.1", kind=OrderKind.LIMIT, price=Decimal(40_000))
    assert order.exchange_order_id is None
    exchange.lookups_fail = 0
    listed = exchange.orders.copy()
    exchange.orders.clear()  # the exchange does not list it yet
    asked = await engine.cancel(bot, order)
    assert (asked.status, asked.cancel_requested) == ("NEW", True)
    exchange.orders.update(listed)  # now it does
    clock.now += ASK_AFTER + timedelta(seconds=1)
    assert await engine.reconcile(bot) is True
    [cancelled] = await orders(engine, bot)
    assert cancelled.status == "CANCELLED" and exchange.orders["1000"]["status"] == "canceled"


async def test_a_new_order_the_exchange_cannot_find_yet_is_not_given_up(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    order = await buy(engine, bot, "0.1", kind=OrderKind.LIMIT, price=Decimal(40_000))
    hidden = exchange.orders.pop(order.exchange_order_id or "")  # fetch_order: OrderNotFound
    await engine.reconcile(bot)
    assert (await orders(engine, bot))[0].status == "NEW"
    exchange.orders[hidden["id"]] = hidden
    clock.now += GIVE_UP_AFTER + timedelta(seconds=1)
    exchange.orders.pop(hidden["id"])
    await engine.reconcile(bot)
    assert (await orders(engine, bot))[0].status == "EXPIRED"


async def test_a_paused_live_bots_orders_are_still_followed(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)
    order = await buy(engine, bot, "0.1", kind=OrderKind.LIMIT, price=Decimal(40_000))
    await BotLifecycle(engine).pause(await BotLifecycle(engine).reload(bot), "a breach")
    exchange.fill_resting(order.exchange_order_id or "")
    await BotRunner(engine=engine, poll_seconds=1).run_once()
    assert (await orders(engine, bot))[0].status == "FILLED"


async def test_a_bots_failure_reason_names_ccxts_class_only(
    app: Starlette, clock: Clock, live: Callable[..., BotEngine], exchange: FakeTradingExchange
) -> None:
    engine = live()
    bot = await live_bot(app, clock)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise ccxt.ExchangeError("binance GET https://api/?signature=abc123&apiKey=key-1234")

    exchange.fetch_balance = broken  # type: ignore[method-assign]
    with pytest.raises(Unavailable) as unavailable:
        await buy(engine, bot)
    assert (
        "abc123" not in unavailable.value.message and "ExchangeError" in unavailable.value.message
    )
