"""Stand-ins with ccxt's exchange interface and CoinGecko's provider interface, returning
ccxt-shaped data. No network: what the production path gets from real exchanges, these give."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import ccxt

from coinql.domain.candles import DAY_MS
from coinql.exchanges.ccxt import Backoff, ExchangeAdapter
from coinql.exchanges.coingecko import MarketCap
from tests.client import GraphQLClient

TIMEFRAME_MS = {"1m": 60_000, "1h": 3_600_000, "1d": DAY_MS}


def ohlcv_rows(
    start: int, count: int, step: int = DAY_MS, base: float = 100.0
) -> list[list[float]]:
    """`count` ccxt OHLCV rows [timestamp, open, high, low, close, volume] from `start`."""
    rows = []
    price = base
    for i in range(count):
        close = price * (1.01 if i % 3 else 0.985)
        rows.append(
            [
                start + i * step,
                price,
                max(price, close) * 1.01,
                min(price, close) * 0.99,
                close,
                10.0 + i,
            ]
        )
        price = close
    return rows


@dataclass
class FakeExchange:
    """`fetch_ohlcv` over stored rows: pages of at most `max_page`, each page repeating the last
    row of the previous one (as exchanges do when `since` is that row's time), `failures` raised
    first, then `script` consumed one entry per call (an exception is raised, None answers),
    `BadSymbol` for an unknown pair."""

    rows: dict[tuple[str, str], list[list[float]]]
    id: str = "fakex"
    max_page: int = 500
    failures: list[Exception] = field(default_factory=list)
    script: list[Exception | None] = field(default_factory=list)
    always_fail: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[list[float]]:
        self.calls.append(
            {"symbol": symbol, "timeframe": timeframe, "since": since, "limit": limit}
        )
        if self.always_fail is not None:
            raise self.always_fail
        if self.failures:
            raise self.failures.pop(0)
        if self.script and (fault := self.script.pop(0)) is not None:
            raise fault
        if (symbol, timeframe) not in self.rows:
            raise ccxt.BadSymbol(f"{self.id} does not have market symbol {symbol}")
        rows = sorted(self.rows[(symbol, timeframe)], key=lambda row: row[0])
        step = TIMEFRAME_MS[timeframe]
        start = (since or 0) - step  # overlap one candle with the previous page
        page = [list(row) for row in rows if row[0] >= start]
        return page[: min(limit or self.max_page, self.max_page)]

    async def fetch_tickers(self, symbols: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """The last close of each pair, as ccxt tickers."""
        self.calls.append({"fetch_tickers": symbols})
        if self.always_fail is not None:
            raise self.always_fail
        found = {}
        for (pair, timeframe), rows in self.rows.items():
            if timeframe == "1d" and (symbols is None or pair in symbols) and rows:
                last = max(rows, key=lambda row: row[0])
                found[pair] = {"symbol": pair, "last": last[4], "timestamp": int(last[0])}
        return found

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeMarketCaps:
    caps: dict[str, MarketCap]
    calls: int = 0

    async def fetch(self, symbols: list[str]) -> dict[str, MarketCap]:
        self.calls += 1
        return {symbol: self.caps[symbol] for symbol in symbols if symbol in self.caps}


class Sleeps:
    """A backoff's sleep that only records the delays it was asked to wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


# The tests' "now", taken once: the candles a test builds from it and the adapter that reads
# them agree on which are closed even when a run crosses midnight.
FROZEN_NOW = time.time()
TODAY = int(FROZEN_NOW * 1000) // DAY_MS * DAY_MS


def adapter_for(exchange: FakeExchange, sleeps: Sleeps | None = None) -> ExchangeAdapter:
    """The adapter over a fake exchange: small pages, four attempts, no real waits, and the
    clock at `FROZEN_NOW`."""
    return ExchangeAdapter(
        exchange,
        page_limit=7,
        backoff=Backoff(sleep=sleeps or Sleeps(), max_attempts=4),
        clock=lambda: FROZEN_NOW,
    )


class FakeTradingExchange:
    """A ccxt-shaped spot exchange that takes orders: one market BTC/USDT (ccxt's unified
    market structure, tick-size precision), a balance, orders in ccxt's unified order shape
    with the client order id echoed, and ccxt's exceptions.

    Market orders fill at once at `price`, limit orders rest. `script` decides what the next
    `create_order` calls do, one entry each: an exception is raised before the order is taken
    (a refusal, or a timeout before it arrived); "timeout" takes the order, then raises
    `RequestTimeout` (the answer lost); "partial" takes a limit order and fills half of it,
    the rest at the next `fetch_order`. `lookups_fail` makes the look-ups (`fetch_open_orders`,
    `fetch_closed_orders`) raise a network error that many times. `before_create` runs first
    in every `create_order` (a test looks at the store there)."""

    def __init__(self, *, price: float = 50_000.0, fee_rate: float = 0.001) -> None:
        self.id = "binance"
        self.has: dict[str, Any] = {"fetchOpenOrders": True, "fetchClosedOrders": True}
        self.precisionMode = 4  # ccxt.TICK_SIZE
        self.price = price
        self.fee_rate = fee_rate
        self.balance = {"USDT": 100_000.0, "BTC": 0.0}
        self.orders: dict[str, dict[str, Any]] = {}
        self.script: list[Exception | str] = []
        self.lookups_fail = 0
        self.creates: list[dict[str, Any]] = []  # every create_order call, taken or not
        self.fetches = 0
        self.before_create: Any = None
        self.sandbox = False

    def set_sandbox_mode(self, enabled: bool) -> None:
        self.sandbox = enabled

    async def fetch_my_trades(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []  # an account sync's: the bots' trades reach the portfolio by it

    async def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        return {
            "BTC/USDT": {
                "symbol": "BTC/USDT",
                "base": "BTC",
                "quote": "USDT",
                "spot": True,
                "precision": {"amount": 0.0001, "price": 0.01},
                "limits": {
                    "amount": {"min": 0.0001, "max": 1000.0},
                    "price": {"min": 0.01, "max": 1_000_000.0},
                    "cost": {"min": 5.0, "max": None},
                },
            }
        }

    async def fetch_balance(self, params: Any = None) -> dict[str, Any]:
        return {"free": dict(self.balance), "total": dict(self.balance)}

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        client_id = (params or {}).get("clientOrderId")
        self.creates.append(
            {"type": type, "side": side, "amount": amount, "clientOrderId": client_id}
            | {"params": dict(params or {})}
        )
        if self.before_create is not None:
            await self.before_create(client_id)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        if any(order["clientOrderId"] == client_id for order in self.orders.values()):
            raise ccxt.InvalidOrder("binance duplicate clientOrderId")
        order_id = str(1000 + len(self.orders))
        order = {
            "id": order_id,
            "clientOrderId": client_id,
            "symbol": symbol,
            "type": type,
            "side": side,
            "amount": amount,
            "price": price,
            "status": "open",
            "filled": 0.0,
            "remaining": amount,
            "average": None,
            "fee": None,
            "timestamp": 0,
            "partial": step == "partial",
        }
        self.orders[order_id] = order
        if type == "market" and "triggerPrice" not in (params or {}):  # a stop rests
            self._fill(order, amount, self.price)
        elif step == "partial":
            self._fill(order, amount / 2, price or self.price)
        if step == "timeout":
            raise ccxt.RequestTimeout("binance POST /api/v3/order timed out")
        return self._public(order)

    def _fill(self, order: dict[str, Any], amount: float, price: float) -> None:
        filled = order["filled"] + amount
        cost = (order["average"] or 0.0) * order["filled"] + amount * price
        order["filled"], order["average"] = filled, cost / filled
        order["remaining"] = order["amount"] - filled
        fee = (order["fee"] or {}).get("cost", 0.0) + amount * price * self.fee_rate
        order["fee"] = {"cost": fee, "currency": "USDT"}
        if order["remaining"] <= 1e-12:
            order["status"] = "closed"
        sign = 1 if order["side"] == "buy" else -1
        self.balance["BTC"] += sign * amount
        self.balance["USDT"] -= sign * amount * price + amount * price * self.fee_rate

    def _public(self, order: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in order.items() if key != "partial"}

    async def fetch_order(self, id: str, symbol: str | None = None, params: Any = None) -> Any:
        self.fetches += 1
        order = self.orders.get(id)
        if order is None:
            raise ccxt.OrderNotFound(f"binance order {id} not found")
        if order["partial"] and order["status"] == "open":  # the rest fills now
            self._fill(order, order["remaining"], order["price"] or self.price)
        return self._public(order)

    async def _listed(self, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        if self.lookups_fail > 0:
            self.lookups_fail -= 1
            raise ccxt.NetworkError("binance GET /api/v3/openOrders failed")
        return [self._public(o) for o in self.orders.values() if o["status"] in statuses]

    async def fetch_open_orders(
        self, symbol: Any = None, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        return await self._listed(("open",))

    async def fetch_closed_orders(
        self, symbol: Any = None, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        return await self._listed(("closed", "canceled", "expired", "rejected"))

    async def cancel_order(self, id: str, symbol: str | None = None, params: Any = None) -> Any:
        order = self.orders.get(id)
        if order is None or order["status"] != "open":
            raise ccxt.OrderNotFound(f"binance order {id} not open")
        order["status"] = "canceled"
        return self._public(order)

    def fill_resting(self, order_id: str) -> dict[str, Any]:
        """The market crosses a resting limit order: it fills whole (as a stream reports)."""
        order = self.orders[order_id]
        self._fill(order, order["remaining"], order["price"])
        return self._public(order)

    async def close(self) -> None:
        pass


# An exchange account (accounts and their sync), and adding a connection to it through the API.
API_KEY = "pk-live-0123456789abcdef"
SECRET = "sk-0123456789abcdefghijklmnopqrstuv"
ADD_CONNECTION = """
mutation($input: AddExchangeConnectionInput!) {
  addExchangeConnection(input: $input) {
    __typename
    ... on ExchangeConnection { id exchange status permissions { read trade withdraw } }
    ... on ExchangeRefused { message exchange reason retryable }
    ... on InvalidInput { message field }
  }
}
"""


class FakeAccountExchange:
    """A ccxt-shaped account; `error` is raised by the next calls, like ccxt raises."""

    def __init__(self) -> None:
        self.id = "binance"
        self.error: Exception | None = None
        self.permissions: dict[str, bool] | None = None
        self.balance = {"USDT": 1000.0}
        self.trades: list[dict[str, Any]] = []
        self.credentials: list[tuple[str, str]] = []
        self.flaky: list[Exception] = []  # raised once each, before anything else
        self.has: dict[str, bool] = {}

    def set_sandbox_mode(self, enabled: bool) -> None:
        pass

    async def fetch_balance(self, params: Any = None) -> dict[str, Any]:
        if self.flaky:
            raise self.flaky.pop(0)
        if self.error is not None:
            raise self.error
        return {
            "free": dict(self.balance),
            "used": dict.fromkeys(self.balance, 0.0),
            "total": dict(self.balance),
        }

    async def fetch_my_trades(self, since: int | None = None, **_: Any) -> list[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        return [t for t in self.trades if since is None or t["timestamp"] >= since]

    async def close(self) -> None:
        pass


async def add_connection(client: GraphQLClient, token: str, **fields: Any) -> dict[str, Any]:
    values = {"exchange": "binance", "label": "main", "apiKey": API_KEY, "secret": SECRET, **fields}
    response = await client.execute(ADD_CONNECTION, {"input": values}, token=token)
    return dict(response.ok()["addExchangeConnection"])
