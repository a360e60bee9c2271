"""Bots' orders: the one path every order takes, on the paper exchange or a real one.

Every order goes one way (`BotEngine.place`): made ready (`coinql.domain.orders`: the market's
precision and limits, the free balance), checked against the bot's risk limits
(`coinql.domain.bots.check_order`; not for the orders that flatten a stopping bot), **written**
as NEW under a fresh client order id and committed, then sent, then updated from the
exchange's answer with its fills.

A PAPER bot's exchange is `coinql.exchanges.paper.PaperExchange` over the bot's own book,
stored with a version: two writers of one book cannot both win; a paper bot may book its
capital and fills into a portfolio too (`coinql.realtime.bot_ledger`). A LIVE bot's is its
connection's ccxt client, through `coinql.realtime.live_orders`, and only while the
operator's switch is on.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import ccxt
import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.bots import BotSettings, BotSide, check_order
from coinql.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from coinql.domain.ledger import CostBasis, replay
from coinql.domain.orders import MarketRules, OrderKind, prepare_order
from coinql.domain.paper import PaperBook
from coinql.exchanges.ccxt import Backoff
from coinql.exchanges.paper import PaperExchange
from coinql.exchanges.trading import TradingClient
from coinql.realtime.bot_ledger import book_fills, bot_transactions
from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.hub import Hub
from coinql.realtime.live_orders import ORDER_RETRIES, LiveOrders
from coinql.realtime.order_rows import (
    QUOTE,
    OrderRows,
    Quote,
    fill_event,
    order_event,
    pair,
)
from coinql.realtime.prices import LatestPrices
from coinql.store import bots as bot_store
from coinql.store import market as market_store
from coinql.store.accounts import ExchangeConnection
from coinql.store.bots import Bot, BotFillRow, BotMode, BotOrder, OrderStatus

log = structlog.get_logger("coinql.orders")
# The paper exchange's names of the order types.
CCXT_TYPE = {
    OrderKind.MARKET: "market",
    OrderKind.LIMIT: "limit",
    OrderKind.STOP_MARKET: "stop_market",
}
LIVE_OFF = "live trading is off: the server runs without COINQL_LIVE_TRADING=true"


@dataclass(frozen=True, slots=True)
class Account:
    """What a bot holds: its free position and cash, and what its open orders hold (cash for
    buys, units for sells)."""

    position: Decimal
    cash: Decimal
    reserved: Decimal
    book: PaperBook | None  # a paper bot's
    held_units: Decimal = Decimal(0)

    def value(self, price: Decimal) -> Decimal:
        return self.cash + self.reserved + (self.position + self.held_units) * price


def new_bot(
    *,
    owner_id: uuid.UUID,
    strategy_id: uuid.UUID,
    name: str,
    symbol: str,
    interval: str,
    settings: BotSettings,
    now: datetime,
    connection_id: uuid.UUID | None = None,
    portfolio_id: uuid.UUID | None = None,
) -> Bot:
    """A CREATED bot: PAPER with its capital in cash on a paper book of its fee and slippage,
    or LIVE on `connection_id` (its account is its capital and its fills)."""
    config = settings.config
    book = None
    if connection_id is None:
        paper = PaperBook(
            quote=QUOTE,
            fee_bps=Decimal(repr(config.fee_bps)),
            slippage_bps=Decimal(repr(config.slippage_bps)),
        )
        paper.deposit(QUOTE, Decimal(repr(config.initial_capital)))
        book = paper.to_json()
    return Bot(
        owner_id=owner_id,
        strategy_id=strategy_id,
        connection_id=connection_id,
        portfolio_id=portfolio_id,
        name=name,
        symbol=symbol,
        interval=interval,
        mode=(BotMode.PAPER if connection_id is None else BotMode.LIVE).value,
        config=settings.to_json(),
        book=book,
        created_at=now,
    )


def paper_book(bot: Bot) -> PaperBook:
    if bot.book is None:
        raise NotFound(f"bot {bot.id} has no paper account")
    return PaperBook.from_json(bot.book)


class BotEngine(OrderRows):
    """Places, cancels and follows bots' orders; shared by the resolvers and the runner.

    `clients` builds a LIVE bot's ccxt client from its connection (tests give a fake);
    `live_trading` is the operator's switch, read at every LIVE order.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        hub: Hub,
        prices: LatestPrices,
        clock: Clock = utc_now,
        clients: Callable[[ExchangeConnection], TradingClient] | None = None,
        live_trading: Callable[[], bool] = lambda: False,
        backoff: Backoff = ORDER_RETRIES,
    ) -> None:
        super().__init__(sessions=sessions, hub=hub, clock=clock)
        self.prices = prices
        self.live_trading = live_trading
        self.live = LiveOrders(self, clients=clients, backoff=backoff)

    async def quote_now(self, symbol: str) -> Quote:
        """The price of `symbol` now: the feed's, else the newest stored close (a paper
        MARKET order placed at a stored price fills at the feed's next price)."""
        live = self.prices.get(symbol)
        if live is not None:
            return Quote(symbol, Decimal(repr(live.price)), live.timestamp)
        async with self.sessions() as session:
            asset = await market_store.get_asset(session, symbol=symbol)
        if asset is None or asset.last_price is None or asset.last_price_at is None:
            raise InvalidInput("botId", f"{symbol} has no price yet; try again shortly")
        return Quote(symbol, Decimal(repr(asset.last_price)), int(asset.last_price_at))

    async def account(self, bot: Bot, price: Decimal | None = None) -> Account:
        """The bot's holdings: a paper bot's book, or a LIVE bot's capital and fills less
        what its open orders hold (an open market buy at `price`, the price it goes at)."""
        if bot.mode == BotMode.PAPER.value:
            book = paper_book(bot)
            return Account(
                book.balances.get(bot.symbol, Decimal(0)), book.free(QUOTE), book.used(QUOTE), book
            )
        async with self.sessions() as session:
            fills = await bot_store.fills_of(session, bot_id=bot.id)
            open_orders = await bot_store.orders_of(
                session, bot_id=bot.id, statuses=bot_store.OPEN_ORDER_STATUSES
            )
        state = replay(bot_transactions(bot, fills), base_currency=QUOTE, method=CostBasis.FIFO)
        holding = state.holdings.get(bot.symbol)
        position = holding.quantity if holding is not None else Decimal(0)
        held_cash = held_units = Decimal(0)
        for order in open_orders:
            left = order.quantity - order.filled_quantity
            if order.side == BotSide.BUY.value:
                held_cash += left * (order.price or order.average_price or price or Decimal(0))
            else:
                held_units += left
        return Account(position - held_units, state.cash - held_cash, held_cash, None, held_units)

    async def place(
        self,
        bot: Bot,
        *,
        side: BotSide,
        kind: OrderKind,
        quantity: Decimal,
        price: Decimal | None,
        origin: str,
        at: Quote,
        fill_at: Quote | None = None,
    ) -> BotOrder:
        """Make the order ready, check it, write it, send it, and record what came back.

        `at` is the price the order is placed at; `fill_at`, a later one a paper order meets
        at once (a signal's fill at its candle's close). Risk limits hold for SIGNAL and
        MANUAL orders.
        """
        live = bot.mode == BotMode.LIVE.value
        if live and not self.live_trading():
            raise Forbidden(LIVE_OFF)
        account = await self.account(bot, at.price)
        settings = BotSettings.from_json(bot.config)
        fee_rate = Decimal(repr(settings.config.fee_bps)) / 10_000
        rules, free_quote, free_base = MarketRules(), account.cash, account.position
        if live:
            rules, base, quote = await self.live.limits(bot)
            free_quote, free_base = min(free_quote, quote), min(free_base, base)
        ready = prepare_order(
            rules,
            side=side.value.lower(),
            kind=kind,
            quantity=quantity,
            price=price,
            expected_price=at.price,
            free_quote=free_quote,
            free_base=free_base,
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
                value=account.value(at.price),
                position=account.position,
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
            if live:  # one placement at a time per bot, each on the account it checked
                await self._claim_turn(session, bot)
            await bot_store.add_order(session, order)  # written before it is sent
        await self.publish(bot.id, order_event(order))
        if live:
            return await self.live.send(bot, order)
        assert account.book is not None
        book = account.book
        try:
            sent = await PaperExchange(book, at).create_order(
                pair(bot.symbol),
                CCXT_TYPE[kind],
                side.value.lower(),
                ready.quantity,
                ready.price if kind is OrderKind.LIMIT else None,
                {"clientOrderId": order.client_order_id}
                | ({"stopPrice": ready.price} if kind is OrderKind.STOP_MARKET else {}),
            )
        except ccxt.BaseError as error:
            return await self.end(
                bot, order, OrderStatus.REJECTED, f"{type(error).__name__}: {error}"
            )
        if fill_at is not None:
            book.on_price(pair(bot.symbol), fill_at.price, fill_at.timestamp)
        try:
            recorded = await self._record(bot, book, order, str(sent["id"]))
        except Conflict:  # the book moved under it: this order was never stored in it
            await self.end(bot, order, OrderStatus.REJECTED, "the bot's book changed meanwhile")
            raise
        assert recorded is not None
        return recorded

    async def _claim_turn(self, session: AsyncSession, bot: Bot) -> None:
        """A LIVE bot's placements take turns: each moves the bot's version on from the one
        its checks read, so of two racing orders one is refused (`Conflict`); none goes while
        an order's outcome is unknown (written, not answered for, not being sent here)."""
        unknown = [
            order
            for order in await bot_store.orders_of(
                session, bot_id=bot.id, statuses=bot_store.OPEN_ORDER_STATUSES
            )
            if order.exchange_order_id is None and not self.live.sending(order)
        ]
        if unknown:
            raise Conflict(
                f"bot {bot.id} has an order the exchange has not answered for yet; try again"
                " once it has"
            )
        if not await bot_store.take_turn(session, bot_id=bot.id, version=bot.version):
            raise Conflict(f"bot {bot.id} placed another order meanwhile; try again")

    async def _record(
        self, bot: Bot, book: PaperBook, order: BotOrder | None, exchange_id: str | None
    ) -> BotOrder | None:
        """Store a paper book, and every order and fill it changed since `bot` was read (the
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
            changed, fills = await _apply_book(
                session, bot, book, PaperBook.from_json(bot.book or {}), self.clock()
            )
            await book_fills(session, bot, fills)
        for row in changed:
            await self.publish(bot.id, order_event(row))
        for fill in fills:
            await self.publish(bot.id, fill_event(fill))
        if order is None:
            return None
        async with self.sessions() as session:
            return await session.get(BotOrder, order.id)

    async def offer_price(self, bot: Bot, at: Quote) -> None:
        """Let the latest price fill a paper bot's resting orders."""
        book = paper_book(bot)
        if book.on_price(pair(bot.symbol), at.price, at.timestamp):
            with contextlib.suppress(Conflict):  # someone else moved the book: next time
                await self._record(bot, book, None, None)

    async def cancel(self, bot: Bot, order: BotOrder) -> BotOrder:
        """Cancel an open order (a finished one is returned as it is)."""
        if order.status not in bot_store.OPEN_ORDER_STATUSES:
            return order
        if bot.mode == BotMode.LIVE.value:
            return await self.live.cancel(bot, order)
        if order.exchange_order_id is None:
            return order
        book = paper_book(bot)
        exchange = PaperExchange(book, await self.quote_now(bot.symbol))
        await exchange.cancel_order(order.exchange_order_id, pair(bot.symbol))
        cancelled = await self._record(bot, book, order, None)
        assert cancelled is not None
        return cancelled

    async def reconcile(self, bot: Bot) -> bool:
        """Bring a LIVE bot's open orders to its exchange's word (`LiveOrders.reconcile`)."""
        return await self.live.reconcile(bot)

    def forget(self, bot_id: uuid.UUID) -> None:
        self.live.forget(bot_id)

    async def close(self) -> None:
        await self.live.close()


PAPER_STATUS = {
    "open": OrderStatus.NEW,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
}


async def _apply_book(
    session: AsyncSession, bot: Bot, book: PaperBook, before: PaperBook, now: datetime
) -> tuple[list[BotOrder], list[BotFillRow]]:
    """Bring a paper bot's order rows to its book's state and add its new fills; return the
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
