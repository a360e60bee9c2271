"""Exchange connections and account sync: the caller's real (or paper) accounts in coinql.

Adding a connection verifies it through ccxt before anything is stored, and gives it a
portfolio of its own; a sync reads the account's balances and trades and books what changed
into that portfolio (`coinql.domain.reconcile`), so it has positions, PnL, risk and live value
like a hand-kept one. Secrets go into the store encrypted and come out only to build the
exchange client; nothing here logs or returns them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial

import ccxt

from coinql.domain import auth
from coinql.domain.auth import ApiScope
from coinql.domain.errors import Forbidden, InvalidInput, NotFound
from coinql.domain.ledger import CostBasis
from coinql.domain.paper import PaperBook
from coinql.exchanges.accounts import AccountClient, verify
from coinql.exchanges.paper import PaperExchange
from coinql.realtime.accounts import PAPER, box_of, paper_book
from coinql.realtime.accounts import Snapshot as Snapshot
from coinql.resolvers.auth import audit, require_user
from coinql.resolvers.context import Context
from coinql.resolvers.owned import get_owned
from coinql.store import accounts as account_store
from coinql.store import api_keys as key_store
from coinql.store import portfolio as portfolio_store
from coinql.store.accounts import ExchangeConnection

MAX_LABEL = 100


@dataclass(frozen=True, slots=True)
class NewConnection:
    exchange: str
    label: str
    api_key: str
    secret: str
    passphrase: str | None
    sandbox: bool
    allow_withdraw: bool


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


async def add_connection(context: Context, new: NewConnection) -> ExchangeConnection:
    """Verify the credentials with the exchange, then store the connection and its portfolio.

    A key the exchange says can withdraw is refused unless `allow_withdraw`; nothing is
    stored when verification fails.
    """
    user = await require_user(context)
    new = _checked(new)
    settings = context.services.settings
    book: PaperBook | None = None
    syncer = context.services.accounts
    if new.exchange == PAPER:
        book = paper_book(settings)
        client: AccountClient = PaperExchange(book, await syncer.market_prices())
    else:
        client = syncer.clients(
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
        await audit(
            context, session, user.id, "CONNECTION_ADDED", target=f"{new.exchange}:{connection.id}"
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
        await audit(
            context,
            session,
            user.id,
            "CONNECTION_REMOVED",
            target=f"{connection.exchange}:{connection.id}",
        )


async def rename_connection(
    context: Context, *, connection_id: uuid.UUID, label: str
) -> ExchangeConnection:
    """Relabel one of the caller's connections (its portfolio keeps its own name)."""
    user = await require_user(context)
    label = label.strip()
    if not 0 < len(label) <= MAX_LABEL:
        raise InvalidInput("label", f"label must have 1 to {MAX_LABEL} characters")
    async with context.services.transaction() as session:
        connection = await account_store.rename_connection(
            session, connection_id=connection_id, owner_id=user.id, label=label
        )
        if connection is None:
            raise NotFound(f"no exchange connection {connection_id}")
    return connection


async def sync_connection(context: Context, *, connection_id: uuid.UUID) -> Snapshot:
    """Sync one of the caller's connections now (`coinql.realtime.accounts.AccountSync`):
    `Conflict` while another sync of it runs."""
    connection = await get_connection(context, connection_id=connection_id)
    snapshot = await context.services.accounts.sync(connection, address=context.client_address())
    context.loaders.entries.clear_all()  # later fields of this request see the bookings
    return snapshot


async def audit_log(
    context: Context, *, first: int, after: int | None, user_id: uuid.UUID | None
) -> list[key_store.AuditEntry]:
    """The caller's audit entries, newest first; an admin may name any user's, or None: all."""
    caller = await require_user(context)
    if user_id is not None and user_id != caller.id and not caller.is_admin:
        raise Forbidden("only admins may read another user's audit log")
    if user_id is None and not caller.is_admin:
        user_id = caller.id
    async with context.services.reader() as session:
        return await key_store.audit_page(session, user_id=user_id, after=after, first=first)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: str  # shown once, in the answer that created it
    row: key_store.ApiKey


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
        if len(await key_store.list_api_keys(session, owner_id=user.id)) >= limit:
            raise InvalidInput("name", f"at most {limit} live API keys per user; revoke one")
        row = await key_store.add_api_key(
            session,
            owner_id=user.id,
            name=name,
            prefix=prefix,
            key=key,
            scopes=sorted({scope.value for scope in scopes}),
            now=now,
        )
        await audit(context, session, user.id, "API_KEY_CREATED", target=f"{prefix}:{name}")
    return CreatedKey(key, row)


async def list_api_keys(context: Context) -> list[key_store.ApiKey]:
    user = await require_user(context)
    async with context.services.reader() as session:
        return await key_store.list_api_keys(session, owner_id=user.id)


async def revoke_api_key(context: Context, *, key_id: uuid.UUID) -> None:
    """Revoke one of the caller's keys: it stops working on every replica, sockets included."""
    user = await require_user(context)
    now = context.services.now()
    async with context.services.transaction() as session:
        if not await key_store.revoke_api_key(session, key_id=key_id, owner_id=user.id, now=now):
            raise NotFound(f"no API key {key_id}")
        await audit(context, session, user.id, "API_KEY_REVOKED", target=str(key_id))
    await context.services.live_sessions.revoke(session_id=key_id)
