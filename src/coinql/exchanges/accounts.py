"""Exchange accounts through ccxt: verify credentials, read balances and trades, name failures.

The same functions serve a real exchange (a ccxt async client made by `create_account_client`)
and coinql's paper exchange (`coinql.exchanges.paper.PaperExchange`), which answers the same
calls. Every ccxt failure becomes an `ExchangeAccountError` of one `AccountFailure` kind that
names the exchange; its message is ccxt's class and the exchange's name only, because ccxt's
own messages can quote the request, and a request can carry a key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Protocol, TypeVar

import ccxt
import structlog

from coinql.domain.errors import AccountFailure, ExchangeAccountError
from coinql.domain.reconcile import POSITION_AMOUNTS, DerivativePosition, ExchangeTrade, plain
from coinql.exchanges.ccxt import Backoff, retrying

log = structlog.get_logger("coinql.accounts")

T = TypeVar("T")
TRADES_PAGE = 500
MAX_TRADE_PAGES = 200


class AccountClient(Protocol):
    """The account calls of a ccxt async exchange that coinql makes."""

    id: str

    def set_sandbox_mode(self, enabled: bool) -> None: ...

    async def fetch_balance(self, params: dict[str, Any] | None = None) -> dict[str, Any]: ...

    async def fetch_my_trades(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class AccountClients(Protocol):
    """What builds an account's client: `create_account_client`, or a test's fake."""

    def __call__(
        self,
        exchange_id: str,
        *,
        api_key: str,
        secret: str,
        passphrase: str | None,
        streaming: bool = False,
    ) -> AccountClient: ...


# Most specific first: RateLimitExceeded and ExchangeNotAvailable are NetworkErrors, and
# PermissionDenied is an AuthenticationError.
_FAILURES: list[tuple[type[Exception], AccountFailure, str]] = [
    (ccxt.PermissionDenied, AccountFailure.PERMISSION, "refused the key this permission"),
    (ccxt.AuthenticationError, AccountFailure.AUTHENTICATION, "did not accept the credentials"),
    (ccxt.RateLimitExceeded, AccountFailure.RATE_LIMITED, "is rate limiting requests"),
    (ccxt.DDoSProtection, AccountFailure.RATE_LIMITED, "is rate limiting requests"),
    (ccxt.ExchangeNotAvailable, AccountFailure.UNAVAILABLE, "is not available"),
    (ccxt.NetworkError, AccountFailure.NETWORK, "could not be reached"),
    (ccxt.NotSupported, AccountFailure.NO_SANDBOX, "has no sandbox or testnet"),
]


def classify(exchange: str, error: Exception) -> ExchangeAccountError:
    """Return the typed error for a ccxt exception raised by `exchange`."""
    name = type(error).__name__
    for kind, failure, says in _FAILURES:
        if isinstance(error, kind):
            return ExchangeAccountError(exchange, failure, f"{exchange} {says} ({name})")
    return ExchangeAccountError(exchange, AccountFailure.EXCHANGE, f"{exchange} failed ({name})")


async def calling(
    exchange: str, call: Callable[[], Awaitable[T]], backoff: Backoff | None = None
) -> T:
    """Await an exchange call, turning ccxt's exceptions into `ExchangeAccountError`; with
    `backoff`, rate limits, an unavailable exchange and network errors are retried first
    (as ingestion does), each retry logged by the error's class only."""

    def report(error: Exception, attempt: int, delay: float) -> None:
        log.warning(
            "exchange account retry",
            exchange=exchange,
            error=type(error).__name__,
            attempt=attempt,
            delay_s=round(delay, 2),
        )

    try:
        if backoff is None:
            return await call()
        return await retrying(call, backoff, on_retry=report)
    except ccxt.BaseError as error:
        raise classify(exchange, error) from None


@dataclass(frozen=True, slots=True)
class Permissions:
    """What a key may do; None where the exchange does not say."""

    read: bool | None
    trade: bool | None
    withdraw: bool | None


def create_account_client(
    exchange_id: str,
    *,
    api_key: str,
    secret: str,
    passphrase: str | None,
    streaming: bool = False,
) -> AccountClient:
    """Return a real ccxt async client holding the credentials, its rate limiter on; with
    `streaming`, ccxt.pro's where it has the exchange (a bot's: it can watch its orders)."""
    import ccxt.async_support as ccxt_async
    import ccxt.pro as ccxt_pro

    exchange_class = getattr(ccxt_async, exchange_id, None)
    if streaming:
        exchange_class = getattr(ccxt_pro, exchange_id, exchange_class)
    if exchange_class is None:
        raise ValueError(f"ccxt has no exchange {exchange_id!r}")
    config: dict[str, Any] = {"apiKey": api_key, "secret": secret, "enableRateLimit": True}
    if passphrase:
        config["password"] = passphrase
    client: AccountClient = exchange_class(config)
    return client


async def verify(client: AccountClient, *, sandbox: bool) -> Permissions:
    """Check that the credentials authenticate and return what the exchange says they may do.

    Sandbox mode is set first, so the check runs against the testnet; an exchange without one
    fails with `AccountFailure.NO_SANDBOX`. The balance call proves the key reads. Trading and
    withdrawal rights come from the client's `fetch_permissions` where it has one (the paper
    exchange, and adapters for exchanges that report restrictions); otherwise they are unknown.
    """
    exchange = str(client.id)
    if sandbox:
        try:
            client.set_sandbox_mode(True)
        except ccxt.BaseError as error:
            raise classify(exchange, error) from None
    await calling(exchange, client.fetch_balance)
    reporter = getattr(client, "fetch_permissions", None)
    if reporter is None:
        return Permissions(read=True, trade=None, withdraw=None)
    reported: dict[str, bool] = await calling(exchange, reporter)
    return Permissions(read=True, trade=reported.get("trade"), withdraw=reported.get("withdraw"))


async def fetch_balances(
    client: AccountClient, backoff: Backoff | None = None
) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """Return (free, used, total) per currency with a non-zero total, in decimals."""
    raw = await calling(str(client.id), client.fetch_balance, backoff)
    balances = {}
    for currency, total in (raw.get("total") or {}).items():
        if total:
            free = (raw.get("free") or {}).get(currency)
            used = (raw.get("used") or {}).get(currency)
            balances[currency] = (_decimal(free), _decimal(used), _decimal(total))
    return balances


async def fetch_trades_since(
    client: AccountClient, *, since: int | None, backoff: Backoff | None = None
) -> list[ExchangeTrade]:
    """Return the account's trades from `since` (epoch ms), paging, each trade id once.

    Pages follow the newest timestamp seen; a page that brings nothing new ends the walk, so
    an exchange that ignores `since` cannot loop forever.
    """
    exchange = str(client.id)
    trades: dict[str, ExchangeTrade] = {}
    cursor = since
    for _ in range(MAX_TRADE_PAGES):
        page = await calling(
            exchange, partial(client.fetch_my_trades, since=cursor, limit=TRADES_PAGE), backoff
        )
        fresh = [raw for raw in page if str(raw["id"]) not in trades]
        for raw in fresh:
            trade = to_exchange_trade(raw)
            trades[trade.id] = trade
        if not fresh or len(page) < TRADES_PAGE:
            break
        cursor = max(int(raw["timestamp"]) for raw in page)
    return sorted(trades.values(), key=lambda t: (t.time, t.id))


async def fetch_positions(
    client: AccountClient, backoff: Backoff | None = None
) -> list[DerivativePosition] | None:
    """Return a derivatives account's open positions (ccxt's `fetch_positions`); None for an
    account that has none to report: the exchange has no `fetchPositions`, or says the call
    is not supported for this account (a spot-only key)."""
    has = getattr(client, "has", None) or {}
    reader = getattr(client, "fetch_positions", None)
    if not has.get("fetchPositions") or reader is None:
        return None
    try:
        raw: list[dict[str, Any]] = await calling(str(client.id), reader, backoff)
    except ExchangeAccountError as error:
        if error.failure is AccountFailure.NO_SANDBOX:  # ccxt.NotSupported
            return None
        raise
    positions = [to_position(found) for found in raw]
    return [position for position in positions if position.contracts]


def to_position(raw: dict[str, Any]) -> DerivativePosition:
    """Return a ccxt unified position as a `DerivativePosition`."""
    amounts = {name: _optional_decimal(raw.get(key)) for name, key in POSITION_AMOUNTS.items()}
    contracts = abs(amounts.pop("contracts") or Decimal(0))
    side = str(raw.get("side") or "").lower()
    if side not in ("long", "short"):
        raise ValueError(f"not a position side: {raw.get('side')!r}")
    return DerivativePosition(symbol=str(raw["symbol"]), side=side, contracts=contracts, **amounts)


def to_exchange_trade(raw: dict[str, Any]) -> ExchangeTrade:
    """Return a ccxt unified trade as an `ExchangeTrade`."""
    base, _, quote = str(raw["symbol"]).partition("/")
    quote = quote.partition(":")[0]  # "BTC/USDT:USDT" for a linear perpetual
    fee = raw.get("fee") or {}
    return ExchangeTrade(
        id=str(raw["id"]),
        base=base,
        quote=quote,
        side=str(raw["side"]),
        amount=_decimal(raw["amount"]),
        price=_decimal(raw["price"]),
        fee=_decimal(fee.get("cost")),
        fee_currency=str(fee.get("currency") or quote),
        time=datetime.fromtimestamp(int(raw["timestamp"]) / 1000, tz=UTC),
    )


def _optional_decimal(value: object) -> Decimal | None:
    return None if value is None else _decimal(value)


def _decimal(value: object) -> Decimal:
    """Return a ccxt number as a Decimal (via its shortest repr, trailing zeros trimmed);
    None counts as 0."""
    if value is None:
        return Decimal(0)
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return plain(result)
