"""Exchange connections and account sync: the caller's real (or paper) accounts in coinql.

Adding a connection verifies it through ccxt before anything is stored, and gives it a
portfolio of its own; a sync reads the account's balances and trades and books what changed
into that portfolio (`coinql.domain.reconcile`), so it has positions, PnL, risk and live value
like a hand-kept one. Secrets go into the store encrypted and come out only to build the
exchange client; nothing here logs or returns them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache, partial

import ccxt
import structlog

from coinql.domain import auth, ledger
from coinql.domain.auth import ApiScope
from coinql.domain.errors import (
    Conflict,
    ExchangeAccountError,
    Forbidden,
    InvalidInput,
    NotFound,
)
from coinql.domain.ledger import CostBasis
from coinql.domain.paper import PaperBook
from coinql.domain.reconcile import ExchangeTrade, reconcile
from coinql.exchanges.accounts import (
    AccountClient,
    fetch_balances,
    fetch_trades_since,
    verify,
)
from coinql.exchanges.paper import PaperExchange
from coinql.resolvers.auth import require_user
from coinql.resolvers.context import Context
from coinql.resolvers.owned import get_owned
from coinql.settings import Settings
from coinql.store import accounts as account_store
from coinql.store import market as market_store
from coinql.store import portfolio as portfolio_store
from coinql.store.accounts import ExchangeConnection
from coinql.store.portfolio import LedgerEntry, Portfolio
from coinql.store.secrets import SecretBox

log = structlog.get_logger("coinql.accounts")

PAPER = "paper"
CASH = ("USD", "USDT", "USDC")  # taken as equal, as the candles are
MAX_LABEL = 100
SYNC_OVERLAP = timedelta(hours=1)  # trades re-read before the last sync: ids make it safe
SYNC_STALE = timedelta(minutes=10)  # a SYNCING mark older than this was a crashed sync
MAX_PRICED_ASSETS = 10_000


@cache
def secret_box(keys: tuple[str, ...]) -> SecretBox:
    """The box of the configured encryption keys (built once per key set)."""
    return SecretBox(list(keys))


def box_of(settings: Settings) -> SecretBox:
    return secret_box(tuple(settings.resolved_encryption_keys()))


@dataclass(frozen=True, slots=True)
class NewConnection:
    exchange: str
    label: str
    api_key: str
    secret: str
    passphrase: str | None
    sandbox: bool
    allow_withdraw: bool


class Prices:
    """A paper account's price source: the live price of each asset, else its stored one."""

    def __init__(self, quotes: dict[str, tuple[Decimal, int]]) -> None:
        self.quotes = quotes

    def latest(self, base: str) -> tuple[Decimal, int] | None:
        return self.quotes.get(base)

    def bases(self) -> Iterable[str]:
        return self.quotes


async def market_prices(context: Context) -> Prices:
    """Every asset's latest price, as the portfolio queries value them."""
    async with context.services.reader() as session:
        assets = await market_store.list_assets(
            session,
            order=market_store.AssetOrder.SYMBOL_ASC,
            where=market_store.AssetFilter(),
            offset=0,
            limit=MAX_PRICED_ASSETS,
        )
    quotes = {}
    for asset in map(context.services.prices.apply, assets):
        if asset.last_price is not None and asset.last_price > 0:
            moment = asset.last_price_at or 0
            quotes[asset.symbol] = (Decimal(str(asset.last_price)), int(moment))
    return Prices(quotes)


def _checked(new: NewConnection) -> NewConnection:
    exchange = new.exchange.strip().lower()
    if exchange != PAPER and exchange not in ccxt.exchanges:
        raise InvalidInput("exchange", f"unknown exchange {new.exchange!r}: 'paper' or a ccxt id")
    label = new.label.strip()
    if not 0 < len(label) <= MAX_LABEL:
        raise InvalidInput("label", f"label must have 1 to {MAX_LABEL} characters")
    for name, value in (("apiKey", new.api_key), ("secret", new.secret)):
        if not 8 <= len(value.strip()) <= 512:
            raise InvalidInput(name, f"{name} must have 8 to 512 characters")
    passphrase = new.passphrase.strip() if new.passphrase else None
    return NewConnection(
        exchange,
        label,
        new.api_key.strip(),
        new.secret.strip(),
        passphrase,
        new.sandbox,
        new.allow_withdraw,
    )


def paper_book(settings: Settings) -> PaperBook:
    book = PaperBook(
        quote=settings.paper_quote,
        fee_bps=settings.paper_fee_bps,
        slippage_bps=settings.paper_slippage_bps,
    )
    book.deposit(settings.paper_quote, settings.paper_starting_balance)
    return book


def real_client(context: Context, connection: ExchangeConnection) -> AccountClient:
    api_key, secret, passphrase = account_store.connection_credentials(
        connection, box_of(context.services.settings)
    )
    return context.services.account_clients(
        connection.exchange, api_key=api_key, secret=secret, passphrase=passphrase
    )


async def add_connection(context: Context, new: NewConnection) -> ExchangeConnection:
    """Verify the credentials with the exchange, then store the connection and its portfolio.

    A key the exchange says can withdraw is refused unless `allow_withdraw`; nothing is
    stored when verification fails.
    """
    user = await require_user(context)
    new = _checked(new)
    settings = context.services.settings
    book: PaperBook | None = None
    if new.exchange == PAPER:
        book = paper_book(settings)
        client: AccountClient = PaperExchange(book, await market_prices(context))
    else:
        client = context.services.account_clients(
            new.exchange, api_key=new.api_key, secret=new.secret, passphrase=new.passphrase
        )
    try:
        permissions = await verify(client, sandbox=new.sandbox)
    finally:
        await client.close()
    if permissions.withdraw and not new.allow_withdraw:
        raise InvalidInput(
            "allowWithdraw",
            f"this {new.exchange} key can withdraw funds; use a key without withdrawal rights,"
            " or set allowWithdraw: true to connect it anyway",
        )
    now = context.services.now()
    cash = settings.paper_quote if book is not None else "USDT"
    async with context.services.transaction() as session:
        portfolio = await portfolio_store.add_portfolio(
            session,
            owner_id=user.id,
            name=new.label,
            base_currency=cash,
            cost_basis=CostBasis.FIFO.value,
            now=now,
        )
        connection = await account_store.add_connection(
            session,
            box=box_of(settings),
            owner_id=user.id,
            portfolio_id=portfolio.id,
            exchange=new.exchange,
            label=new.label,
            api_key=new.api_key,
            secret=new.secret,
            passphrase=new.passphrase,
            sandbox=new.sandbox,
            permissions=(permissions.read, permissions.trade, permissions.withdraw),
            now=now,
        )
        if book is not None:
            await account_store.add_paper_book(
                session, connection_id=connection.id, book=book.to_json()
            )
        await account_store.record(
            session,
            user_id=user.id,
            action="CONNECTION_ADDED",
            target=f"{new.exchange}:{connection.id}",
            address=context.client_address(),
            now=now,
        )
    return connection


async def get_connection(context: Context, *, connection_id: uuid.UUID) -> ExchangeConnection:
    return await get_owned(
        context,
        partial(account_store.get_connection, connection_id=connection_id),
        f"no exchange connection {connection_id}",
    )


async def list_connections(context: Context) -> list[ExchangeConnection]:
    user = await require_user(context)
    async with context.services.reader() as session:
        return await account_store.list_connections(session, owner_id=user.id)


async def remove_connection(context: Context, *, connection_id: uuid.UUID) -> None:
    """Remove a connection and its secrets; its portfolio stays, a ledger like any other."""
    user = await require_user(context)
    async with context.services.transaction() as session:
        connection = await account_store.get_connection(
            session, connection_id=connection_id, owner_id=user.id
        )
        if connection is None:
            raise NotFound(f"no exchange connection {connection_id}")
        await session.delete(connection)
        await account_store.record(
            session,
            user_id=user.id,
            action="CONNECTION_REMOVED",
            target=f"{connection.exchange}:{connection.id}",
            address=context.client_address(),
            now=context.services.now(),
        )


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    used: Decimal
    total: Decimal
    value_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: datetime
    balances: list[Balance]
    portfolio: Portfolio


async def sync_connection(context: Context, *, connection_id: uuid.UUID) -> Snapshot:
    """Read the account, book what changed into its portfolio and keep a snapshot.

    One sync of a connection at a time: the SYNCING mark is taken in one statement, so a
    second sync that arrives meanwhile is refused (`Conflict`) instead of booking twice.
    """
    user = await require_user(context)
    connection = await get_connection(context, connection_id=connection_id)
    services = context.services
    now = services.now()
    async with services.transaction() as session:
        claimed = await account_store.claim_sync(
            session, connection_id=connection.id, now=now, stale_before=now - SYNC_STALE
        )
    if not claimed:
        raise Conflict(f"a sync of exchange connection {connection_id} is already running")
    try:
        snapshot = await _sync(context, connection, user.id, now)
    except ExchangeAccountError as error:
        async with services.transaction() as session:
            await account_store.end_sync(
                session, connection_id=connection.id, now=now, error=error.message
            )
        raise
    except BaseException:
        async with services.transaction() as session:
            await account_store.end_sync(
                session, connection_id=connection.id, now=now, error="the sync failed"
            )
        raise
    return snapshot


async def _sync(
    context: Context, connection: ExchangeConnection, owner: uuid.UUID, now: datetime
) -> Snapshot:
    services = context.services
    prices = await market_prices(context)
    paper = None
    if connection.exchange == PAPER:
        async with services.reader() as session:
            paper = await account_store.load_paper_book(session, connection_id=connection.id)
        if paper is None:
            raise NotFound(f"exchange connection {connection.id} has no paper account")
        client: AccountClient = PaperExchange(PaperBook.from_json(paper.book), prices)
    else:
        client = real_client(context, connection)
    try:
        if connection.sandbox:
            client.set_sandbox_mode(True)
        since = connection.last_sync_at - SYNC_OVERLAP if connection.last_sync_at else None
        balances = await fetch_balances(client)
        trades = await fetch_trades_since(
            client, since=None if since is None else int(since.timestamp() * 1000)
        )
    finally:
        await client.close()
    async with services.transaction() as session:
        portfolio = await portfolio_store.get_portfolio(
            session, owner_id=owner, portfolio_id=connection.portfolio_id
        )
        if portfolio is None:
            raise NotFound(f"the portfolio of exchange connection {connection.id} is gone")
        previous = await account_store.latest_snapshot(session, connection_id=connection.id)
        booked = await portfolio_store.exchange_trade_ids(session, portfolio_id=portfolio.id)
        cash = portfolio.base_currency
        held = in_cash(balances, cash)
        result = reconcile(
            trades=[_trade_in_cash(trade, cash) for trade in trades],
            booked=booked,
            previous=None
            if previous is None
            else {c: Decimal(v["total"]) for c, v in previous.balances.items()},
            current={currency: total for currency, (_, _, total) in held.items()},
            cash=cash,
            prices={symbol: price for symbol, (price, _) in prices.quotes.items()},
            now=now,
        )
        existing = (await portfolio_store.entries_of(session, portfolio_ids=[portfolio.id]))[
            portfolio.id
        ]
        history = [entry.transaction() for entry in existing]
        new = [booking.transaction for booking in result.bookings]
        ledger.replay(
            [*history, *new],
            base_currency=cash,
            method=CostBasis(portfolio.cost_basis),
            first_new=len(history),
        )
        seq = await portfolio_store.next_seq(session, portfolio_id=portfolio.id)
        await portfolio_store.add_entries(
            session,
            entries=[
                LedgerEntry(
                    portfolio_id=portfolio.id,
                    seq=seq + index,
                    kind=booking.transaction.kind.value,
                    asset=booking.transaction.asset,
                    quantity=booking.transaction.quantity,
                    price=booking.transaction.price,
                    fee=booking.transaction.fee,
                    time=booking.transaction.time,
                    note=booking.note,
                    exchange_trade_id=booking.trade_id,
                )
                for index, booking in enumerate(result.bookings)
            ],
        )
        await account_store.add_snapshot(
            session,
            connection_id=connection.id,
            taken_at=now,
            balances={
                currency: {"free": str(free), "used": str(used), "total": str(total)}
                for currency, (free, used, total) in held.items()
            },
        )
        if paper is not None:
            assert isinstance(client, PaperExchange)
            if not await account_store.save_paper_book(
                session, account=paper, book=client.book.to_json()
            ):
                raise Conflict("the paper account changed during the sync; sync again")
        await account_store.end_sync(session, connection_id=connection.id, now=now, error=None)
        await account_store.record(
            session,
            user_id=owner,
            action="ACCOUNT_SYNCED",
            target=f"{connection.exchange}:{connection.id}",
            address=context.client_address(),
            now=now,
        )
    context.loaders.entries.clear_all()
    return Snapshot(
        taken_at=now,
        balances=[
            Balance(
                currency,
                free,
                used,
                total,
                _value(currency, total, cash, prices),
            )
            for currency, (free, used, total) in held.items()
        ],
        portfolio=portfolio,
    )


def in_cash(
    balances: dict[str, tuple[Decimal, Decimal, Decimal]], cash: str
) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """The balances with every stablecoin the candles take as cash under the portfolio's."""
    merged: dict[str, tuple[Decimal, Decimal, Decimal]] = {}
    for currency, amounts in sorted(balances.items()):
        key = cash if currency in CASH else currency
        before = merged.get(key, (Decimal(0), Decimal(0), Decimal(0)))
        merged[key] = (
            before[0] + amounts[0],
            before[1] + amounts[1],
            before[2] + amounts[2],
        )
    return merged


def _value(currency: str, total: Decimal, cash: str, prices: Prices) -> Decimal | None:
    if currency == cash:
        return total
    latest = prices.latest(currency)
    return None if latest is None else total * latest[0]


def _trade_in_cash(trade: ExchangeTrade, cash: str) -> ExchangeTrade:
    """The trade with a stablecoin quote or fee read as the portfolio's cash."""
    quote = cash if trade.quote in CASH else trade.quote
    fee_currency = cash if trade.fee_currency in CASH else trade.fee_currency
    return replace(trade, quote=quote, fee_currency=fee_currency)


async def audit_log(
    context: Context, *, first: int, after: int | None, user_id: uuid.UUID | None
) -> list[account_store.AuditEntry]:
    """The caller's audit entries, newest first; an admin may name any user's, or None: all."""
    caller = await require_user(context)
    if user_id is not None and user_id != caller.id and not caller.is_admin:
        raise Forbidden("only admins may read another user's audit log")
    if user_id is None and not caller.is_admin:
        user_id = caller.id
    async with context.services.reader() as session:
        return await account_store.audit_page(session, user_id=user_id, after=after, first=first)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: str  # shown once, in the answer that created it
    row: account_store.ApiKey


async def create_api_key(context: Context, *, name: str, scopes: list[ApiScope]) -> CreatedKey:
    """Make an API key for the caller; only its hash is stored.

    Only a session may make keys (a key making keys would outlive its own revocation), and a
    user holds at most COINQL_MAX_API_KEYS_PER_USER live ones.
    """
    user = await require_user(context)
    if context.api_key is not None:
        raise Forbidden("API keys are made with a session, not with another API key")
    name = name.strip()
    if not 0 < len(name) <= MAX_LABEL:
        raise InvalidInput("name", f"name must have 1 to {MAX_LABEL} characters")
    if not scopes:
        raise InvalidInput("scopes", "give at least one scope: READ or TRADE")
    limit = context.services.settings.max_api_keys_per_user
    key, prefix = auth.new_api_key()
    now = context.services.now()
    async with context.services.transaction() as session:
        if len(await account_store.list_api_keys(session, owner_id=user.id)) >= limit:
            raise InvalidInput("name", f"at most {limit} live API keys per user; revoke one")
        row = await account_store.add_api_key(
            session,
            owner_id=user.id,
            name=name,
            prefix=prefix,
            key=key,
            scopes=sorted({scope.value for scope in scopes}),
            now=now,
        )
        await account_store.record(
            session,
            user_id=user.id,
            action="API_KEY_CREATED",
            target=f"{prefix}:{name}",
            address=context.client_address(),
            now=now,
        )
    return CreatedKey(key, row)


async def list_api_keys(context: Context) -> list[account_store.ApiKey]:
    user = await require_user(context)
    async with context.services.reader() as session:
        return await account_store.list_api_keys(session, owner_id=user.id)


async def revoke_api_key(context: Context, *, key_id: uuid.UUID) -> None:
    """Revoke one of the caller's keys: it stops working on every replica, sockets included."""
    user = await require_user(context)
    now = context.services.now()
    async with context.services.transaction() as session:
        if not await account_store.revoke_api_key(
            session, key_id=key_id, owner_id=user.id, now=now
        ):
            raise NotFound(f"no API key {key_id}")
        await account_store.record(
            session,
            user_id=user.id,
            action="API_KEY_REVOKED",
            target=str(key_id),
            address=context.client_address(),
            now=now,
        )
    await context.services.live_sessions.revoke(session_id=key_id)
