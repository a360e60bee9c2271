"""An order made ready to send, before anything is written or sent.

It is rounded to the market's precision and checked against its limits and the account's free
balance.

The rules come from ccxt's unified market structure (`MarketRules.from_ccxt`): `precision`
(tick sizes, or decimal places, or significant digits, by the exchange's precision mode) and
`limits` (amount, price and cost, each with a min and a max). As ccxt's own `amount_to_precision`
and `price_to_precision` do, an amount is truncated (never more than asked) and a price rounded
to the nearest step. Every refusal is typed and names its field: `BelowMinimum`, `AboveMaximum`,
`InvalidPrice`, `InsufficientBalance`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import IntEnum, StrEnum
from typing import Any

from coinql.domain.errors import InvalidInput


class OrderKind(StrEnum):
    """The order types a bot or a user may place."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"


class PrecisionMode(IntEnum):
    """ccxt's precision modes (`exchange.precisionMode`), by ccxt's own numbers."""

    DECIMAL_PLACES = 2
    SIGNIFICANT_DIGITS = 3
    TICK_SIZE = 4


class BelowMinimum(InvalidInput):
    """An amount, price or order value under the market's minimum."""


class AboveMaximum(InvalidInput):
    """An amount, price or order value over the market's maximum."""


class InvalidPrice(InvalidInput):
    """A price missing where the order type needs one, or present where it takes none.

    Also a price that is not positive, or rounds to nothing.
    """


class InsufficientBalance(InvalidInput):
    """More than the account holds free (the quote for a buy, the base for a sell)."""


@dataclass(frozen=True, slots=True)
class MarketRules:
    """One market's precision and limits; None where the exchange gives none.

    Parameters
    ----------
    amount_precision, price_precision : Decimal, optional
        A step (TICK_SIZE), a number of decimal places or of significant digits.
    mode : PrecisionMode
    min_amount, max_amount, min_price, max_price, min_cost, max_cost : Decimal, optional
    """

    amount_precision: Decimal | None = None
    price_precision: Decimal | None = None
    mode: PrecisionMode = PrecisionMode.TICK_SIZE
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    min_cost: Decimal | None = None
    max_cost: Decimal | None = None

    @classmethod
    def from_ccxt(cls, market: Mapping[str, Any], mode: int) -> MarketRules:
        """Return the rules of a ccxt unified market (`exchange.markets[symbol]`)."""
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}

        def limit(name: str, bound: str) -> Decimal | None:
            return _number((limits.get(name) or {}).get(bound))

        return cls(
            amount_precision=_number(precision.get("amount")),
            price_precision=_number(precision.get("price")),
            mode=PrecisionMode(mode),
            min_amount=limit("amount", "min"),
            max_amount=limit("amount", "max"),
            min_price=limit("price", "min"),
            max_price=limit("price", "max"),
            min_cost=limit("cost", "min"),
            max_cost=limit("cost", "max"),
        )

    def amount(self, value: Decimal) -> Decimal:
        """Return `value` truncated to the amount precision."""
        return _to_precision(value, self.amount_precision, self.mode, ROUND_DOWN)

    def price(self, value: Decimal) -> Decimal:
        """Return `value` rounded to the nearest price step."""
        return _to_precision(value, self.price_precision, self.mode, ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class ReadyOrder:
    """An order as it will be sent: amount and price at the market's precision."""

    side: str  # "buy" or "sell"
    kind: OrderKind
    quantity: Decimal
    price: Decimal | None  # the limit price, or a stop's trigger
    cost: Decimal  # quantity at the price (the expected price for a market order)


def prepare_order(
    rules: MarketRules,
    *,
    side: str,
    kind: OrderKind,
    quantity: Decimal,
    price: Decimal | None,
    expected_price: Decimal,
    free_quote: Decimal,
    free_base: Decimal,
    fee_rate: Decimal = Decimal(0),
) -> ReadyOrder:
    """Round an order to the market's precision and check it before it is written or sent.

    Parameters
    ----------
    rules : MarketRules
    side : str
        "buy" or "sell".
    kind : OrderKind
        MARKET takes no price; LIMIT its limit price; STOP_MARKET its trigger price.
    quantity : Decimal
        Units of the base currency.
    price : Decimal, optional
    expected_price : Decimal
        The market's price now, what a market order's value is reckoned at.
    free_quote, free_base : Decimal
        The account's free balances: a buy spends quote (fee included), a sell the base.
    fee_rate : Decimal, default 0
        The fee as a fraction of the order's value, reserved on a buy.

    Returns
    -------
    ReadyOrder

    Raises
    ------
    InvalidPrice, BelowMinimum, AboveMaximum, InsufficientBalance, InvalidInput
        Each naming its field (`quantity` or `price`).
    """
    if side not in ("buy", "sell"):
        raise InvalidInput("side", "side is buy or sell")
    if kind is OrderKind.MARKET and price is not None:
        raise InvalidPrice("price", "a MARKET order takes no price")
    if kind is not OrderKind.MARKET and price is None:
        raise InvalidPrice("price", f"a {kind.value} order needs a price")
    if price is not None and price <= 0:
        raise InvalidPrice("price", "price must be more than 0")
    if quantity <= 0:
        raise InvalidInput("quantity", "quantity must be more than 0")
    amount = rules.amount(quantity)
    if amount <= 0:
        raise BelowMinimum(
            "quantity", f"quantity {quantity} is below the market's step {rules.amount_precision}"
        )
    rounded = None if price is None else rules.price(price)
    if rounded is not None and rounded <= 0:
        raise InvalidPrice("price", f"price {price} is below the market's step")
    _within("quantity", amount, rules.min_amount, rules.max_amount, "quantity")
    if rounded is not None:
        _within("price", rounded, rules.min_price, rules.max_price, "price")
    cost = amount * (rounded if kind is OrderKind.LIMIT and rounded is not None else expected_price)
    _within("quantity", cost, rules.min_cost, rules.max_cost, "order value")
    if side == "buy" and cost * (1 + fee_rate) > free_quote:
        raise InsufficientBalance(
            "quantity",
            f"the order needs {cost * (1 + fee_rate):f} of the quote currency, {free_quote:f}"
            " is free",
        )
    if side == "sell" and amount > free_base:
        raise InsufficientBalance("quantity", f"the order sells {amount:f}, {free_base:f} is free")
    return ReadyOrder(side, kind, amount, rounded, cost)


def _within(
    field: str, value: Decimal, low: Decimal | None, high: Decimal | None, what: str
) -> None:
    if low is not None and value < low:
        raise BelowMinimum(field, f"{what} {value:f} is below the market's minimum {low:f}")
    if high is not None and high > 0 and value > high:
        raise AboveMaximum(field, f"{what} {value:f} is above the market's maximum {high:f}")


def _to_precision(
    value: Decimal, precision: Decimal | None, mode: PrecisionMode, rounding: str
) -> Decimal:
    if precision is None:
        return value
    if mode is PrecisionMode.TICK_SIZE:
        steps = (value / precision).to_integral_value(rounding=rounding)
        return _plain(steps * precision)
    digits = int(precision)
    if mode is PrecisionMode.DECIMAL_PLACES:
        return _plain(value.quantize(Decimal(1).scaleb(-digits), rounding=rounding))
    if value == 0:
        return value
    exponent = value.adjusted() - digits + 1  # SIGNIFICANT_DIGITS
    return _plain(value.quantize(Decimal(1).scaleb(exponent), rounding=rounding))


def _plain(value: Decimal) -> Decimal:
    """Return `value` without trailing zeros and never in exponent form ("1E+1" -> "10")."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    return (
        normalized.quantize(Decimal(1))
        if isinstance(exponent, int) and exponent > 0
        else normalized
    )


def _number(value: object) -> Decimal | None:
    if value is None:
        return None
    found = Decimal(str(value))
    return found if found.is_finite() else None
