"""Bots on the feed: their lifecycle, and the runner that trades each RUNNING bot's signals.

Orders go through `coinql.realtime.orders.BotEngine` (made ready, checked, written, sent). The
runner (`BotRunner`, elected by the database like ingestion, so one process runs every bot)
wakes each COINQL_BOT_POLL_SECONDS. For each RUNNING bot it first brings the bot's orders up to
date: a paper bot's book is offered the latest price (filling resting limit and stop orders);
a LIVE bot's open orders are reconciled with its exchange, and while one's outcome is unknown
the bot places nothing new (after a restart too). Then it takes every closed candle newer than
the last it acted on, oldest first, and asks the strategy (`coinql.domain.bots.decide`, over
the warm-up history and every candle since) whether to trade on it. A paper signal's market
order fills at that candle's close with the bot's slippage and fee, as its backtest fills
(`FillPrice.CLOSE`), so the bot and its backtest over the same candles make the same trades; a
LIVE one fills at what the exchange gives. Each order, fill and status change is published on
the bot's channel. A LIVE bot found running while the operator's switch is off is paused.
The candles it reads, and its divergence from its backtest: `coinql.realtime.bot_candles`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import ccxt
import numpy as np
import structlog

from coinql.domain.bots import (
    BotSettings,
    BotSide,
    RiskRefused,
    daily_loss_hit,
    decide,
    warmup_bars,
)
from coinql.domain.candles import DAY_MS, Interval
from coinql.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from coinql.domain.orders import OrderKind
from coinql.exchanges.trading import ExchangeUnreachable
from coinql.realtime.bot_candles import SETTLE, closed_candles, newest_closed_candle, seen_window
from coinql.realtime.bot_ledger import bot_valuation
from coinql.realtime.leader import Leader, LeadingLoop
from coinql.realtime.order_rows import Quote
from coinql.realtime.orders import LIVE_OFF, BotEngine
from coinql.store import bots as bot_store
from coinql.store.bots import Bot, BotMode, BotStatus, OrderStatus

log = structlog.get_logger("coinql.bots")


@dataclass(frozen=True, slots=True)
class Stopped:
    """What stopping did: bots stopped, open orders cancelled, positions closed."""

    bots: int
    orders_cancelled: int
    positions_closed: int


class BotLifecycle:
    """Starting, pausing and stopping bots (one statement per change: racing changes cannot
    both win), with what stopping does to their orders and positions."""

    def __init__(self, engine: BotEngine) -> None:
        self.engine = engine

    async def start(self, bot: Bot) -> Bot:
        """CREATED or PAUSED (or ERROR) -> RUNNING; a running bot stays so. It trades on the
        candles that close from now on; the history before is its warm-up."""
        engine, now = self.engine, self.engine.clock()
        if bot.status == BotStatus.RUNNING.value:
            return bot
        async with engine.sessions() as session, session.begin():
            newest = await newest_closed_candle(
                session, symbol=bot.symbol, interval=Interval(bot.interval), now=now
            )
            moved = await bot_store.move(
                session,
                bot_ids=[bot.id],
                owner_id=bot.owner_id,
                from_statuses=(BotStatus.CREATED, BotStatus.PAUSED, BotStatus.ERROR),
                to=BotStatus.RUNNING,
                reason=None,
                now=now,
            )
            if not moved:
                raise Conflict(f"bot {bot.id} is {bot.status.lower()}: a stopped bot stays so")
            if bot.status == BotStatus.CREATED.value:
                stored = await session.get(Bot, bot.id)
                assert stored is not None
                stored.last_bar_ms = newest
        await engine.publish(bot.id, {"kind": "status", "status": "RUNNING", "reason": None})
        return await self.reload(bot)

    async def pause(self, bot: Bot, reason: str | None = None) -> Bot:
        """RUNNING -> PAUSED; a paused bot, or one never started, stays as it is."""
        engine, now = self.engine, self.engine.clock()
        if bot.status in (BotStatus.PAUSED.value, BotStatus.CREATED.value):
            return bot
        async with engine.sessions() as session, session.begin():
            moved = await bot_store.move(
                session,
                bot_ids=[bot.id],
                owner_id=bot.owner_id,
                from_statuses=(BotStatus.RUNNING,),
                to=BotStatus.PAUSED,
                reason=reason,
                now=now,
            )
        if not moved:
            raise Conflict(f"bot {bot.id} is {bot.status.lower()}: only a running bot pauses")
        await engine.publish(bot.id, {"kind": "status", "status": "PAUSED", "reason": reason})
        return await self.reload(bot)

    async def stop(
        self, bots: list[Bot], *, close_positions: bool, reason: str | None, everyone: bool = False
    ) -> Stopped:
        """Stop `bots` (those not stopped yet), cancel their open orders and, when asked,
        sell their positions at the live price."""
        engine, now = self.engine, self.engine.clock()
        if not bots:
            return Stopped(0, 0, 0)
        async with engine.sessions() as session, session.begin():
            moved = await bot_store.move(
                session,
                bot_ids=[bot.id for bot in bots],
                owner_id=None if everyone else bots[0].owner_id,
                from_statuses=bot_store.ACTIVE_STATUSES,
                to=BotStatus.STOPPED,
                reason=reason,
                now=now,
            )
        origin = "EMERGENCY" if everyone or reason == "emergency stop" else "CLOSE"
        cancelled = closed = 0
        for bot_id in moved:
            await engine.publish(bot_id, {"kind": "status", "status": "STOPPED", "reason": reason})
            engine.forget(bot_id)
            try:
                bot_cancelled, bot_closed = await self._wind_down(bot_id, close_positions, origin)
            except (InvalidInput, Forbidden, ExchangeUnreachable) as error:  # stopped all the same
                log.warning("stopped bot not wound down", bot_id=str(bot_id), why=str(error))
                continue
            cancelled += bot_cancelled
            closed += bot_closed
        return Stopped(len(moved), cancelled, closed)

    async def _wind_down(
        self, bot_id: uuid.UUID, close_position: bool, origin: str
    ) -> tuple[int, int]:
        """Cancel a stopped bot's open orders and, when asked, sell its position; (orders
        cancelled, 1 if its position was sold)."""
        engine = self.engine
        async with engine.sessions() as session:
            bot = await session.get(Bot, bot_id)
            assert bot is not None
            open_orders = await bot_store.orders_of(
                session, bot_id=bot_id, statuses=bot_store.OPEN_ORDER_STATUSES
            )
        cancelled = 0
        for order in open_orders:
            bot = await self.reload(bot)
            ended = await engine.cancel(bot, order)
            cancelled += ended.status == OrderStatus.CANCELLED.value
        bot = await self.reload(bot)
        position = (await engine.account(bot)).position
        if not close_position or position <= 0:
            return cancelled, 0
        live = await engine.quote_now(bot.symbol)
        order = await engine.place(
            bot,
            side=BotSide.SELL,
            kind=OrderKind.MARKET,
            quantity=position,
            price=None,
            origin=origin,
            at=live,
            fill_at=Quote(live.base, live.price, live.timestamp + 1),
        )
        return cancelled, int(order.status == OrderStatus.FILLED.value)

    async def pause_booking_into(self, portfolio_id: uuid.UUID, reason: str) -> int:
        """Pause the running bots of a portfolio (a breach of its risk limits); how many."""
        async with self.engine.sessions() as session:
            running = await bot_store.bots_of_portfolio(
                session, portfolio_id=portfolio_id, statuses=(BotStatus.RUNNING,)
            )
        paused = 0
        for bot in running:
            with contextlib.suppress(Conflict):  # paused or stopped meanwhile
                await self.pause(bot, reason)
                paused += 1
        return paused

    async def reload(self, bot: Bot) -> Bot:
        async with self.engine.sessions() as session:
            found = await session.get(Bot, bot.id)
        if found is None:
            raise NotFound(f"no bot {bot.id}")
        return found


class BotRunner(LeadingLoop):
    """Trades every RUNNING bot's signals each `poll_seconds`, while this process leads."""

    task_name = "coinql-bots"

    def __init__(
        self,
        *,
        engine: BotEngine,
        poll_seconds: float,
        leader: Leader | None = None,
        on_status: Callable[[str], None] = lambda status: None,
    ) -> None:
        super().__init__(leader=leader, pause_seconds=poll_seconds, on_status=on_status)
        self.engine = engine
        self._valued: dict[uuid.UUID, int] = {}  # the tick each bot's value was sent at

    async def stop(self) -> None:
        await super().stop()
        await self.engine.close()  # its order streams and exchange clients

    async def run_once(self) -> int:
        """One pass over the running bots; how many orders their signals placed."""
        async with self.engine.sessions() as session:
            running = await bot_store.running_bots(session)
        placed = 0
        for bot in running:
            try:
                placed += await self.step(bot)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # one bot's failure stops that bot, not the others
                log.exception("bot step failed", bot_id=str(bot.id))
                await self._fail(bot, _reason(error))
        await self._follow_the_rest()
        return placed

    async def _follow_the_rest(self) -> None:
        """Follow the open orders of the LIVE bots that are not running (paused, stopped,
        failed): their fills still come."""
        async with self.engine.sessions() as session:
            idle = await bot_store.live_bots_to_follow(session)
        for bot in idle:
            try:
                await self.engine.reconcile(bot)
            except asyncio.CancelledError:
                raise
            except Exception:  # the next pass asks again
                log.exception("following an idle bot's orders failed", bot_id=str(bot.id))

    async def _value(self, bot: Bot, price: Decimal) -> bool:
        """Publish the bot's value at `price`, and hold it to its daily loss limit: the first
        value of a (UTC) day starts the day; a loss of the limit since then pauses the bot.
        True when it paused."""
        engine = self.engine
        async with engine.sessions() as session:
            fills = await bot_store.fills_of(session, bot_id=bot.id)
        found = bot_valuation(bot, fills, price)
        await engine.publish(
            bot.id,
            {
                "kind": "value",
                "value": str(found.value),
                "unrealizedPnl": str(found.unrealized_pnl),
            },
        )
        today = int(engine.clock().timestamp() * 1000) // DAY_MS * DAY_MS
        if bot.day_start_ms != today or bot.day_start_value is None:
            async with engine.sessions() as session, session.begin():
                await bot_store.start_day(
                    session, bot_id=bot.id, day_start_ms=today, value=found.value
                )
            return False
        risk = BotSettings.from_json(bot.config).risk
        if not daily_loss_hit(risk, value=found.value, day_start_value=bot.day_start_value):
            return False
        lost = (bot.day_start_value - found.value) / bot.day_start_value
        reason = f"daily loss limit: {lost:.1%} lost today, the limit is {risk.daily_loss_limit}"
        with contextlib.suppress(Conflict):  # paused or stopped meanwhile
            await BotLifecycle(engine).pause(bot, reason)
        return True

    async def _fail(self, bot: Bot, reason: str) -> None:
        engine = self.engine
        async with engine.sessions() as session, session.begin():
            await bot_store.move(
                session,
                bot_ids=[bot.id],
                owner_id=bot.owner_id,
                from_statuses=(BotStatus.RUNNING,),
                to=BotStatus.ERROR,
                reason=reason[:300],
                now=engine.clock(),
            )
        await engine.publish(bot.id, {"kind": "status", "status": "ERROR", "reason": reason})

    async def step(self, bot: Bot) -> int:
        """Offer the latest price to the bot's resting orders, then act on each candle closed
        since the last it acted on; how many orders its signals placed."""
        engine = self.engine
        lifecycle = BotLifecycle(engine)
        if bot.mode == BotMode.LIVE.value:
            if not engine.live_trading():
                with contextlib.suppress(Conflict):
                    await lifecycle.pause(bot, LIVE_OFF)
                return 0
            if not await engine.reconcile(bot):
                return 0  # an order's outcome is unknown: nothing new until it is known
        live = engine.prices.get(bot.symbol)
        if live is not None:
            price = Quote(bot.symbol, Decimal(repr(live.price)), live.timestamp)
            if bot.mode == BotMode.PAPER.value:
                await engine.offer_price(bot, price)
            bot = await lifecycle.reload(bot)
            if self._valued.get(bot.id) != live.timestamp:
                self._valued[bot.id] = live.timestamp
                if await self._value(bot, price.price):
                    return 0  # its daily loss paused it
        bot = await lifecycle.reload(bot)
        settings = BotSettings.from_json(bot.config)
        spec, interval = settings.spec, Interval(bot.interval)
        async with engine.sessions() as session:
            candles = await closed_candles(
                session, symbol=bot.symbol, interval=interval, now=engine.clock(), settle=SETTLE
            )
        window = seen_window(candles.timestamps, bot, warmup_bars(spec, settings.config))
        placed = 0
        for index in np.flatnonzero(candles.timestamps > (bot.last_bar_ms or -1)):
            bot = await lifecycle.reload(bot)
            if bot.status != BotStatus.RUNNING.value:
                break
            seen = candles.select(np.arange(window, index + 1))
            account = await engine.account(bot)
            decision = decide(
                spec, seen, settings.config, position=account.position, cash=account.cash
            )
            opened = int(candles.timestamps[index])
            if decision is not None:
                close_ms = opened + interval.milliseconds
                try:
                    await engine.place(
                        bot,
                        side=decision.side,
                        kind=OrderKind.MARKET,
                        quantity=decision.quantity,
                        price=None,
                        origin="SIGNAL",
                        at=Quote(bot.symbol, decision.price, close_ms - 1),
                        fill_at=Quote(bot.symbol, decision.price, close_ms),
                    )
                    placed += 1
                except (InvalidInput, RiskRefused) as refused:  # a limit, the balance, the market
                    log.info("bot signal refused", bot_id=str(bot.id), why=refused.message)
                    await engine.publish(
                        bot.id, {"kind": "status", "status": "RUNNING", "reason": refused.message}
                    )
                except (Unavailable, Conflict) as later:  # the exchange, or a racing order
                    log.warning("bot signal deferred", bot_id=str(bot.id), why=later.message)
                    return placed  # this candle again on the next pass
                except Forbidden:  # the operator switched live trading off meanwhile
                    with contextlib.suppress(Conflict):
                        await lifecycle.pause(bot, LIVE_OFF)
                    return placed
                bot = await lifecycle.reload(bot)
            async with engine.sessions() as session, session.begin():
                await bot_store.mark_bar(
                    session,
                    bot_id=bot.id,
                    last_bar_ms=opened,
                    first_live_ms=bot.first_live_ms or opened,
                )
        return placed


def _reason(error: Exception) -> str:
    """Why a bot failed, as its `reason` says it: a ccxt error by its class only (ccxt's text
    can quote a signed request)."""
    if isinstance(error, ccxt.BaseError):
        return type(error).__name__
    return f"{type(error).__name__}: {error}"
