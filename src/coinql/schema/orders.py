"""Bots' orders and fills, their typed refusals, and the mutations that place and cancel them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

import strawberry
from strawberry.types import Info

from coinql.domain.bots import BotSide, RiskRefused
from coinql.domain.errors import UserError
from coinql.domain.ledger import POSITIVE_AMOUNT
from coinql.domain.orders import (
    AboveMaximum,
    BelowMinimum,
    InsufficientBalance,
    InvalidPrice,
    OrderKind,
)
from coinql.resolvers import bots as bot_resolvers
from coinql.resolvers.context import Context
from coinql.schema.bounds import bounded
from coinql.schema.errors import Conflict, Error, Forbidden, InvalidInput, NotAuthenticated
from coinql.schema.errors import NotFound as NotFoundError
from coinql.schema.nodes import OwnedNode, decode_id, global_id
from coinql.schema.permissions import IsAuthenticated
from coinql.store import bots as bot_store

strawberry.enum(BotSide, name="OrderSide", description="Which way an order goes.")
strawberry.enum(OrderKind, name="OrderType", description="How an order is priced.")
strawberry.enum(bot_store.OrderStatus, description="Where an order stands.")
ORDER_CURSOR = "order"


@strawberry.type(description="An order the bot's risk limits refuse; nothing was sent.")
class RiskLimitRefused(Error):
    limit: str = strawberry.field(description="The setting: maxOrderValue, maxOpenOrders, ...")

    @classmethod
    def from_exception(cls, error: RiskRefused) -> Self:
        return cls(message=error.message, limit=error.limit)


@strawberry.type(
    name="InsufficientBalance",
    description="More than the bot's account holds free; nothing was sent.",
)
class InsufficientBalanceError(InvalidInput):
    pass


@strawberry.type(
    name="BelowMinimum",
    description="Under the market's minimum amount, price or value; nothing was sent.",
)
class BelowMinimumError(InvalidInput):
    pass


@strawberry.type(
    name="AboveMaximum",
    description="Over the market's maximum amount, price or value; nothing was sent.",
)
class AboveMaximumError(InvalidInput):
    pass


@strawberry.type(
    name="InvalidPrice",
    description="A price missing, present where it takes none, or not positive.",
)
class InvalidPriceError(InvalidInput):
    pass


ERROR_TYPES: list[tuple[type[UserError], Any]] = [
    (RiskRefused, RiskLimitRefused),
    (InsufficientBalance, InsufficientBalanceError),
    (BelowMinimum, BelowMinimumError),
    (AboveMaximum, AboveMaximumError),
    (InvalidPrice, InvalidPriceError),
]


@strawberry.type(description="An order of a bot's; written before it was sent.")
class Order(OwnedNode):
    side: BotSide
    type: OrderKind
    status: bot_store.OrderStatus
    origin: str = strawberry.field(description="SIGNAL, MANUAL, CLOSE or EMERGENCY.")
    quantity: Decimal
    price: Decimal | None = strawberry.field(description="The limit, or a stop's trigger.")
    filled_quantity: Decimal
    average_price: Decimal | None
    fee: Decimal
    error: str | None = strawberry.field(description="Why the exchange refused it.")
    created_at: datetime
    sent_at: datetime | None
    model: strawberry.Private[bot_store.BotOrder]

    @classmethod
    def from_model(cls, row: bot_store.BotOrder) -> Self:
        return cls(
            side=BotSide(row.side),
            type=OrderKind(row.kind),
            status=bot_store.OrderStatus(row.status),
            origin=row.origin,
            quantity=row.quantity,
            price=row.price,
            filled_quantity=row.filled_quantity,
            average_price=row.average_price,
            fee=row.fee,
            error=row.error,
            created_at=row.created_at,
            sent_at=row.sent_at,
            model=row,
        )

    @staticmethod
    async def load_owned(context: Context, order_id: uuid.UUID) -> Any:
        return await bot_resolvers.get_order(context, order_id=order_id)


@strawberry.type
class Fill:
    id: strawberry.ID
    order_id: strawberry.ID
    side: BotSide
    price: Decimal
    quantity: Decimal
    fee: Decimal
    time: datetime

    @classmethod
    def from_model(cls, row: bot_store.BotFillRow) -> Fill:
        return cls(
            id=strawberry.ID(str(row.id)),
            order_id=global_id("Order", row.order_id),
            side=BotSide(row.side),
            price=row.price,
            quantity=row.quantity,
            fee=row.fee,
            time=row.time,
        )


@strawberry.input
class PlaceOrderInput:
    bot_id: strawberry.ID
    side: BotSide
    type: OrderKind
    quantity: Decimal = bounded(POSITIVE_AMOUNT, description="Units of the bot's symbol.")
    price: Decimal | None = bounded(
        POSITIVE_AMOUNT,
        default=None,
        description="LIMIT: the limit; STOP_MARKET: the trigger; MARKET: none.",
    )


OrderResult = Annotated[
    Order
    | RiskLimitRefused
    | InsufficientBalanceError
    | BelowMinimumError
    | AboveMaximumError
    | InvalidPriceError
    | InvalidInput
    | NotFoundError
    | Conflict
    | Forbidden
    | NotAuthenticated,
    strawberry.union("OrderResult"),
]


@strawberry.type
class OrderMutation:
    @strawberry.mutation(
        description="A manual order on a bot's account, checked against its risk limits.",
        permission_classes=[IsAuthenticated],
    )
    async def place_order(
        self, info: Info[Context, None], input: PlaceOrderInput
    ) -> OrderResult | None:
        row = await bot_resolvers.place_order(
            info.context,
            bot_id=decode_id(input.bot_id, "Bot"),
            side=input.side,
            kind=input.type,
            quantity=input.quantity,
            price=input.price,
        )
        return Order.from_model(row)

    @strawberry.mutation(description="Cancel an open order.", permission_classes=[IsAuthenticated])
    async def cancel_order(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> OrderResult | None:
        row = await bot_resolvers.cancel_order(info.context, order_id=decode_id(id, "Order"))
        return Order.from_model(row)
