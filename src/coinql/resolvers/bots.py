"""Bots and their orders: create, start, pause, stop, manual orders, the emergency stop.

A bot trades through `coinql.realtime.orders` (the order path) and `coinql.realtime.bots` (the
runner); here the caller's rights are checked, inputs validated, and every change audited.
PAPER bots trade on coinql's paper exchange at the feed's prices, and may book their fills into
a portfolio of their owner's (in USDT). LIVE bots trade on an exchange connection of their
owner's through ccxt, and only while the server runs with COINQL_LIVE_TRADING=true and the
connection's key was not reported unable to trade; their portfolio is the connection's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial

from coinql.domain import backtest_config as bc
from coinql.domain.bots import BotRisk, BotSettings, BotSide, bot_config
from coinql.domain.candles import Interval
from coinql.domain.divergence import Divergence
from coinql.domain.errors import Forbidden, InvalidInput, NotFound
from coinql.domain.orders import OrderKind
from coinql.domain.strategies import StrategySpec
from coinql.domain.tearsheet import ReturnStream
from coinql.domain.trade_stats import TradeStatistics, round_trips, trade_statistics
from coinql.domain.valuation import Valuation, value_history_from_candles
from coinql.realtime.accounts import PAPER
from coinql.realtime.bot_candles import bot_divergence, closed_candles
from coinql.realtime.bot_ledger import book_capital, bot_transactions, bot_valuation
from coinql.realtime.bots import BotLifecycle, Stopped
from coinql.realtime.order_rows import QUOTE
from coinql.realtime.orders import LIVE_OFF, new_bot
from coinql.resolvers.auth import audit, require_admin, require_user
from coinql.resolvers.context import Context
from coinql.resolvers.owned import get_owned
from coinql.store import accounts as account_store
from coinql.store import bots as bot_store
from coinql.store import market as market_store
from coinql.store import portfolio as portfolio_store
from coinql.store.bots import Bot, BotFillRow, BotOrder, BotStatus

MAX_NAME = 100
MAX_BPS = 1_000.0


@dataclass(frozen=True, slots=True)
class NewBot:
    name: str
    strategy_id: uuid.UUID
    symbol: str
    interval: Interval
    mode: str
    capital: Decimal
    fee_bps: float
    slippage_bps: float
    sizing: bc.Sizing
    fraction: float
    risk: BotRisk
    connection_id: uuid.UUID | None = None  # LIVE: the exchange connection it trades on
    portfolio_id: uuid.UUID | None = None  # PAPER: the portfolio it books its fills into


async def create_bot(context: Context, new: NewBot) -> Bot:
    """A CREATED bot of the caller's saved signal strategy; refused with `InvalidInput`
    naming the field, or `Forbidden` for LIVE without the server's switch."""
    user = await require_user(context)
    services = context.services
    name = new.name.strip()
    if not 0 < len(name) <= MAX_NAME:
        raise InvalidInput("name", f"name must have 1 to {MAX_NAME} characters")
    if new.mode == "LIVE" and not services.settings.live_trading:
        raise Forbidden(LIVE_OFF)
    if new.mode == "LIVE" and services.settings.demo_speed != 1:
        raise InvalidInput("mode", "the demo market runs faster than real time: no LIVE bots")
    if not new.capital > 0:
        raise InvalidInput("capital", "capital must be more than 0")
    for field, bps in (("feeBps", new.fee_bps), ("slippageBps", new.slippage_bps)):
        if not 0 <= bps <= MAX_BPS:
            raise InvalidInput(field, f"{field} is between 0 and {MAX_BPS:g}")
    if not 0 < new.fraction <= 1:
        raise InvalidInput("fraction", "fraction is in (0, 1]")
    symbol = new.symbol.strip().upper()
    async with services.reader() as session:
        strategy = await portfolio_store.get_strategy(
            session, owner_id=user.id, strategy_id=new.strategy_id
        )
        asset = await market_store.get_asset(session, symbol=symbol)
    if strategy is None:
        raise NotFound(f"no strategy {new.strategy_id}")
    if strategy.family != "signal":
        raise InvalidInput("strategyId", "a bot runs a signal strategy (smaCross, ...)")
    if asset is None:
        raise InvalidInput("symbol", f"unknown asset {symbol}")
    connection_id, portfolio_id = await _account_of(context, user.id, new)
    settings = BotSettings(
        StrategySpec.from_json(strategy.spec),
        bot_config(
            bc.BacktestConfig(
                initial_capital=float(new.capital),
                fee_bps=new.fee_bps,
                slippage_bps=new.slippage_bps,
                sizing=new.sizing,
                fraction=new.fraction,
                periods_per_year=new.interval.periods_per_year,
            )
        ),
        new.risk,
    )
    bot = new_bot(
        owner_id=user.id,
        strategy_id=strategy.id,
        name=name,
        symbol=symbol,
        interval=new.interval.value,
        settings=settings,
        now=services.market_now(),
        connection_id=connection_id,
        portfolio_id=portfolio_id,
    )
    async with services.transaction() as session:
        await bot_store.add_bot(session, bot)
        await book_capital(session, bot)
        await audit(context, session, user.id, "BOT_CREATED", target=f"{bot.id}:{name}")
    return bot


async def _account_of(
    context: Context, owner_id: uuid.UUID, new: NewBot
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """(connection, portfolio) of a new bot, each the owner's (NotFound first, as for one that
    does not exist): a LIVE bot's connection, on a real exchange, with a key not reported
    unable to trade, and the connection's portfolio; a PAPER bot's portfolio, if any."""
    connection = portfolio = None
    async with context.services.reader() as session:
        if new.connection_id is not None:
            connection = await account_store.get_connection(
                session, owner_id=owner_id, connection_id=new.connection_id
            )
            if connection is None:
                raise NotFound(f"no exchange connection {new.connection_id}")
        if new.portfolio_id is not None:
            portfolio = await portfolio_store.get_portfolio(
                session, owner_id=owner_id, portfolio_id=new.portfolio_id
            )
            if portfolio is None:
                raise NotFound(f"no portfolio {new.portfolio_id}")
    if new.mode == "LIVE":
        if connection is None:
            raise InvalidInput("connectionId", "a LIVE bot trades on an exchange connection")
        if connection.exchange == PAPER:
            raise InvalidInput("connectionId", "a LIVE bot trades on a real exchange: use PAPER")
        if connection.can_trade is False:
            raise InvalidInput("connectionId", f"{connection.exchange} says the key may not trade")
        if portfolio is not None:
            raise InvalidInput("portfolioId", "a LIVE bot books into its connection's portfolio")
        return connection.id, connection.portfolio_id
    if connection is not None:
        raise InvalidInput(
            "mode", "a bot on an exchange connection is LIVE; a PAPER bot trades on coinql's own"
        )
    if portfolio is None:
        return None, None
    if portfolio.base_currency != QUOTE:
        raise InvalidInput("portfolioId", f"a bot books in {QUOTE}: this portfolio does not")
    return None, portfolio.id


async def get_bot(context: Context, *, bot_id: uuid.UUID) -> Bot:
    return await get_owned(context, partial(bot_store.get_bot, bot_id=bot_id), f"no bot {bot_id}")


async def list_bots(context: Context, *, first: int, after: datetime | None) -> list[Bot]:
    user = await require_user(context)
    async with context.services.reader() as session:
        return await bot_store.list_bots(session, owner_id=user.id, after=after, first=first)


def lifecycle(context: Context) -> BotLifecycle:
    return BotLifecycle(context.services.bots)


async def start_bot(context: Context, *, bot_id: uuid.UUID) -> Bot:
    bot = await get_bot(context, bot_id=bot_id)
    started = await lifecycle(context).start(bot)
    await _audit(context, bot, "BOT_STARTED")
    return started


async def pause_bot(context: Context, *, bot_id: uuid.UUID) -> Bot:
    bot = await get_bot(context, bot_id=bot_id)
    paused = await lifecycle(context).pause(bot, "paused by its owner")
    await _audit(context, bot, "BOT_PAUSED")
    return paused


async def stop_bot(context: Context, *, bot_id: uuid.UUID, close_position: bool) -> Bot:
    bot = await get_bot(context, bot_id=bot_id)
    if bot.status == BotStatus.STOPPED.value:
        return bot
    await lifecycle(context).stop([bot], close_positions=close_position, reason="stopped")
    await _audit(context, bot, "BOT_STOPPED")
    return await lifecycle(context).reload(bot)


async def emergency_stop(
    context: Context, *, close_positions: bool, everyone: bool = False
) -> Stopped:
    """Stop every bot of the caller (of every user, for an admin's `everyone`), cancel their
    open orders and, when asked, sell their positions."""
    user = await (require_admin(context) if everyone else require_user(context))
    async with context.services.reader() as session:
        bots = await bot_store.owners_bots(
            session, owner_id=None if everyone else user.id, statuses=bot_store.ACTIVE_STATUSES
        )
    stopped = await lifecycle(context).stop(
        bots, close_positions=close_positions, reason="emergency stop", everyone=everyone
    )
    async with context.services.transaction() as session:
        await audit(
            context,
            session,
            user.id,
            "EMERGENCY_STOP",
            target=f"{'all users' if everyone else 'own'}: {stopped.bots} bots,"
            f" {stopped.orders_cancelled} orders, {stopped.positions_closed} positions",
        )
    return stopped


async def place_order(
    context: Context,
    *,
    bot_id: uuid.UUID,
    side: BotSide,
    kind: OrderKind,
    quantity: Decimal,
    price: Decimal | None,
) -> BotOrder:
    """A manual order on the bot's account, at the feed's live price; the bot's risk limits
    hold. A MARKET order fills at the next price the feed sends."""
    bot = await get_bot(context, bot_id=bot_id)
    if bot.status == BotStatus.STOPPED.value:
        raise InvalidInput("botId", f"bot {bot_id} is stopped")
    engine = context.services.bots
    order = await engine.place(
        bot,
        side=side,
        kind=kind,
        quantity=quantity,
        price=price,
        origin="MANUAL",
        at=await engine.quote_now(bot.symbol),
    )
    await _audit(context, bot, "ORDER_PLACED", f"{order.id}:{side.value} {quantity} {bot.symbol}")
    return order


async def get_order(context: Context, *, order_id: uuid.UUID) -> BotOrder:
    return await get_owned(
        context, partial(bot_store.get_order, order_id=order_id), f"no order {order_id}"
    )


async def cancel_order(context: Context, *, order_id: uuid.UUID) -> BotOrder:
    order = await get_order(context, order_id=order_id)
    bot = await get_bot(context, bot_id=order.bot_id)
    cancelled = await context.services.bots.cancel(bot, order)
    await _audit(context, bot, "ORDER_CANCELLED", str(order.id))
    return cancelled


async def _audit(context: Context, bot: Bot, action: str, target: str | None = None) -> None:
    async with context.services.transaction() as session:
        await audit(context, session, bot.owner_id, action, target=target or str(bot.id))


async def orders_of(
    context: Context, bot: Bot, *, first: int, before: datetime | None
) -> list[BotOrder]:
    async with context.services.reader() as session:
        return await bot_store.orders_of(session, bot_id=bot.id, before=before, first=first)


async def fills_of(context: Context, bot: Bot, *, first: int) -> list[BotFillRow]:
    async with context.services.reader() as session:
        return await bot_store.fills_of(session, bot_id=bot.id, first=first)


async def trade_statistics_of(context: Context, bot: Bot) -> TradeStatistics:
    """The statistics of the bot's closed round trips (`trade_stats.round_trips`)."""
    async with context.services.reader() as session:
        fills = await bot_store.fills_of(session, bot_id=bot.id)
    trips = round_trips(
        [
            (
                fill.side,
                float(fill.price),
                float(fill.quantity),
                float(fill.fee),
                int(fill.time.timestamp() * 1000),
            )
            for fill in fills
        ],
        Interval(bot.interval).milliseconds,
    )
    return trade_statistics(trips)


async def book_of(context: Context, bot: Bot) -> Valuation:
    """The bot's account valued at the live price (`bot_valuation`)."""
    async with context.services.reader() as session:
        fills = await bot_store.fills_of(session, bot_id=bot.id)
    return bot_valuation(bot, fills, await _last_price(context, bot))


async def _last_price(context: Context, bot: Bot) -> Decimal | None:
    live = context.services.prices.get(bot.symbol)
    if live is not None:
        return Decimal(repr(live.price))
    asset = await context.loaders.assets.load(bot.symbol)
    if asset is None or asset.last_price is None:
        return None
    return Decimal(repr(asset.last_price))


async def divergence_of(context: Context, bot: Bot) -> Divergence | None:
    """The bot against its strategy backtested over the candles it saw; None before it has
    acted on a candle."""
    if bot.first_live_ms is None or bot.last_bar_ms is None:
        return None
    async with context.services.reader() as session:
        candles = await closed_candles(
            session,
            symbol=bot.symbol,
            interval=Interval(bot.interval),
            now=context.services.market_now(),
        )
        fills = await bot_store.fills_of(session, bot_id=bot.id)
    return await bot_divergence(context.services.bots, bot, candles=candles, fills=fills)


async def return_stream_of(
    context: Context, bot: Bot, *, risk_free_rate: float
) -> ReturnStream | None:
    """The bot's value at each close since it first acted on a candle, as a return stream;
    None before that."""
    if bot.first_live_ms is None:
        return None
    interval = Interval(bot.interval)
    async with context.services.reader() as session:
        candles = await closed_candles(
            session,
            symbol=bot.symbol,
            interval=interval,
            now=context.services.market_now(),
            start=bot.first_live_ms,
        )
        fills = await bot_store.fills_of(session, bot_id=bot.id)
    history = value_history_from_candles(
        bot_transactions(bot, fills),
        base_currency=QUOTE,
        candles={bot.symbol: candles},
        fallback_timestamps=candles.timestamps,
    )
    return ReturnStream.of_equity(
        bot.name,
        history.timestamps,
        history.values,
        interval,
        periods_per_year=interval.periods_per_year,
        risk_free_rate=risk_free_rate,
    )
