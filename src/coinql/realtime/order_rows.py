"""What every bot order needs, paper or live: the account's currency, a price, the events
an order and a fill publish, and the writes that end or annotate an order."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.realtime import channels
from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.hub import Hub
from coinql.store.bots import Bot, BotFillRow, BotOrder, OrderStatus

QUOTE = "USDT"  # a bot's account is kept in it, as the demo candles are (USD as USDT)


def pair(symbol: str) -> str:
    return f"{symbol}/{QUOTE}"


@dataclass(frozen=True, slots=True)
class Quote:
    """A price of one asset at a time; for the paper exchange, its price source."""

    base: str
    price: Decimal
    timestamp: int

    def latest(self, base: str) -> tuple[Decimal, int] | None:
        return (self.price, self.timestamp) if base == self.base else None

    def bases(self) -> Iterable[str]:
        return [self.base]


def fill_event(fill: BotFillRow) -> dict[str, Any]:
    return {
        "kind": "fill",
        "orderId": str(fill.order_id),
        "side": fill.side,
        "price": str(fill.price),
        "quantity": str(fill.quantity),
        "fee": str(fill.fee),
    }


def order_event(order: BotOrder) -> dict[str, Any]:
    return {
        "kind": "order",
        "orderId": str(order.id),
        "side": order.side,
        "status": order.status,
        "price": None if order.average_price is None else str(order.average_price),
        "quantity": str(order.quantity),
    }


class OrderRows:
    """The store and the bot's channel, as the order paths write and publish them."""

    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], hub: Hub, clock: Clock = utc_now
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.clock = clock

    async def publish(self, bot_id: uuid.UUID, event: dict[str, Any]) -> None:
        await self.hub.publish(
            channels.bot(bot_id),
            {"botId": str(bot_id), "timestamp": self.clock().isoformat(), **event},
        )

    async def end(self, bot: Bot, order: BotOrder, status: OrderStatus, error: str) -> BotOrder:
        """End an order in `status` (REJECTED, or what the exchange's silence means), saying
        why; published. An order another writer ended first stays as that one left it."""
        async with self.sessions() as session, session.begin():
            stored = await session.get(BotOrder, order.id, with_for_update=True)
            assert stored is not None
            if stored.status not in (OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value):
                return stored
            stored.status, stored.error, stored.updated_at = status.value, error[:300], self.clock()
        await self.publish(bot.id, order_event(stored))
        return stored

    async def request_cancel(self, order: BotOrder) -> BotOrder:
        """Remember that an order's owner cancelled it before its exchange answered for it."""
        async with self.sessions() as session, session.begin():
            stored = await session.get(BotOrder, order.id)
            assert stored is not None
            stored.cancel_requested, stored.updated_at = True, self.clock()
            stored.error = "cancel requested: the exchange has not answered for it yet"
        return stored

    async def note(self, order: BotOrder, error: str) -> BotOrder:
        """Say what is known of an order that stays as it is."""
        async with self.sessions() as session, session.begin():
            stored = await session.get(BotOrder, order.id)
            assert stored is not None
            stored.error, stored.updated_at = error[:300], self.clock()
        return stored
