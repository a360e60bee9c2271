"""LIVE bots' orders on their exchange, through ccxt (`coinql.exchanges.trading`).

Only while the server runs with COINQL_LIVE_TRADING=true (`BotEngine.place` checks the switch
at every order; cancels are always allowed). A LIVE bot's account is its capital and its
fills; what the exchange says of an order is read by `coinql.domain.executions` (partial
fills included) and applied by `follow`, which records each execution once. A send whose
outcome is unknown (a timeout after the request left) is never sent again: the order stays
NEW, without `sent_at`, until the exchange, asked by its client order id, says whether it has
it (`reconcile`, which the runner calls before each bot's signals, after a restart too; an
order it still does not have after GIVE_UP_AFTER never arrived). Where the exchange streams
orders (`watch_orders`), a watcher applies each update as it comes, and open orders are no
longer polled. One ccxt client per connection is kept, its rate limiter with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import ccxt
import structlog
from sqlalchemy.exc import IntegrityError

from coinql.domain.errors import InvalidInput, Unavailable
from coinql.domain.executions import ExchangeOrder, OrderState, next_fill, read_order
from coinql.domain.orders import MarketRules, OrderKind, PrecisionMode
from coinql.exchanges import trading
from coinql.exchanges.ccxt import Backoff
from coinql.exchanges.trading import TradingClient
from coinql.realtime.order_rows import QUOTE, OrderRows, fill_event, order_event, pair
from coinql.store import bots as bot_store
from coinql.store.accounts import ExchangeConnection
from coinql.store.bots import Bot, BotFillRow, BotOrder, OrderStatus

log = structlog.get_logger("coinql.orders")

# An order of unknown outcome is asked about once it is this old (a send in flight in another
# process is not), and given up on (REJECTED: it never reached the exchange) after the second.
ASK_AFTER = timedelta(seconds=10)
GIVE_UP_AFTER = timedelta(minutes=5)
ORDER_RETRIES = Backoff(base_seconds=0.5, cap_seconds=8.0, max_attempts=4)


class LiveOrders:
    """LIVE orders: sent, followed, cancelled, reconciled; `clients` builds a connection's
    ccxt client (tests give a fake)."""

    def __init__(
        self,
        rows: OrderRows,
        *,
        clients: Callable[[ExchangeConnection], TradingClient] | None,
        backoff: Backoff = ORDER_RETRIES,
    ) -> None:
        self.rows = rows
        self.clients = clients
        self.backoff = backoff
        self._clients: dict[uuid.UUID, TradingClient] = {}
        self._rules: dict[tuple[uuid.UUID, str], MarketRules] = {}
        self._in_flight: set[str] = set()  # client order ids this process is sending
        self._watchers: dict[uuid.UUID, asyncio.Task[None]] = {}

    def sending(self, order: BotOrder) -> bool:
        """Whether this process is sending the order now."""
        return order.client_order_id in self._in_flight

    async def limits(self, bot: Bot) -> tuple[MarketRules, Decimal, Decimal]:
        """(the market's rules, free base, free quote) on the bot's exchange."""
        client = await self.client(bot)
        try:
            rules = await self.market(bot, client)
            base, quote = await trading.free_balance(
                client, base=bot.symbol, quote=QUOTE, backoff=self.backoff
            )
        except trading.ExchangeUnreachable as error:
            raise Unavailable(f"{error}; no order was written or sent") from None
        except ccxt.BaseError as error:  # by its class only: ccxt's text can quote the request
            raise Unavailable(
                f"{client.id} failed ({type(error).__name__}); no order was written or sent"
            ) from None
        return rules, base, quote

    async def client(self, bot: Bot) -> TradingClient:
        if bot.connection_id is None or self.clients is None:
            raise InvalidInput("botId", f"bot {bot.id} has no exchange connection to trade on")
        client = self._clients.get(bot.connection_id)
        if client is None:
            async with self.rows.sessions() as session:
                connection = await session.get(ExchangeConnection, bot.connection_id)
            if connection is None:
                raise InvalidInput("botId", f"bot {bot.id}'s exchange connection was removed")
            client = self.clients(connection)
            if connection.sandbox:
                client.set_sandbox_mode(True)
            self._clients[bot.connection_id] = client
        return client

    async def market(self, bot: Bot, client: TradingClient) -> MarketRules:
        assert bot.connection_id is not None
        key = (bot.connection_id, bot.symbol)
        if key not in self._rules:
            markets = await client.load_markets()
            market = markets.get(pair(bot.symbol))
            if market is None:
                raise InvalidInput("symbol", f"{client.id} has no market {pair(bot.symbol)}")
            mode = int(getattr(client, "precisionMode", PrecisionMode.TICK_SIZE))
            self._rules[key] = MarketRules.from_ccxt(market, mode)
        return self._rules[key]

    async def send(self, bot: Bot, order: BotOrder) -> BotOrder:
        """Send a written order; a refusal leaves it REJECTED, an unknown outcome NEW until
        the exchange, asked by its client order id, says."""
        client = await self.client(bot)
        self._in_flight.add(order.client_order_id)
        try:
            raw = await trading.send_order(
                client,
                pair=pair(bot.symbol),
                kind="limit" if order.kind == OrderKind.LIMIT.value else "market",
                side=order.side.lower(),
                amount=order.quantity,
                price=order.price if order.kind == OrderKind.LIMIT.value else None,
                stop_price=order.price if order.kind == OrderKind.STOP_MARKET.value else None,
                client_order_id=order.client_order_id,
                backoff=self.backoff,
            )
        except trading.OrderRefused as refused:
            return await self.rows.end(bot, order, OrderStatus.REJECTED, str(refused))
        except trading.OutcomeUnknown as unknown:
            log.warning("order outcome unknown", bot_id=str(bot.id), why=str(unknown))
            found = None
            with contextlib.suppress(trading.ExchangeUnreachable):  # the runner asks again
                found = await self._find(bot, order)
            if found is None:
                return await self.rows.note(order, f"{unknown}: asking the exchange by its id")
            raw = found
        finally:
            self._in_flight.discard(order.client_order_id)
        return await self.follow(bot, order, raw)

    async def _find(self, bot: Bot, order: BotOrder) -> dict[str, Any] | None:
        since = int((order.created_at - timedelta(minutes=1)).timestamp() * 1000)
        return await trading.find_order(
            await self.client(bot),
            pair=pair(bot.symbol),
            client_order_id=order.client_order_id,
            since=since,
            backoff=self.backoff,
        )

    async def follow(self, bot: Bot, order: BotOrder, raw: dict[str, Any]) -> BotOrder:
        """Bring a LIVE order to what the exchange says of it (`raw`, ccxt's unified order),
        adding what it executed since the last word as one fill; publish what changed.

        A word older than the last applied (less filled) changes nothing; an order is not
        ended while what it filled is not recorded (no price known yet): it is asked again.
        Two followers of one word record its fill once (the second, refused by the store,
        reads it again)."""
        said = read_order(raw, base=bot.symbol, quote=QUOTE)
        for attempt in range(2):
            try:
                return await self._apply(bot, order, said)
            except IntegrityError:  # another follower recorded this word first
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apply(self, bot: Bot, order: BotOrder, said: ExchangeOrder) -> BotOrder:
        now = self.rows.clock()
        fill = None
        async with self.rows.sessions() as session, session.begin():
            row = await session.get(BotOrder, order.id, with_for_update=True)
            assert row is not None
            if said.filled < row.filled_quantity or not OrderState(row.status).open:
                return row  # a stale word, or an order already ended
            recorded = await bot_store.fills_of_order(session, order_id=order.id)
            before = (row.status, row.filled_quantity, row.exchange_order_id)
            if row.exchange_order_id is None:
                row.exchange_order_id, row.sent_at, row.error = said.id, now, None
            execution = next_fill(said, [(f.quantity, f.price, f.fee) for f in recorded])
            if execution is not None:
                # After the bot's fills before it, even within one clock tick: its ledger
                # replays in time order.
                latest = await bot_store.latest_fill_time(session, bot_id=bot.id)
                if latest is not None and latest >= now:
                    now = latest + timedelta(microseconds=1)
                fill = BotFillRow(
                    order_id=row.id,
                    bot_id=bot.id,
                    trade_id=f"{said.id}#{len(recorded) + 1}",
                    side=row.side,
                    price=execution.price,
                    quantity=execution.quantity,
                    fee=execution.fee,
                    time=now,
                )
                await bot_store.add_fills(session, [fill])
            booked = sum((f.quantity for f in recorded), Decimal(0))
            booked += execution.quantity if execution is not None else 0
            state = said.state
            if booked < said.filled:  # filled, at no price known yet: not ended before it is
                state = OrderState.PARTIALLY_FILLED
            row.status = state.value
            row.filled_quantity, row.average_price, row.fee = booked, said.average, said.fee
            changed = before != (row.status, row.filled_quantity, row.exchange_order_id)
            if changed:
                row.updated_at = now
        if said.unpriced_fee:
            log.warning("fee in a third currency counted as 0", bot_id=str(bot.id))
        if changed:
            await self.rows.publish(bot.id, order_event(row))
        if fill is not None:
            await self.rows.publish(bot.id, fill_event(fill))
        return row

    async def cancel(self, bot: Bot, order: BotOrder) -> BotOrder:
        """Cancel an order on the exchange and return what it became. One the exchange has
        not answered for yet is looked up first; not found, it is remembered as cancelled
        by its owner (`cancel_requested`), and cancelled by `reconcile` once it appears, or
        REJECTED once it has surely not arrived."""
        if order.exchange_order_id is None:
            raw = await self._find(bot, order)
            if raw is None:
                if self._surely_lost(order):
                    return await self.rows.end(
                        bot, order, OrderStatus.REJECTED, "it never reached the exchange"
                    )
                return await self.rows.request_cancel(order)
            order = await self.follow(bot, order, raw)
            if not OrderState(order.status).open or order.exchange_order_id is None:
                return order
        raw = await trading.cancel_order(
            await self.client(bot),
            pair=pair(bot.symbol),
            exchange_order_id=order.exchange_order_id,
            backoff=self.backoff,
        )
        if raw is None:  # the exchange lists it nowhere: not again, if it is old enough
            if self._surely_lost(order):
                return await self.rows.end(
                    bot, order, OrderStatus.CANCELLED, "the exchange has no such order"
                )
            return await self.rows.request_cancel(order)
        return await self.follow(bot, order, raw | {"status": raw.get("status") or "canceled"})

    def _surely_lost(self, order: BotOrder) -> bool:
        """Whether an order the exchange does not know of can be given up: not being sent
        by this process, and older than GIVE_UP_AFTER (exchanges list new orders late)."""
        return (
            order.client_order_id not in self._in_flight
            and self.rows.clock() - order.created_at > GIVE_UP_AFTER
        )

    async def reconcile(self, bot: Bot) -> bool:
        """Bring a LIVE bot's open orders to the exchange's word: poll the known ones (unless
        a watcher streams them), ask about those of unknown outcome by their client order
        id, and cancel those their owner cancelled meanwhile. True when every order's
        outcome is known (the bot may trade), False while one is not, or the exchange could
        not be asked."""
        async with self.rows.sessions() as session:
            open_orders = await bot_store.orders_of(
                session, bot_id=bot.id, statuses=bot_store.OPEN_ORDER_STATUSES
            )
        client = await self.client(bot)
        streaming = await self._watch(bot, client)
        now, known = self.rows.clock(), True
        for order in open_orders:
            try:
                if order.cancel_requested:
                    ended = await self.cancel(bot, order)
                    if OrderState(ended.status).open and ended.exchange_order_id is None:
                        known = False
                elif order.exchange_order_id is not None:
                    if not streaming:
                        await self._poll(bot, client, order)
                elif order.client_order_id in self._in_flight or now - order.created_at < ASK_AFTER:
                    known = False
                else:
                    raw = await self._find(bot, order)
                    if raw is not None:
                        await self.follow(bot, order, raw)
                    elif self._surely_lost(order):
                        await self.rows.end(
                            bot, order, OrderStatus.REJECTED, "it never reached the exchange"
                        )
                    else:
                        known = False
            except trading.ExchangeUnreachable as error:
                log.warning("order follow-up failed", bot_id=str(bot.id), why=str(error))
                known = False
        return known

    async def _poll(self, bot: Bot, client: TradingClient, order: BotOrder) -> None:
        assert order.exchange_order_id is not None
        raw = await trading.fetch_order(
            client,
            pair=pair(bot.symbol),
            exchange_order_id=order.exchange_order_id,
            backoff=self.backoff,
        )
        if raw is not None:
            await self.follow(bot, order, raw)
        elif self._surely_lost(order):  # exchanges answer late for new orders: only then
            await self.rows.end(bot, order, OrderStatus.EXPIRED, "the exchange dropped it")

    async def _watch(self, bot: Bot, client: TradingClient) -> bool:
        """Stream the bot's orders where its exchange can (`watch_orders`); whether a watcher
        runs."""
        has = getattr(client, "has", {}) or {}
        if not has.get("watchOrders") or not hasattr(client, "watch_orders"):
            return False
        task = self._watchers.get(bot.id)
        if task is not None and not task.done():
            return True
        self._watchers[bot.id] = asyncio.create_task(
            self._watching(bot, client), name=f"coinql-orders-{bot.id}"
        )
        return False  # this pass still polls: the stream starts from now

    async def _watching(self, bot: Bot, client: TradingClient) -> None:
        while True:
            try:
                updates = await client.watch_orders(pair(bot.symbol))  # type: ignore[attr-defined]
            except asyncio.CancelledError:
                raise
            except ccxt.BaseError as error:  # the stream dropped: polling takes over
                log.warning("order stream ended", bot_id=str(bot.id), error=type(error).__name__)
                return
            async with self.rows.sessions() as session:
                open_orders = await bot_store.orders_of(
                    session, bot_id=bot.id, statuses=bot_store.OPEN_ORDER_STATUSES
                )
            by_id = {o.exchange_order_id: o for o in open_orders if o.exchange_order_id}
            by_client = {o.client_order_id: o for o in open_orders}
            for raw in updates:
                order = by_id.get(str(raw.get("id"))) or by_client.get(
                    str(raw.get("clientOrderId"))
                )
                if order is not None:
                    await self.follow(bot, order, raw)

    def forget(self, bot_id: uuid.UUID) -> None:
        """Stop streaming a bot's orders (it stopped, or this process no longer runs it)."""
        task = self._watchers.pop(bot_id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """Stop the order streams and close the exchange clients."""
        for bot_id in list(self._watchers):
            self.forget(bot_id)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
