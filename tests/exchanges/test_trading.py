"""Orders through ccxt's interface: the three outcomes of a send (taken, refused, unknown),
what is retried and what never is, look-ups by client order id, and a cancel that arrives
after the order filled."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import ccxt
import pytest

from coinql.exchanges import trading
from coinql.exchanges.ccxt import Backoff
from tests.fakes import FakeTradingExchange


def no_wait() -> Backoff:
    async def sleep(seconds: float) -> None:
        pass

    return Backoff(max_attempts=3, sleep=sleep)


async def send(exchange: FakeTradingExchange, client_id: str = "cq-1") -> dict[str, Any]:
    return await trading.send_order(
        exchange,
        pair="BTC/USDT",
        kind="limit",
        side="buy",
        amount=Decimal("0.1"),
        price=Decimal(40_000),
        stop_price=None,
        client_order_id=client_id,
        backoff=no_wait(),
    )


@pytest.mark.parametrize(
    "error",
    [
        ccxt.InsufficientFunds("binance {'apiKey': 'k-secret'} balance"),
        ccxt.InvalidOrder("binance k-secret"),
        ccxt.AuthenticationError("binance k-secret"),
        ccxt.ExchangeError("binance k-secret"),
    ],
)
async def test_a_refusal_names_ccxts_class_and_never_its_text(error: Exception) -> None:
    exchange = FakeTradingExchange()
    exchange.script = [error]
    with pytest.raises(trading.OrderRefused) as refused:
        await send(exchange)
    assert str(refused.value) == f"binance refused the order ({type(error).__name__})"
    assert "k-secret" not in str(refused.value) and len(exchange.creates) == 1


@pytest.mark.parametrize(
    "error",
    [
        ccxt.RequestTimeout("t"),
        ccxt.NetworkError("n"),
        ccxt.ExchangeNotAvailable("u"),
        ccxt.BadResponse("an unreadable answer"),
        ccxt.DuplicateOrderId("it has one under this id"),
    ],
)
async def test_a_send_that_may_have_arrived_is_never_sent_again(error: Exception) -> None:
    exchange = FakeTradingExchange()
    exchange.script = [error]
    with pytest.raises(trading.OutcomeUnknown):
        await send(exchange)
    assert len(exchange.creates) == 1


async def test_the_order_is_found_by_its_client_id_open_or_closed() -> None:
    exchange = FakeTradingExchange()
    exchange.script = ["timeout"]
    with pytest.raises(trading.OutcomeUnknown):
        await send(exchange, "cq-7")
    found = await trading.find_order(
        exchange, pair="BTC/USDT", client_order_id="cq-7", since=0, backoff=no_wait()
    )
    assert found is not None and found["clientOrderId"] == "cq-7" and found["status"] == "open"
    absent = await trading.find_order(
        exchange, pair="BTC/USDT", client_order_id="cq-8", since=0, backoff=no_wait()
    )
    assert absent is None
    exchange.lookups_fail = 3  # more than the retries
    with pytest.raises(trading.ExchangeUnreachable):
        await trading.find_order(
            exchange, pair="BTC/USDT", client_order_id="cq-7", since=0, backoff=no_wait()
        )


async def test_a_cancel_after_the_order_filled_answers_the_fill() -> None:
    exchange = FakeTradingExchange()
    taken = await send(exchange)
    exchange.fill_resting(taken["id"])  # filled before the cancel arrives
    after = await trading.cancel_order(
        exchange, pair="BTC/USDT", exchange_order_id=taken["id"], backoff=no_wait()
    )
    assert after is not None and after["status"] == "closed"
    gone = await trading.cancel_order(
        exchange, pair="BTC/USDT", exchange_order_id="404", backoff=no_wait()
    )
    assert gone is None


async def test_a_look_up_reads_every_list_the_exchange_has_and_skips_the_others() -> None:
    exchange = FakeTradingExchange()
    taken = await send(exchange, "cq-9")

    async def not_supported(*args: Any, **kwargs: Any) -> Any:
        raise ccxt.NotSupported("binance fetchClosedOrders() is not supported")

    exchange.fetch_closed_orders = not_supported  # type: ignore[method-assign]
    exchange.fetch_canceled_orders = exchange.fetch_open_orders  # type: ignore[attr-defined]
    exchange.orders[taken["id"]]["status"] = "open"
    found = await trading.find_order(
        exchange, pair="BTC/USDT", client_order_id="cq-9", since=0, backoff=no_wait()
    )
    assert found is not None and found["id"] == taken["id"]
    exchange.has["fetchOrders"] = True
    listed: list[dict[str, Any]] = [{"id": "7", "clientOrderId": "cq-9", "status": "expired"}]

    async def fetch_orders(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return listed

    exchange.fetch_orders = fetch_orders  # type: ignore[attr-defined]
    every = await trading.find_order(
        exchange, pair="BTC/USDT", client_order_id="cq-9", since=0, backoff=no_wait()
    )
    assert every == listed[0]
