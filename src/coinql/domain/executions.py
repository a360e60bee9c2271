"""What an exchange says of an order, in coinql's terms: its state and the fills it adds.

An exchange reports an order in ccxt's unified structure: `status` ("open", "closed",
"canceled", "expired", "rejected"), `filled` (the amount executed so far), `average` (its
average price) and `fee` (or `fees`), each possibly missing. `read_order` turns that into an
`ExchangeOrder`; an open order with something filled is PARTIALLY_FILLED. `next_fill` gives
what was executed since the fills already recorded, so that polling an order (or streaming
it) any number of times records each execution once: the recorded fills and the new one add
up to the exchange's `filled`, at its `average` price and its fee.

Fees are kept in the quote currency: a fee charged in the base currency is valued at the
order's average price; one charged in a third currency (an exchange's own token) cannot be
valued here and counts as zero, which `ExchangeOrder.unpriced_fee` says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class OrderState(StrEnum):
    """The states of an order (the store's and the schema's `OrderStatus`)."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def open(self) -> bool:
        """Whether the order may still fill."""
        return self in (OrderState.NEW, OrderState.PARTIALLY_FILLED)


_CCXT_STATES = {
    "closed": OrderState.FILLED,
    "canceled": OrderState.CANCELLED,
    "cancelled": OrderState.CANCELLED,
    "expired": OrderState.EXPIRED,
    "rejected": OrderState.REJECTED,
}


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """An order as its exchange reports it, amounts in Decimal.

    Attributes
    ----------
    id : str
        The exchange's order id.
    client_order_id : str or None
        The id it was sent with, when the exchange echoes it.
    state : OrderState
        Its state in coinql's terms.
    filled : Decimal
        The amount executed so far (base currency).
    average : Decimal or None
        The average price of what was executed; None when nothing was.
    fee : Decimal
        Fees so far, in the quote currency.
    unpriced_fee : bool
        True when part of the fee was charged in a currency other than base or quote.
    """

    id: str
    client_order_id: str | None
    state: OrderState
    filled: Decimal
    average: Decimal | None
    fee: Decimal
    unpriced_fee: bool = False


@dataclass(frozen=True, slots=True)
class Execution:
    """What was executed since the recorded fills: an amount at a price, with its fee."""

    quantity: Decimal
    price: Decimal
    fee: Decimal


def read_order(raw: Mapping[str, Any], *, base: str, quote: str) -> ExchangeOrder:
    """Read a ccxt unified order.

    Parameters
    ----------
    raw : mapping
        The order as ccxt returns it from `create_order`, `fetch_order`, `watch_orders`, ...
    base, quote : str
        The market's currencies, to value the fee in the quote.

    Returns
    -------
    ExchangeOrder
        An order without a status is taken as open (ccxt's `create_order` often answers
        with the id alone); missing amounts are zero, a missing average None.
    """
    filled = _decimal(raw.get("filled")) or Decimal(0)
    average = _decimal(raw.get("average"))
    if average is None and filled > 0:
        cost = _decimal(raw.get("cost"))
        average = cost / filled if cost is not None and cost > 0 else _decimal(raw.get("price"))
    status = str(raw.get("status") or "open").lower()
    state = _CCXT_STATES.get(status)
    if state is None:
        state = OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.NEW
    fee, unpriced = _fee_in_quote(raw, base=base, quote=quote, average=average)
    client_id = raw.get("clientOrderId")
    return ExchangeOrder(
        id=str(raw["id"]),
        client_order_id=None if client_id is None else str(client_id),
        state=state,
        filled=filled,
        average=average,
        fee=fee,
        unpriced_fee=unpriced,
    )


def next_fill(
    order: ExchangeOrder, recorded: Iterable[tuple[Decimal, Decimal, Decimal]]
) -> Execution | None:
    """Return what the exchange reports executed beyond the recorded fills, or None.

    Parameters
    ----------
    order : ExchangeOrder
        The exchange's latest word on the order.
    recorded : iterable of (quantity, price, fee)
        The fills of the order recorded so far.

    Returns
    -------
    Execution or None
        Its quantity is `order.filled` less what is recorded; its price makes the recorded
        fills and it average `order.average`; its fee is the rest of `order.fee` (never
        negative). None when nothing more was executed, or no average price is known yet.
    """
    quantity = cost = fees = Decimal(0)
    for amount, price, fee in recorded:
        quantity += amount
        cost += amount * price
        fees += fee
    more = order.filled - quantity
    if more <= 0 or order.average is None:
        return None
    price = (order.average * order.filled - cost) / more
    if price <= 0:  # an exchange's rounded average: the new part at the average itself
        price = order.average
    return Execution(more, price, max(order.fee - fees, Decimal(0)))


def _fee_in_quote(
    raw: Mapping[str, Any], *, base: str, quote: str, average: Decimal | None
) -> tuple[Decimal, bool]:
    fees = raw.get("fees") or ([raw["fee"]] if raw.get("fee") else [])
    total, unpriced = Decimal(0), False
    for fee in fees:
        cost = _decimal(fee.get("cost")) if isinstance(fee, Mapping) else None
        if not cost:
            continue
        currency = str(fee.get("currency") or quote).upper()
        if currency == quote.upper():
            total += cost
        elif currency == base.upper() and average is not None:
            total += cost * average
        else:
            unpriced = True
    return total, unpriced


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
