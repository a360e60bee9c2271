"""Bots on the feed: the order path, and the runner that trades each RUNNING bot's signals.

Every order goes one way (`BotEngine.place`): made ready (`coinql.domain.orders`: the market's
precision and limits, the free balance), checked against the bot's risk limits
(`coinql.domain.bots.check_order`; not for the orders that flatten a stopping bot), **written**
as NEW under a fresh client order id and committed, then sent to the bot's exchange, then
updated from the exchange's answer with its fills. A paper bot's exchange is
`coinql.exchanges.paper.PaperExchange` over the bot's own book, stored with a version: two
writers of one book cannot both win. A failure to send leaves the order REJECTED with why.

The runner (`BotRunner`, elected by the database like ingestion, so one process runs every
bot) wakes each COINQL_BOT_POLL_SECONDS: for each RUNNING bot it offers the latest price to the
book (filling resting limit and stop orders), then takes every closed candle newer than the last
it acted on, oldest first, and asks the strategy (`coinql.domain.bots.decide`, over the warm-up
history and every candle since) whether to trade on it. A signal's market order fills at that
candle's close with the bot's slippage and fee, as its backtest fills (`FillPrice.CLOSE`), so
the bot and its backtest over the same candles make the same trades. Each order, fill and
status change is published on the bot's channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt
import numpy as np
import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.bots import (
    BotSettings,
    BotSide,
    RiskRefused,
    check_order,
    daily_loss_hit,
    decide,
    warmup_bars,
)
from coinql.domain.candles import DAY_MS, Interval
from coinql.domain.errors import Conflict, InvalidInput, NotFound
from coinql.domain.ledger import CostBasis, Transaction, TransactionKind, replay
from coinql.domain.orders import MarketRules, OrderKind, prepare_order
from coinql.domain.paper import PaperBook
from coinql.domain.valuation import Valuation, value
from coinql.exchanges.paper import PaperExchange
from coinql.realtime import channels
from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.hub import Hub
from coinql.realtime.leader import Leader, LeadingLoop
from coinql.realtime.prices import LatestPrices
from coinql.store import bots as bot_store
from coinql.store import market as market_store
from coinql.store.bots import Bot, BotFillRow, BotOrder, BotStatus, OrderStatus

log = structlog.get_logger("coinql.bots")

CCXT_TYPE = {
    OrderKind.MARKET: "market",
    OrderKind.LIMIT: "limit",
    OrderKind.STOP_MARKET: "stop_market",
}
QUOTE = "USDT"  # a paper bot's book is kept in it, as the demo candles are (USD as USDT)


def pair(symbol: str) -> str:
    return f"{symbol}/{QUOTE}"


@dataclass(frozen=True, slots=True)
class _Price:
    """A price source of one quote, for the paper exchange."""

    base: str
    price: Decimal
    timestamp: int

    def latest(self, base: str) -> tuple[Decimal, int] | None:
        return (self.price, self.timestamp) if base == self.base else None

    def bases(self) -> Iterable[str]:
        return [self.base]


def new_paper_bot(
    *,
    owner_id: uuid.UUID,
    strategy_id: uuid.UUID,
    name: str,
    symbol: str,
    interval: Interval,
    settings: BotSettings,
    now: datetime,
) -> Bot:
    """A CREATED paper bot, its account its capital in cash, filled with its fee and slippage."""
    config = settings.config
    book = PaperBook(
        quote=QUOTE,
        fee_bps=Decimal(repr(config.fee_bps)),
        slippage_bps=Decimal(repr(config.slippage_bps)),
    )
    book.deposit(QUOTE, Decimal(repr(config.initial_capital)))
    return Bot(
        owner_id=owner_id,
        strategy_id=strategy_id,
        name=name,
        symbol=symbol,
        interval=interval.value,
        mode="PAPER",
        config=settings.to_json(),
        book=book.to_json(),
        created_at=now,
    )


def holdings(bot: Bot) -> tuple[Decimal, Decimal, PaperBook]:
    """(position in units, free cash, the book) of a paper bot."""
    if bot.book is None:
        raise NotFound(f"bot {bot.id} has no account")
    book = PaperBook.from_json(bot.book)
    return book.balances.get(bot.symbol, Decimal(0)), book.free(QUOTE), book


def bot_transactions(bot: Bot, fills: Iterable[BotFillRow]) -> list[Transaction]:
    """The bot's account as a ledger: its capital, then its fills."""
    settings = BotSettings.from_json(bot.config)
    return [
        Transaction(
            kind=TransactionKind.DEPOSIT,
            asset=QUOTE,
            quantity=Decimal(repr(settings.config.initial_capital)),
            time=bot.created_at,
        ),
        *(
            Transaction(
                kind=TransactionKind.BUY if fill.side == "BUY" else TransactionKind.SELL,
                asset=bot.symbol,
                quantity=fill.quantity,
                price=fill.price,
                fee=fill.fee,
                time=fill.time,
            )
            for fill in fills
        ),
    ]


def bot_valuation(bot: Bot, fills: Iterable[BotFillRow], price: Decimal | None) -> Valuation:
    """The bot's account valued at `price`, as a portfolio is: cash, position, realized and
    unrealized PnL, fees."""
    state = replay(bot_transactions(bot, fills), base_currency=QUOTE, method=CostBasis.FIFO)
    return value(state, {} if price is None else {bot.symbol: price})


class BotEngine:
    """Places and cancels bots' orders, and moves bots between states; shared by the
    resolvers and the runner."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        hub: Hub,
        prices: LatestPrices,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.prices = prices
        self.clock = clock

    async def publish(self, bot_id: uuid.UUID, event: dict[str, Any]) -> None:
        await self.hub.publish(
            channels.bot(bot_id),
            {"botId": str(bot_id), "timestamp": self.clock().isoformat(), **event},
        )

    async def quote_now(self, symbol: str) -> _Price:
        """The price of `symbol` now: the feed's, else the newest stored close (a MARKET
        order placed at a stored price fills at the feed's next price)."""
        live = self.prices.get(symbol)
        if live is not None:
            return _Price(symbol, Decimal(repr(live.price)), live.timestamp)
        async with self.sessions() as session:
            asset = await market_store.get_asset(session, symbol=symbol)
        if asset is None or asset.last_price is None or asset.last_price_at is None:
            raise InvalidInput("botId", f"{symbol} has no price yet; try again shortly")
        return _Price(symbol, Decimal(repr(asset.last_price)), int(asset.last_price_at))

    async def place(
        self,
        bot: Bot,
        *,
        side: BotSide,
        kind: OrderKind,
        quantity: Decimal,
        price: Decimal | None,
        origin: str,
        at: _Price,
        fill_at: _Price | None = None,
    ) -> BotOrder:
        """Make the order ready, check it, write it, send it, and record what came back.

        `at` is the price the order is placed at; `fill_at`, a later one it meets at once (a
        signal's fill at its candle's close). Risk limits hold for SIGNAL and MANUAL orders.
        """
        position, cash, book = holdings(bot)
        settings = BotSettings.from_json(bot.config)
        fee_rate = Decimal(repr(settings.config.fee_bps)) / 10_000
        ready = prepare_order(
            MarketRules(),
            side=side.value.lower(),
            kind=kind,
            quantity=quantity,
            price=price,
            expected_price=at.price,
            free_quote=cash,
            free_base=position,
            fee_rate=fee_rate if side is BotSide.BUY else Decimal(0),
        )
        if origin in ("SIGNAL", "MANUAL"):
            async with self.sessions() as session:
                open_orders = await bot_store.orders_of(
                    session, bot_id=bot.id, statuses=bot_store.OPEN_ORDER_STATUSES
                )
            check_order(
                settings.risk,
                side=side,
                quantity=ready.quantity,
                price=ready.price if ready.price is not None else at.price,
                value=cash + book.used(QUOTE) + position * at.price,
                position=position,
                open_orders=len(open_orders),
            )
        now = self.clock()
        order = BotOrder(
            bot_id=bot.id,
            client_order_id=f"cq-{uuid.uuid4().hex}",
            side=side.value,
            kind=kind.value,
            origin=origin,
            quantity=ready.quantity,
            price=ready.price,
            created_at=now,
            updated_at=now,
        )
        async with self.sessions() as session, session.begin():
            await bot_store.add_order(session, order)  # written before it is sent
        await self.publish(bot.id, _order_event(order))
        exchange = PaperExchange(book, at)
        try:
            sent = await exchange.create_order(
                pair(bot.symbol),
                CCXT_TYPE[kind],
                side.value.lower(),
                ready.quantity,
                ready.price if kind is OrderKind.LIMIT else None,
                {"clientOrderId": order.client_order_id}
                | ({"stopPrice": ready.price} if kind is OrderKind.STOP_MARKET else {}),
            )
        except ccxt.BaseError as error:
            return await self._rejected(bot, order, f"{type(error).__name__}: {error}")
        if fill_at is not None:
            book.on_price(pair(bot.symbol), fill_at.price, fill_at.timestamp)
        recorded = await self._record(bot, book, order, str(sent["id"]))
        assert recorded is not None
        return recorded

    async def _rejected(self, bot: Bot, order: BotOrder, error: str) -> BotOrder:
        async with self.sessions() as session, session.begin():
            stored = await session.get(BotOrder, order.id)
            assert stored is not None
            stored.status, stored.error, stored.updated_at = (
                OrderStatus.REJECTED.value,
                error[:300],
                self.clock(),
            )
        await self.publish(bot.id, _order_event(stored))
        return stored

    async def _record(
        self, bot: Bot, book: PaperBook, order: BotOrder | None, exchange_id: str | None
    ) -> BotOrder | None:
        """Store the book, and every order and fill it changed since `bot` was read (the
        exchange's id of `order`, just sent, first); publish them."""
        async with self.sessions() as session, session.begin():
            if not await bot_store.save_book(
                session, bot_id=bot.id, version=bot.version, book=book.to_json()
            ):
                raise Conflict(f"bot {bot.id} changed meanwhile; try again")
            if order is not None and exchange_id is not None:
                sent = await session.get(BotOrder, order.id)
                assert sent is not None
                sent.exchange_order_id, sent.sent_at = exchange_id, self.clock()
                await session.flush()
            changed, fills = await _apply(
                session, bot, book, PaperBook.from_json(bot.book or {}), self.clock()
            )
        for row in changed:
            await self.publish(bot.id, _order_event(row))
        for fill in fills:
            await self.publish(
                bot.id,
                {
                    "kind": "fill",
                    "orderId": str(fill.order_id),
                    "side": fill.side,
                    "price": str(fill.price),
                    "quantity": str(fill.quantity),
                    "fee": str(fill.fee),
                },
            )
        if order is None:
            return None
        async with self.sessions() as session:
            return await session.get(BotOrder, order.id)

    async def offer_price(self, bot: Bot, at: _Price) -> None:
        """Let the latest price fill the bot's resting orders."""
        _, _, book = holdings(bot)
        if book.on_price(pair(bot.symbol), at.price, at.timestamp):
            with contextlib.suppress(Conflict):  # someone else moved the book: next time
                await self._record(bot, book, None, None)

    async def cancel(self, bot: Bot, order: BotOrder) -> BotOrder:
        """Cancel an open order (a finished one is returned as it is)."""
        if order.status not in bot_store.OPEN_ORDER_STATUSES or order.exchange_order_id is None:
            return order
        _, _, book = holdings(bot)
        exchange = PaperExchange(book, await self.quote_now(bot.symbol))
        await exchange.cancel_order(order.exchange_order_id, pair(bot.symbol))
        cancelled = await self._record(bot, book, order, None)
        assert cancelled is not None
        return cancelled


PAPER_STATUS = {
    "open": OrderStatus.NEW,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}


async def _apply(
    session: AsyncSession, bot: Bot, book: PaperBook, before: PaperBook, now: datetime
) -> tuple[list[BotOrder], list[BotFillRow]]:
    """Bring the bot's order rows to the book's state and add its new fills; return the
    rows that changed and the fills added."""
    rows = {
        row.exchange_order_id: row
        for row in await bot_store.orders_of(session, bot_id=bot.id)
        if row.exchange_order_id is not None
    }
    changed = []
    for paper in book.orders.values():
        row = rows.get(paper.id)
        status = PAPER_STATUS[paper.status.value]
        if row is None or row.status == status.value:
            continue
        row.status, row.updated_at = status.value, now
        if status is OrderStatus.FILLED:
            row.filled_quantity, row.average_price, row.fee = paper.amount, paper.average, paper.fee
        changed.append(row)
    known = {fill.id for fill in before.fills}
    fills = [
        BotFillRow(
            order_id=rows[fill.order_id].id,
            bot_id=bot.id,
            trade_id=fill.id,
            side=fill.side.value.upper(),
            price=fill.price,
            quantity=fill.amount,
            fee=fill.fee,
            time=datetime.fromtimestamp(fill.timestamp / 1000, tz=UTC),
        )
        for fill in book.fills
        if fill.id not in known and fill.order_id in rows
    ]
    await bot_store.add_fills(session, fills)
    return changed, fills


def _order_event(order: BotOrder) -> dict[str, Any]:
    return {
        "kind": "order",
        "orderId": str(order.id),
        "side": order.side,
        "status": order.status,
        "price": None if order.average_price is None else str(order.average_price),
        "quantity": str(order.quantity),
    }


@dataclass(frozen=True, slots=True)
class Stopped:
    """What stopping did: bots stopped, open orders cancelled, positions closed."""

    bots: int
    orders_cancelled: int
    positions_closed: int


async def newest_closed_candle(
    session: AsyncSession, *, symbol: str, interval: Interval, now: datetime
) -> int | None:
    """The open time of the symbol's newest candle of `interval` closed by `now`."""
    candles = await closed_candles(session, symbol=symbol, interval=interval, now=now)
    return int(candles.timestamps[-1]) if len(candles) else None


async def closed_candles(
    session: AsyncSession,
    *,
    symbol: str,
    interval: Interval,
    now: datetime,
    start: int | None = None,
) -> Any:
    """The symbol's stored candles of `interval` from `start` that have closed by `now`."""
    asset = await market_store.get_asset(session, symbol=symbol)
    if asset is None:
        raise NotFound(f"no asset {symbol}")
    candles = await market_store.load_candles(
        session, asset=asset, interval=interval, start=start, end=None
    )
    closed = candles.timestamps + interval.milliseconds <= int(now.timestamp() * 1000)
    return candles.select(closed)


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
        cancelled = closed = 0
        for bot_id in moved:
            await engine.publish(bot_id, {"kind": "status", "status": "STOPPED", "reason": reason})
            async with engine.sessions() as session:
                bot = await session.get(Bot, bot_id)
                assert bot is not None
                open_orders = await bot_store.orders_of(
                    session, bot_id=bot_id, statuses=bot_store.OPEN_ORDER_STATUSES
                )
            for order in open_orders:
                bot = await self.reload(bot)
                await engine.cancel(bot, order)
                cancelled += 1
            bot = await self.reload(bot)
            position, _, _ = holdings(bot)
            if close_positions and position > 0:
                live = await engine.quote_now(bot.symbol)
                later = _Price(live.base, live.price, live.timestamp + 1)
                order = await engine.place(
                    bot,
                    side=BotSide.SELL,
                    kind=OrderKind.MARKET,
                    quantity=position,
                    price=None,
                    origin="EMERGENCY" if everyone or reason == "emergency stop" else "CLOSE",
                    at=live,
                    fill_at=later,
                )
                closed += order.status == OrderStatus.FILLED.value
        return Stopped(len(moved), cancelled, closed)

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
                await self._fail(bot, f"{type(error).__name__}: {error}")
        return placed

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
        live = engine.prices.get(bot.symbol)
        if live is not None:
            price = _Price(bot.symbol, Decimal(repr(live.price)), live.timestamp)
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
                session, symbol=bot.symbol, interval=interval, now=engine.clock()
            )
        window = seen_window(candles.timestamps, bot, warmup_bars(spec, settings.config))
        placed = 0
        for index in np.flatnonzero(candles.timestamps > (bot.last_bar_ms or -1)):
            bot = await lifecycle.reload(bot)
            if bot.status != BotStatus.RUNNING.value:
                break
            seen = candles.select(np.arange(window, index + 1))
            position, cash, _ = holdings(bot)
            decision = decide(spec, seen, settings.config, position=position, cash=cash)
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
                        at=_Price(bot.symbol, decision.price, close_ms - 1),
                        fill_at=_Price(bot.symbol, decision.price, close_ms),
                    )
                    placed += 1
                except (InvalidInput, RiskRefused) as refused:  # a limit, the balance, the market
                    log.info("bot signal refused", bot_id=str(bot.id), why=refused.message)
                    await engine.publish(
                        bot.id, {"kind": "status", "status": "RUNNING", "reason": refused.message}
                    )
                bot = await lifecycle.reload(bot)
            async with engine.sessions() as session, session.begin():
                await bot_store.mark_bar(
                    session,
                    bot_id=bot.id,
                    last_bar_ms=opened,
                    first_live_ms=bot.first_live_ms or opened,
                )
        return placed


def seen_window(timestamps: Any, bot: Bot, warmup: int) -> int:
    """The index of the first candle the bot's decisions read: its warm-up before the first
    candle it traded on (or, before that, before the first it will trade on)."""
    first = bot.first_live_ms if bot.first_live_ms is not None else (bot.last_bar_ms or -1) + 1
    first_index = int(np.searchsorted(timestamps, first))
    return max(0, first_index - (warmup - 1))
