"""The paper exchange answers in ccxt's shapes and raises ccxt's exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import ccxt
import pytest

from coinql.domain.paper import PaperBook
from coinql.exchanges.paper import PERMISSIONS, PaperExchange


class Tape:
    """A price source whose prices the test moves."""

    def __init__(self) -> None:
        self.prices: dict[str, tuple[Decimal, int]] = {"BTC": (Decimal(100), 1_000)}

    def latest(self, base: str) -> tuple[Decimal, int] | None:
        return self.prices.get(base)

    def bases(self) -> Iterable[str]:
        return self.prices

    def move(self, base: str, price: str, timestamp: int) -> None:
        self.prices[base] = (Decimal(price), timestamp)


@pytest.fixture
def tape() -> Tape:
    return Tape()


@pytest.fixture
def exchange(tape: Tape) -> PaperExchange:
    book = PaperBook(quote="USDT", fee_bps=Decimal(10), slippage_bps=Decimal(0))
    book.deposit("USDT", Decimal(1000))
    return PaperExchange(book, tape)


async def test_a_market_buy_goes_from_open_to_closed_in_ccxt_shapes(
    exchange: PaperExchange, tape: Tape
) -> None:
    order = await exchange.create_order(
        "BTC/USDT", "market", "buy", 0.5, params={"clientOrderId": "c-1"}
    )
    assert order["status"] == "open" and order["filled"] == 0.0 and order["clientOrderId"] == "c-1"
    tape.move("BTC", "120", 2_000)
    order = await exchange.fetch_order(order["id"], "BTC/USDT")
    assert order["status"] == "closed"
    assert (order["filled"], order["remaining"], order["average"]) == (0.5, 0.0, 120.0)
    [trade] = await exchange.fetch_my_trades("BTC/USDT", since=2_000)
    assert trade["order"] == order["id"] and trade["datetime"] == "1970-01-01T00:00:02.000Z"
    assert (trade["price"], trade["amount"], trade["cost"]) == (120.0, 0.5, 60.0)
    assert trade["fee"] == {"cost": 0.06, "currency": "USDT"}
    assert await exchange.fetch_my_trades(since=2_001) == []
    balance = await exchange.fetch_balance()
    assert balance["BTC"] == {"free": 0.5, "used": 0.0, "total": 0.5}
    assert balance["total"]["USDT"] == pytest.approx(1000 - 60 - 0.06)
    assert balance["info"]["USDT"] == "939.94"


async def test_open_orders_reserve_and_cancel_releases(exchange: PaperExchange) -> None:
    order = await exchange.create_order("BTC/USDT", "limit", "buy", "1", "90")
    balance = await exchange.fetch_balance()
    assert balance["used"]["USDT"] == pytest.approx(90.09)
    assert [o["id"] for o in await exchange.fetch_open_orders("BTC/USDT")] == [order["id"]]
    cancelled = await exchange.cancel_order(order["id"], "BTC/USDT")
    assert cancelled["status"] == "canceled"
    assert await exchange.fetch_open_orders() == []
    assert (await exchange.fetch_balance())["free"]["USDT"] == 1000.0


async def test_a_stop_order_takes_its_trigger_from_params(
    exchange: PaperExchange, tape: Tape
) -> None:
    order = await exchange.create_order(
        "BTC/USDT", "stop_market", "buy", 1, params={"triggerPrice": 110}
    )
    assert order["triggerPrice"] == 110.0
    tape.move("BTC", "111", 2_000)
    assert (await exchange.fetch_order(order["id"]))["average"] == 111.0


async def test_failures_are_ccxts_exception_classes(exchange: PaperExchange) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        await exchange.create_order("BTC/USDT", "market", "buy", 100)
    with pytest.raises(ccxt.InvalidOrder, match="price"):
        await exchange.create_order("BTC/USDT", "limit", "buy", 1)
    with pytest.raises(ccxt.InvalidOrder):
        await exchange.create_order("BTC/USDT", "iceberg", "buy", 1)
    with pytest.raises(ccxt.InvalidOrder):
        await exchange.create_order("BTC/USDT", "market", "buy", "lots")
    with pytest.raises(ccxt.BadSymbol):
        await exchange.fetch_ticker("DOGE/USDT")
    with pytest.raises(ccxt.BadSymbol):
        await exchange.fetch_ticker("BTC/EUR")
    with pytest.raises(ccxt.OrderNotFound):
        await exchange.fetch_order("paper-404")
    with pytest.raises(ccxt.OrderNotFound):
        await exchange.cancel_order("paper-404")
    assert exchange.book.orders == {}


async def test_ticker_markets_and_permissions(exchange: PaperExchange, tape: Tape) -> None:
    tape.move("ETH", "2000", 5_000)
    ticker = await exchange.fetch_ticker("ETH/USDT")
    assert (ticker["last"], ticker["timestamp"]) == (2000.0, 5_000)
    markets = await exchange.load_markets()
    assert sorted(markets) == ["BTC/USDT", "ETH/USDT"]
    assert markets["BTC/USDT"]["limits"]["amount"]["min"] > 0
    assert PERMISSIONS == {"read": True, "trade": True, "withdraw": False}
    exchange.set_sandbox_mode(True)
    assert exchange.sandbox
    await exchange.close()
