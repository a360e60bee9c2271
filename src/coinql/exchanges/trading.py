"""Orders on a real exchange through ccxt: send, look up, cancel, stream.

A send has three outcomes, and only three. The exchange took the order (its answer is
returned); it refused it (`OrderRefused`: ccxt's `ExchangeError`s, such as insufficient funds,
an invalid order, a key that may not trade); or nobody knows (`OutcomeUnknown`: a timeout, a
dropped connection or an unreadable answer after the request left, when the exchange may have
taken it; and `DuplicateOrderId`, when it has one under that id). A refusal because of rate
limits (`RateLimitExceeded`, `DDoSProtection`: the exchange turned the request away before
handling it) is retried with backoff under the same client order id. An unknown outcome is
never resent: the order is looked up by its client order id (`find_order`) until the
exchange says whether it has it.

Messages carry ccxt's class and the exchange's name, never ccxt's text, which can quote the
request (and a request can carry a key).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from typing import Any, Protocol, TypeVar

import ccxt
import structlog

from coinql.exchanges.accounts import AccountClient
from coinql.exchanges.ccxt import Backoff, retrying

log = structlog.get_logger("coinql.trading")
T = TypeVar("T")

# The exchange said no before taking the order: safe to send again.
RETRY_SEND = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)
ORDER_PAGE = 100


class TradingClient(AccountClient, Protocol):
    """The trading calls of a ccxt async exchange that coinql makes, beside an account's."""

    has: dict[str, Any]

    async def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]: ...

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...

    async def fetch_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...

    async def fetch_open_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]: ...

    async def fetch_closed_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]: ...


class OrderRefused(Exception):
    """The exchange refused the order; nothing was placed."""


class OutcomeUnknown(Exception):
    """The order may or may not be on the exchange: ask it by the client order id."""


class ExchangeUnreachable(Exception):
    """A look-up or a cancel that did not get through, after its retries."""


async def send_order(
    client: TradingClient,
    *,
    pair: str,
    kind: str,
    side: str,
    amount: Decimal,
    price: Decimal | None,
    stop_price: Decimal | None,
    client_order_id: str,
    backoff: Backoff,
) -> dict[str, Any]:
    """Send one order under `client_order_id`; its ccxt answer. A stop order is `kind`
    "market" with a `stop_price` (ccxt's `triggerPrice`).

    Raises
    ------
    OrderRefused
        The exchange refused it (after the retries, for rate limits).
    OutcomeUnknown
        The request went out and no answer came back.
    """
    params: dict[str, Any] = {"clientOrderId": client_order_id}
    if stop_price is not None:  # ccxt's unified trigger: a market order once it is reached
        params["triggerPrice"] = float(stop_price)
    name = str(client.id)
    for attempt in range(backoff.max_attempts):
        try:
            return await client.create_order(
                pair, kind, side, float(amount), None if price is None else float(price), params
            )
        except RETRY_SEND as error:
            if attempt + 1 >= backoff.max_attempts:
                raise OrderRefused(
                    f"{name} kept rate limiting the order ({_name(error)})"
                ) from None
            delay = backoff.delay(attempt)
            log.warning("order send retry", exchange=name, error=_name(error), delay_s=delay)
            await backoff.sleep(delay)
        except ccxt.DuplicateOrderId as error:  # it has one under this id: ask which
            raise OutcomeUnknown(f"{name} has an order under this id ({_name(error)})") from None
        except ccxt.ExchangeError as error:
            raise OrderRefused(f"{name} refused the order ({_name(error)})") from None
        except ccxt.BaseError as error:  # network errors, unreadable answers
            raise OutcomeUnknown(f"{name} did not answer ({_name(error)})") from None
    raise AssertionError("unreachable")  # pragma: no cover


async def fetch_order(
    client: TradingClient, *, pair: str, exchange_order_id: str, backoff: Backoff
) -> dict[str, Any] | None:
    """The exchange's word on one of its orders; None when it has no such order."""

    return await _asking(client, partial(_fetched, client, exchange_order_id, pair), backoff)


async def find_order(
    client: TradingClient, *, pair: str, client_order_id: str, since: int, backoff: Backoff
) -> dict[str, Any] | None:
    """The order the exchange holds under `client_order_id`, in any state, placed since
    `since` (epoch ms; the last ORDER_PAGE of each list); None when it has none.

    Every order list the exchange has is read: `fetch_orders` where it lists all states,
    else its open, closed and cancelled ones (a list it does not have is skipped)."""
    has = getattr(client, "has", {}) or {}
    names = (
        ["fetch_orders"]
        if has.get("fetchOrders")
        else ["fetch_open_orders", "fetch_closed_orders", "fetch_canceled_orders"]
    )

    async def call() -> dict[str, Any] | None:
        for name in names:
            fetch = getattr(client, name, None)
            if fetch is None:
                continue
            try:
                listed = await fetch(pair, since, ORDER_PAGE)
            except ccxt.NotSupported:
                continue
            for raw in listed:
                if str(raw.get("clientOrderId")) == client_order_id:
                    return dict(raw)
        return None

    return await _asking(client, call, backoff)


async def cancel_order(
    client: TradingClient, *, pair: str, exchange_order_id: str, backoff: Backoff
) -> dict[str, Any] | None:
    """Cancel an order and return the exchange's word on it after: an order that filled
    before the cancel arrived is returned filled (ccxt's `OrderNotFound` on cancel)."""

    async def call() -> dict[str, Any] | None:
        try:
            await client.cancel_order(exchange_order_id, pair)
        except (ccxt.OrderNotFound, ccxt.InvalidOrder):
            pass  # finished meanwhile: what it became is fetched below
        return await _fetched(client, exchange_order_id, pair)

    return await _asking(client, call, backoff)


async def _fetched(
    client: TradingClient, exchange_order_id: str, pair: str
) -> dict[str, Any] | None:
    try:
        return await client.fetch_order(exchange_order_id, pair)
    except ccxt.OrderNotFound:
        return None


async def free_balance(
    client: TradingClient, *, base: str, quote: str, backoff: Backoff
) -> tuple[Decimal, Decimal]:
    """(free base, free quote) on the exchange."""
    balance = await _asking(client, client.fetch_balance, backoff)
    free = balance.get("free") or {}
    return Decimal(str(free.get(base) or 0)), Decimal(str(free.get(quote) or 0))


async def _asking(client: TradingClient, call: Callable[[], Awaitable[T]], backoff: Backoff) -> T:
    """Await a read (or a cancel, which may be repeated), retrying what a retry can help
    (ingestion's `retrying`: rate limits, timeouts, an unavailable exchange)."""
    name = str(client.id)

    def report(error: Exception, attempt: int, delay: float) -> None:
        log.warning("exchange retry", exchange=name, error=_name(error), attempt=attempt)

    try:
        return await retrying(call, backoff, on_retry=report)
    except ccxt.NetworkError as error:
        raise ExchangeUnreachable(f"{name} did not answer ({_name(error)})") from None
    except ccxt.BaseError as error:
        raise ExchangeUnreachable(f"{name} failed ({_name(error)})") from None


def _name(error: BaseException) -> str:
    return type(error).__name__
