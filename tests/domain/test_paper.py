"""The paper book's fill rules, reservations and exact round trip."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coinql.domain.errors import InvalidInput
from coinql.domain.paper import (
    InsufficientFunds,
    OrderNotFound,
    OrderStatus,
    OrderType,
    PaperBook,
    Side,
)

D = Decimal
BTC = "BTC/USDT"


def funded(usdt: str = "10000", **kwargs: Decimal) -> PaperBook:
    book = PaperBook(quote="USDT", fee_bps=D(10), slippage_bps=D(5), **kwargs)
    book.deposit("USDT", D(usdt))
    book.on_price(BTC, D(100), 1_000)
    return book


def test_a_market_order_fills_at_the_next_price_with_slippage_and_fee() -> None:
    book = funded()
    order = book.place(
        symbol=BTC, side=Side.BUY, type=OrderType.MARKET, amount=D(2), timestamp=1_000
    )
    assert book.on_price(BTC, D(100), 1_000) == []  # the price it was placed at does not fill it
    [fill] = book.on_price(BTC, D(110), 2_000)
    assert fill.price == D(110) * D("1.0005")
    assert fill.fee == fill.price * 2 * D("0.001")
    assert order.status is OrderStatus.CLOSED
    assert book.balances["BTC"] == D(2)
    assert book.balances["USDT"] == D(10000) - fill.cost - fill.fee
    assert book.used("USDT") == 0


def test_a_market_sell_slips_down() -> None:
    book = funded()
    book.deposit("BTC", D(1))
    book.place(symbol=BTC, side=Side.SELL, type=OrderType.MARKET, amount=D(1), timestamp=1_000)
    [fill] = book.on_price(BTC, D(200), 2_000)
    assert fill.price == D(200) * D("0.9995")
    assert book.balances["BTC"] == 0
    assert book.balances["USDT"] == D(10000) + fill.cost - fill.fee


def test_a_limit_order_fills_at_its_limit_once_crossed() -> None:
    book = funded()
    order = book.place(
        symbol=BTC, side=Side.BUY, type=OrderType.LIMIT, amount=D(1), price=D(90), timestamp=1_000
    )
    assert book.free("USDT") == D(10000) - D(90) * D("1.001")
    assert book.on_price(BTC, D("90.01"), 2_000) == []
    [fill] = book.on_price(BTC, D(85), 3_000)
    assert (fill.price, order.average, order.status) == (D(90), D(90), OrderStatus.CLOSED)


def test_a_stop_becomes_a_market_order_when_reached() -> None:
    book = funded()
    book.deposit("BTC", D(1))
    order = book.place(
        symbol=BTC,
        side=Side.SELL,
        type=OrderType.STOP_MARKET,
        amount=D(1),
        stop_price=D(95),
        timestamp=1_000,
    )
    assert book.on_price(BTC, D(96), 2_000) == []
    [fill] = book.on_price(BTC, D(94), 3_000)
    assert fill.price == D(94) * D("0.9995")
    assert order.triggered and order.status is OrderStatus.CLOSED


def test_an_order_the_free_balance_cannot_cover_is_refused_and_changes_nothing() -> None:
    book = funded("100")
    with pytest.raises(InsufficientFunds, match="free"):
        book.place(symbol=BTC, side=Side.BUY, type=OrderType.MARKET, amount=D(1), timestamp=1_000)
    with pytest.raises(InsufficientFunds):
        book.place(symbol=BTC, side=Side.SELL, type=OrderType.MARKET, amount=D(1), timestamp=1_000)
    assert book.orders == {} and book.balances == {"USDT": D(100)}


def test_reservations_add_up_across_open_orders() -> None:
    book = funded("1000")
    book.place(
        symbol=BTC, side=Side.BUY, type=OrderType.LIMIT, amount=D(6), price=D(99), timestamp=1_000
    )
    with pytest.raises(InsufficientFunds):
        book.place(
            symbol=BTC,
            side=Side.BUY,
            type=OrderType.LIMIT,
            amount=D(6),
            price=D(99),
            timestamp=1_000,
        )


def test_a_market_buy_that_outruns_its_reservation_is_rejected_not_overdrawn() -> None:
    book = funded("101")
    order = book.place(
        symbol=BTC, side=Side.BUY, type=OrderType.MARKET, amount=D(1), timestamp=1_000
    )
    assert book.on_price(BTC, D(150), 2_000) == []
    assert order.status is OrderStatus.REJECTED
    assert book.balances == {"USDT": D(101)} and book.used("USDT") == 0


def test_cancel_releases_the_reservation_and_a_filled_order_stays_filled() -> None:
    book = funded()
    order = book.place(
        symbol=BTC, side=Side.BUY, type=OrderType.LIMIT, amount=D(1), price=D(50), timestamp=1_000
    )
    book.cancel(order.id)
    assert order.status is OrderStatus.CANCELED and book.free("USDT") == D(10000)
    assert book.on_price(BTC, D(40), 2_000) == []
    market = book.place(
        symbol=BTC, side=Side.BUY, type=OrderType.MARKET, amount=D(1), timestamp=2_000
    )
    book.on_price(BTC, D(40), 3_000)
    assert book.cancel(market.id).status is OrderStatus.CLOSED
    with pytest.raises(OrderNotFound):
        book.cancel("paper-99")


def test_a_repeated_client_order_id_returns_the_first_order() -> None:
    book = funded()
    first = book.place(
        symbol=BTC,
        side=Side.BUY,
        type=OrderType.MARKET,
        amount=D(1),
        timestamp=1_000,
        client_order_id="bot-1-7",
    )
    again = book.place(
        symbol=BTC,
        side=Side.BUY,
        type=OrderType.MARKET,
        amount=D(1),
        timestamp=1_500,
        client_order_id="bot-1-7",
    )
    assert again is first and len(book.orders) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": OrderType.MARKET, "amount": D(0)}, "amount"),
        ({"type": OrderType.MARKET, "amount": D("NaN")}, "amount"),
        ({"type": OrderType.LIMIT, "amount": D(1)}, "price"),
        ({"type": OrderType.LIMIT, "amount": D(1), "price": D(-1)}, "price"),
        ({"type": OrderType.STOP_MARKET, "amount": D(1)}, "stopPrice"),
        ({"type": OrderType.MARKET, "amount": D(1), "symbol": "BTC/EUR"}, "symbol"),
        ({"type": OrderType.MARKET, "amount": D(1), "symbol": "ETH/USDT"}, "symbol"),
    ],
)
def test_bad_orders_name_their_field(kwargs: dict[str, object], field: str) -> None:
    book = funded()
    arguments: dict[str, object] = {"symbol": BTC, "side": Side.BUY, "timestamp": 1_000, **kwargs}
    with pytest.raises(InvalidInput) as raised:
        book.place(**arguments)  # type: ignore[arg-type]
    assert raised.value.field == field
    assert book.orders == {}


def test_deposits_must_be_positive() -> None:
    with pytest.raises(InvalidInput):
        PaperBook(quote="USDT").deposit("USDT", D(-5))


def test_the_book_round_trips_through_json_exactly() -> None:
    book = funded("1234.5678")
    book.deposit("BTC", D("0.3"))
    book.place(symbol=BTC, side=Side.BUY, type=OrderType.MARKET, amount=D("0.1"), timestamp=1_000)
    book.place(
        symbol=BTC,
        side=Side.SELL,
        type=OrderType.LIMIT,
        amount=D("0.2"),
        price=D(120),
        timestamp=1_000,
    )
    book.on_price(BTC, D("101.25"), 2_000)
    again = PaperBook.from_json(book.to_json())
    assert again == book
    assert again.to_json() == book.to_json()
    again.on_price(BTC, D(121), 3_000)
    book.on_price(BTC, D(121), 3_000)
    assert again == book
