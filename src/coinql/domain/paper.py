"""The paper exchange's book: balances, orders and fills of a simulated account, in Decimal.

A `PaperBook` is the state of one simulated exchange account. It knows nothing of ccxt or of
where prices come from: `coinql.exchanges.paper` puts ccxt's unified interface in front of it
and feeds it the live prices. Its rules, the same for every order whoever places it (a person
or a bot, in [6/8]):

- A MARKET order fills at the next price seen after it was placed (never the price at which it
  was placed), worse by the slippage: a buy at price x (1 + slippage), a sell at
  price x (1 - slippage).
- A LIMIT order fills at its limit price once a price crosses it (at or below the limit for a
  buy, at or above for a sell).
- A STOP_MARKET order becomes a market order once a price reaches its stop (at or above for a
  buy, at or below for a sell), and fills at that price with slippage.
- The fee is the configured share of the filled value, charged in the quote currency.
- An order reserves what it may spend when it is placed (the quote for a buy, at its limit or
  at the last price with slippage and fee, the base for a sell) and is refused with
  `InsufficientFunds` when the free balance cannot cover it; a fill releases the reservation
  and books what was really spent. A market buy whose fill would cost more than the quote the
  account has (the price moved past its reservation) is rejected at that price. Orders fill
  whole.

The book is deterministic: the same prices in the same order give the same fills, and
`to_json`/`from_json` round-trip it exactly, so a store can keep it between restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from coinql.domain.errors import InvalidInput, UserError

ZERO = Decimal(0)
BPS = Decimal(10_000)


class Side(StrEnum):
    """Whether an order buys or sells the base currency."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """How an order is priced (ccxt's names, lower case)."""

    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"


class OrderStatus(StrEnum):
    """ccxt's order states: `open` until filled (`closed`), `canceled` or `rejected`."""

    OPEN = "open"
    CLOSED = "closed"
    CANCELED = "canceled"
    REJECTED = "rejected"


class InsufficientFunds(UserError):
    """The free balance does not cover what the order may spend."""


class OrderNotFound(UserError):
    """No order of this account has the id."""


@dataclass(slots=True)
class PaperOrder:
    """One order; `price` is the limit, `stop_price` the trigger of a STOP_MARKET order."""

    id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    placed_at: int
    status: OrderStatus = OrderStatus.OPEN
    reserved: Decimal = ZERO
    triggered: bool = False
    filled_at: int | None = None
    average: Decimal | None = None
    fee: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class PaperFill:
    """One trade: `cost` is price x amount, before the fee."""

    id: str
    order_id: str
    symbol: str
    side: Side
    type: OrderType
    price: Decimal
    amount: Decimal
    cost: Decimal
    fee: Decimal
    fee_currency: str
    timestamp: int


@dataclass(slots=True)
class PaperBook:
    """A simulated account: balances per currency, its orders and its fills.

    Parameters
    ----------
    quote : str
        The currency every market is quoted in, e.g. "USDT"; symbols read "BASE/QUOTE".
    fee_bps, slippage_bps : Decimal
        The fee on each fill's value and the slippage of market fills, in basis points.
    """

    quote: str
    fee_bps: Decimal = Decimal(10)
    slippage_bps: Decimal = Decimal(5)
    balances: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[str, PaperOrder] = field(default_factory=dict)
    fills: list[PaperFill] = field(default_factory=list)
    last_prices: dict[str, Decimal] = field(default_factory=dict)
    sequence: int = 0

    def deposit(self, currency: str, amount: Decimal) -> None:
        """Credit `amount` of `currency` (a starting balance or a top-up)."""
        if not amount.is_finite() or amount <= 0:
            raise InvalidInput("amount", f"a deposit must be a positive amount, not {amount}")
        self.balances[currency] = self.balances.get(currency, ZERO) + amount

    def used(self, currency: str) -> Decimal:
        """Return what the open orders have reserved of `currency`."""
        return sum(
            (
                order.reserved
                for order in self.orders.values()
                if order.status is OrderStatus.OPEN and self._reserve_currency(order) == currency
            ),
            ZERO,
        )

    def free(self, currency: str) -> Decimal:
        """Return the balance not reserved by open orders."""
        return self.balances.get(currency, ZERO) - self.used(currency)

    def place(
        self,
        *,
        symbol: str,
        side: Side,
        type: OrderType,
        amount: Decimal,
        timestamp: int,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        client_order_id: str | None = None,
    ) -> PaperOrder:
        """Accept an order, reserving what it may spend; it fills on a later `on_price`.

        Raises
        ------
        InvalidInput
            When the amount, limit or stop is missing, not finite or not positive, naming it.
        InsufficientFunds
            When the free balance does not cover the reservation.
        """
        self._base(symbol)
        _positive("amount", amount)
        if type is OrderType.LIMIT:
            _positive("price", price)
        if type is OrderType.STOP_MARKET:
            _positive("stopPrice", stop_price)
        if client_order_id is not None:
            for existing in self.orders.values():
                if existing.client_order_id == client_order_id:
                    return existing
        self.sequence += 1
        order = PaperOrder(
            id=f"paper-{self.sequence}",
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=type,
            amount=amount,
            price=price if type is OrderType.LIMIT else None,
            stop_price=stop_price if type is OrderType.STOP_MARKET else None,
            placed_at=timestamp,
        )
        order.reserved = self._reservation(order)
        currency = self._reserve_currency(order)
        if order.reserved > self.free(currency):
            raise InsufficientFunds(
                f"{symbol} {side} of {amount} needs {order.reserved} {currency}, "
                f"{self.free(currency)} is free"
            )
        self.orders[order.id] = order
        return order

    def cancel(self, order_id: str) -> PaperOrder:
        """Cancel an open order and release its reservation; a finished order is unchanged."""
        order = self.order(order_id)
        if order.status is OrderStatus.OPEN:
            order.status = OrderStatus.CANCELED
            order.reserved = ZERO
        return order

    def order(self, order_id: str) -> PaperOrder:
        """Return the order with this id, or raise `OrderNotFound`."""
        try:
            return self.orders[order_id]
        except KeyError:
            raise OrderNotFound(f"no order {order_id}") from None

    def on_price(self, symbol: str, price: Decimal, timestamp: int) -> list[PaperFill]:
        """Take a new price of `symbol` and fill the open orders it reaches, oldest first."""
        _positive("price", price)
        self.last_prices[symbol] = price
        fills = []
        for order in list(self.orders.values()):
            if order.symbol != symbol or order.status is not OrderStatus.OPEN:
                continue
            fill_price = self._fill_price(order, price, timestamp)
            if fill_price is None:
                continue
            fill = self._fill(order, fill_price, timestamp)
            if fill is not None:
                fills.append(fill)
        return fills

    def _fill_price(self, order: PaperOrder, price: Decimal, timestamp: int) -> Decimal | None:
        buy = order.side is Side.BUY
        if order.type is OrderType.LIMIT:
            assert order.price is not None
            crossed = price <= order.price if buy else price >= order.price
            return order.price if crossed else None
        if order.type is OrderType.STOP_MARKET and not order.triggered:
            assert order.stop_price is not None
            order.triggered = price >= order.stop_price if buy else price <= order.stop_price
            if not order.triggered:
                return None
        elif timestamp <= order.placed_at:
            return None  # a market order waits for the next price
        return self._slipped(price, order.side)

    def _fill(self, order: PaperOrder, price: Decimal, timestamp: int) -> PaperFill | None:
        base = self._base(order.symbol)
        cost = price * order.amount
        fee = cost * self.fee_bps / BPS
        sign = 1 if order.side is Side.BUY else -1
        if order.side is Side.BUY and cost + fee > self.free(self.quote) + order.reserved:
            order.status = OrderStatus.REJECTED
            order.reserved = ZERO
            return None
        self.balances[base] = self.balances.get(base, ZERO) + sign * order.amount
        self.balances[self.quote] = self.balances.get(self.quote, ZERO) - sign * cost - fee
        order.status = OrderStatus.CLOSED
        order.reserved = ZERO
        order.filled_at = timestamp
        order.average = price
        order.fee = fee
        fill = PaperFill(
            id=f"{order.id}-fill",
            order_id=order.id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            price=price,
            amount=order.amount,
            cost=cost,
            fee=fee,
            fee_currency=self.quote,
            timestamp=timestamp,
        )
        self.fills.append(fill)
        return fill

    def _slipped(self, price: Decimal, side: Side) -> Decimal:
        slip = self.slippage_bps / BPS
        return price * (1 + slip) if side is Side.BUY else price * (1 - slip)

    def _reservation(self, order: PaperOrder) -> Decimal:
        if order.side is Side.SELL:
            return order.amount
        if order.type is OrderType.LIMIT:
            assert order.price is not None
            reference = order.price
        elif order.type is OrderType.STOP_MARKET:
            assert order.stop_price is not None
            reference = self._slipped(order.stop_price, Side.BUY)
        else:
            last = self.last_prices.get(order.symbol)
            if last is None:
                raise InvalidInput("symbol", f"{order.symbol} has no price yet")
            reference = self._slipped(last, Side.BUY)
        return reference * order.amount * (1 + self.fee_bps / BPS)

    def _reserve_currency(self, order: PaperOrder) -> str:
        return self.quote if order.side is Side.BUY else self._base(order.symbol)

    def _base(self, symbol: str) -> str:
        base, _, quote = symbol.partition("/")
        if not base or quote != self.quote:
            raise InvalidInput("symbol", f"{symbol!r} is not a market quoted in {self.quote}")
        return base

    def to_json(self) -> dict[str, Any]:
        """Return the book as JSON-ready data; Decimals as strings, so nothing is rounded."""
        return {
            "quote": self.quote,
            "fee_bps": str(self.fee_bps),
            "slippage_bps": str(self.slippage_bps),
            "balances": {currency: str(amount) for currency, amount in self.balances.items()},
            "orders": [_order_json(order) for order in self.orders.values()],
            "fills": [_fill_json(fill) for fill in self.fills],
            "last_prices": {symbol: str(price) for symbol, price in self.last_prices.items()},
            "sequence": self.sequence,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PaperBook:
        """Rebuild a book written by `to_json`."""
        orders = [_order_from_json(item) for item in data["orders"]]
        return cls(
            quote=data["quote"],
            fee_bps=Decimal(data["fee_bps"]),
            slippage_bps=Decimal(data["slippage_bps"]),
            balances={currency: Decimal(v) for currency, v in data["balances"].items()},
            orders={order.id: order for order in orders},
            fills=[_fill_from_json(item) for item in data["fills"]],
            last_prices={symbol: Decimal(v) for symbol, v in data["last_prices"].items()},
            sequence=data["sequence"],
        )


def _positive(name: str, value: Decimal | None) -> None:
    if value is None:
        raise InvalidInput(name, f"{name} is required for this order type")
    if not value.is_finite() or value <= 0:
        raise InvalidInput(name, f"{name} must be a positive number, not {value}")


_DECIMAL_ORDER_FIELDS = ("amount", "price", "stop_price", "reserved", "average", "fee")


def _order_json(order: PaperOrder) -> dict[str, Any]:
    data = {name: getattr(order, name) for name in PaperOrder.__slots__}
    for name in _DECIMAL_ORDER_FIELDS:
        data[name] = None if data[name] is None else str(data[name])
    return data


def _order_from_json(data: dict[str, Any]) -> PaperOrder:
    values = dict(data)
    for name in _DECIMAL_ORDER_FIELDS:
        values[name] = None if values[name] is None else Decimal(values[name])
    values["side"] = Side(values["side"])
    values["type"] = OrderType(values["type"])
    values["status"] = OrderStatus(values["status"])
    return PaperOrder(**values)


def _fill_json(fill: PaperFill) -> dict[str, Any]:
    data = {name: getattr(fill, name) for name in PaperFill.__slots__}
    for name in ("price", "amount", "cost", "fee"):
        data[name] = str(data[name])
    return data


def _fill_from_json(data: dict[str, Any]) -> PaperFill:
    values = dict(data)
    for name in ("price", "amount", "cost", "fee"):
        values[name] = Decimal(values[name])
    return PaperFill(**{**values, "side": Side(values["side"]), "type": OrderType(values["type"])})
