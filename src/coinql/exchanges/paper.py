"""coinql's `paper` exchange: a simulated account behind ccxt's unified interface.

`PaperExchange` answers the ccxt calls coinql makes of a real exchange (`fetch_balance`,
`fetch_my_trades`, `fetch_ticker`, `create_order`, `cancel_order`, `fetch_order`,
`fetch_open_orders`, `load_markets`), in ccxt's shapes and with ccxt's exception classes, so a
connection to it runs the same code as one to Binance. Its book is a
`coinql.domain.paper.PaperBook`; its prices come from a `PriceSource` (the live feed, demo or
real), read before every call so fills follow the market the account sees. It needs no keys:
any key authenticates, and it reports read and trade permissions, never withdraw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import ccxt

from coinql.domain.errors import InvalidInput
from coinql.domain.paper import (
    InsufficientFunds,
    OrderNotFound,
    OrderStatus,
    OrderType,
    PaperBook,
    PaperFill,
    PaperOrder,
    Side,
)


class PriceSource(Protocol):
    """Where a paper account's prices come from: the live feed, demo or real."""

    def latest(self, base: str) -> tuple[Decimal, int] | None:
        """Return the latest price of `base` ("BTC") and its time in epoch ms, or None."""
        ...

    def bases(self) -> Iterable[str]:
        """Return the base currencies it prices."""
        ...


PERMISSIONS = {"read": True, "trade": True, "withdraw": False}
AMOUNT_STEP = 1e-8
PRICE_STEP = 1e-8


class PaperExchange:
    """A ccxt-shaped client of one simulated account.

    Parameters
    ----------
    book : PaperBook
        The account; the caller loads and stores it (`PaperBook.to_json`).
    prices : PriceSource
        Where the account's market prices come from.
    """

    id = "paper"
    name = "coinql paper"

    def __init__(self, book: PaperBook, prices: PriceSource) -> None:
        self.book = book
        self.prices = prices
        self.sandbox = False

    def set_sandbox_mode(self, enabled: bool) -> None:
        """Accept ccxt's sandbox switch: every paper account is simulated either way."""
        self.sandbox = enabled

    async def fetch_permissions(self) -> dict[str, bool]:
        """Return what a paper key may do: read and trade, never withdraw."""
        return dict(PERMISSIONS)

    async def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        """Return a spot market BASE/QUOTE for every currency the price source knows of."""
        quote = self.book.quote
        return {
            f"{b}/{quote}": _market(b, quote) for b in sorted(self.prices.bases()) if b != quote
        }

    async def fetch_ticker(
        self, symbol: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Return the last price of `symbol` as a ccxt ticker."""
        price, timestamp = self._observe(symbol)
        last = float(price)
        return {
            "symbol": symbol,
            "timestamp": timestamp,
            "datetime": _iso(timestamp),
            "last": last,
            "close": last,
            "bid": last,
            "ask": last,
            "info": {"price": str(price)},
        }

    async def fetch_balance(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Return the balances in ccxt's shape: per currency and as free/used/total maps."""
        self._observe_all()
        balance: dict[str, Any] = {"info": {}, "free": {}, "used": {}, "total": {}}
        for currency, total in sorted(self.book.balances.items()):
            used = self.book.used(currency)
            entry = {"free": float(total - used), "used": float(used), "total": float(total)}
            balance[currency] = entry
            for key, value in entry.items():
                balance[key][currency] = value
            balance["info"][currency] = str(total)
        balance["timestamp"] = None
        balance["datetime"] = None
        return balance

    async def fetch_my_trades(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Return the account's fills from `since` (epoch ms, inclusive), oldest first."""
        self._observe_all()
        trades = [
            _trade(fill)
            for fill in self.book.fills
            if (symbol is None or fill.symbol == symbol)
            and (since is None or fill.timestamp >= since)
        ]
        return trades[:limit] if limit is not None else trades

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float | Decimal | str,
        price: float | Decimal | str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Place an order; `params` may carry `clientOrderId` and `stopPrice`/`triggerPrice`.

        A repeated `clientOrderId` returns the order it first placed instead of a second one.
        """
        params = params or {}
        _, timestamp = self._observe(symbol)
        stop = params.get("stopPrice", params.get("triggerPrice"))
        try:
            order = self.book.place(
                symbol=symbol,
                side=Side(side.lower()),
                type=OrderType(type.lower()),
                amount=_decimal(amount),
                price=None if price is None else _decimal(price),
                stop_price=None if stop is None else _decimal(stop),
                client_order_id=params.get("clientOrderId"),
                timestamp=timestamp,
            )
        except InsufficientFunds as error:
            raise ccxt.InsufficientFunds(f"paper {error.message}") from None
        except InvalidInput as error:
            raise ccxt.InvalidOrder(f"paper {error.message}") from None
        except ValueError:
            raise ccxt.InvalidOrder(
                f"paper: unknown order type {type!r} or side {side!r}"
            ) from None
        return _order(order, self.book)

    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Cancel an open order; a filled or cancelled one is returned as it is."""
        return _order(self._lookup(lambda: self.book.cancel(id)), self.book)

    async def fetch_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Return one order, after the latest prices have had their chance to fill it."""
        self._observe_all()
        return _order(self._lookup(lambda: self.book.order(id)), self.book)

    async def fetch_open_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Return the orders still open, oldest first."""
        self._observe_all()
        return [
            _order(order, self.book)
            for order in self.book.orders.values()
            if order.status is OrderStatus.OPEN and (symbol is None or order.symbol == symbol)
        ][:limit]

    async def close(self) -> None:
        """Release nothing: a paper account holds no connection."""

    def _lookup(self, find: Callable[[], PaperOrder]) -> PaperOrder:
        try:
            return find()
        except OrderNotFound as error:
            raise ccxt.OrderNotFound(f"paper {error.message}") from None

    def _observe(self, symbol: str) -> tuple[Decimal, int]:
        base = _base(symbol)
        quote = self.book.quote
        if not symbol.endswith(f"/{quote}") or base == quote:
            raise ccxt.BadSymbol(f"paper has no market {symbol}")
        latest = self.prices.latest(base)
        if latest is None:
            raise ccxt.BadSymbol(f"paper has no price for {symbol}")
        price, timestamp = latest
        self.book.on_price(symbol, price, timestamp)
        return price, timestamp

    def _observe_all(self) -> None:
        symbols = {order.symbol for order in self.book.orders.values()}
        for symbol in sorted(symbols):
            latest = self.prices.latest(_base(symbol))
            if latest is not None:
                self.book.on_price(symbol, *latest)


def _base(symbol: str) -> str:
    return symbol.partition("/")[0]


def _decimal(value: float | Decimal | str) -> Decimal:
    # str() first: Decimal(0.1) would carry the binary float's 55 digits.
    try:
        return Decimal(str(value))
    except ArithmeticError:
        raise ccxt.InvalidOrder(f"paper: {value!r} is not a number") from None


def _iso(timestamp: int) -> str:
    moment = datetime.fromtimestamp(timestamp / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _market(base: str, quote: str) -> dict[str, Any]:
    return {
        "id": f"{base}{quote}",
        "symbol": f"{base}/{quote}",
        "base": base,
        "quote": quote,
        "type": "spot",
        "spot": True,
        "active": True,
        "precision": {"amount": AMOUNT_STEP, "price": PRICE_STEP},
        "limits": {
            "amount": {"min": AMOUNT_STEP, "max": None},
            "price": {"min": PRICE_STEP, "max": None},
            "cost": {"min": 1.0, "max": None},
        },
    }


def _trade(fill: PaperFill) -> dict[str, Any]:
    return {
        "id": fill.id,
        "order": fill.order_id,
        "timestamp": fill.timestamp,
        "datetime": _iso(fill.timestamp),
        "symbol": fill.symbol,
        "type": str(fill.type),
        "side": str(fill.side),
        "takerOrMaker": "maker" if fill.type is OrderType.LIMIT else "taker",
        "price": float(fill.price),
        "amount": float(fill.amount),
        "cost": float(fill.cost),
        "fee": {"cost": float(fill.fee), "currency": fill.fee_currency},
        "info": {"price": str(fill.price), "amount": str(fill.amount), "fee": str(fill.fee)},
    }


def _order(order: PaperOrder, book: PaperBook) -> dict[str, Any]:
    filled = order.amount if order.status is OrderStatus.CLOSED else Decimal(0)
    average = None if order.average is None else float(order.average)
    return {
        "id": order.id,
        "clientOrderId": order.client_order_id,
        "timestamp": order.placed_at,
        "datetime": _iso(order.placed_at),
        "lastTradeTimestamp": order.filled_at,
        "symbol": order.symbol,
        "type": str(order.type),
        "side": str(order.side),
        "price": float(order.price) if order.price is not None else average,
        "stopPrice": None if order.stop_price is None else float(order.stop_price),
        "triggerPrice": None if order.stop_price is None else float(order.stop_price),
        "amount": float(order.amount),
        "filled": float(filled),
        "remaining": float(order.amount - filled),
        "cost": float(filled * order.average) if order.average is not None else 0.0,
        "average": average,
        "status": str(order.status),
        "fee": {"cost": float(order.fee), "currency": book.quote},
        "trades": [],
        "info": {"id": order.id, "status": str(order.status)},
    }
