"""Exchange connections, their snapshots and paper books (API keys and the audit log:
`coinql.store.api_keys`).

Every read is scoped to an owner: another user's connection or key looks exactly like one that
does not exist. Secrets arrive here already encrypted (`coinql.store.secrets.SecretBox`): the
tables hold Fernet tokens, never a secret in clear, and no function returns a decrypted one
except `connection_credentials`, which the exchange client is built from. Nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Text, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store.db import UTCDateTime, get_if_owned, insert, parent_key
from coinql.store.secrets import SecretBox


class ExchangeConnection(SQLModel, table=True):
    """A user's account on an exchange (or on the paper exchange), and its portfolio.

    `can_read`, `can_trade` and `can_withdraw` are what the exchange reported when the
    connection was verified (None: it does not say). `status` is ACTIVE, SYNCING or ERROR.
    """

    __tablename__ = "exchange_connections"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = parent_key("users.id")
    portfolio_id: uuid.UUID = parent_key("portfolios.id")
    exchange: str = Field(max_length=40)
    label: str = Field(max_length=100)
    api_key_token: str = Field(sa_column=Column(Text, nullable=False))
    secret_token: str = Field(sa_column=Column(Text, nullable=False))
    passphrase_token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    api_key_mask: str = Field(max_length=4)
    sandbox: bool = Field(default=False)
    can_read: bool | None = Field(default=None)
    can_trade: bool | None = Field(default=None)
    can_withdraw: bool | None = Field(default=None)
    status: str = Field(default="ACTIVE", max_length=20)
    last_sync_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    last_error: str | None = Field(default=None, max_length=300)
    failures: int = Field(default=0)
    sync_started_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    # When the last sync ended, well or not: the scheduler's backoff counts from it.
    last_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class AccountSnapshot(SQLModel, table=True):
    """Balances (and derivatives positions) as a sync read them; amounts as decimal strings."""

    __tablename__ = "account_snapshots"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    connection_id: uuid.UUID = parent_key("exchange_connections.id")
    taken_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    balances: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    positions: list[Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class PaperAccount(SQLModel, table=True):
    """A paper connection's book (`PaperBook.to_json`); `version` makes each change atomic."""

    __tablename__ = "paper_accounts"

    connection_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("exchange_connections.id", ondelete="CASCADE"), primary_key=True
        )
    )
    book: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    version: int = Field(default=0)


async def add_connection(
    session: AsyncSession,
    *,
    box: SecretBox,
    owner_id: uuid.UUID,
    portfolio_id: uuid.UUID,
    exchange: str,
    label: str,
    api_key: str,
    secret: str,
    passphrase: str | None,
    sandbox: bool,
    permissions: tuple[bool | None, bool | None, bool | None],
    now: datetime,
) -> ExchangeConnection:
    """Store a verified connection, its key, secret and passphrase encrypted."""
    can_read, can_trade, can_withdraw = permissions
    connection = ExchangeConnection(
        owner_id=owner_id,
        portfolio_id=portfolio_id,
        exchange=exchange,
        label=label,
        api_key_token=box.encrypt(api_key),
        secret_token=box.encrypt(secret),
        passphrase_token=None if passphrase is None else box.encrypt(passphrase),
        api_key_mask=api_key[-4:],
        sandbox=sandbox,
        can_read=can_read,
        can_trade=can_trade,
        can_withdraw=can_withdraw,
        created_at=now,
    )
    return await insert(session, connection)


async def get_connection(
    session: AsyncSession, *, connection_id: uuid.UUID, owner_id: uuid.UUID
) -> ExchangeConnection | None:
    """Return an owner's connection; None for another's and for none alike."""
    return await get_if_owned(session, ExchangeConnection, connection_id, owner_id=owner_id)


async def list_connections(
    session: AsyncSession, *, owner_id: uuid.UUID
) -> list[ExchangeConnection]:
    """Return an owner's connections, oldest first."""
    result = await session.exec(
        select(ExchangeConnection)
        .where(ExchangeConnection.owner_id == owner_id)
        .order_by(col(ExchangeConnection.created_at), col(ExchangeConnection.id))
    )
    return list(result.all())


def connection_credentials(
    connection: ExchangeConnection, box: SecretBox
) -> tuple[str, str, str | None]:
    """Return the decrypted (api key, secret, passphrase), for building the exchange client."""
    passphrase = connection.passphrase_token
    return (
        box.decrypt(connection.api_key_token),
        box.decrypt(connection.secret_token),
        None if passphrase is None else box.decrypt(passphrase),
    )


async def rotate_secrets(session: AsyncSession, *, box: SecretBox) -> int:
    """Re-encrypt every stored secret under the box's newest key; return how many changed."""
    changed = 0
    result = await session.exec(select(ExchangeConnection))
    for connection in result.all():
        for name in ("api_key_token", "secret_token", "passphrase_token"):
            token = getattr(connection, name)
            if token is not None and not box.is_current(token):
                setattr(connection, name, box.rotate(token))
                changed += 1
        session.add(connection)
    await session.flush()
    return changed


async def latest_snapshot(
    session: AsyncSession, *, connection_id: uuid.UUID
) -> AccountSnapshot | None:
    """Return a connection's newest snapshot, or None before its first sync."""
    result = await session.exec(
        select(AccountSnapshot)
        .where(AccountSnapshot.connection_id == connection_id)
        .order_by(col(AccountSnapshot.taken_at).desc())
        .limit(1)
    )
    return result.first()


async def load_paper_book(
    session: AsyncSession, *, connection_id: uuid.UUID
) -> PaperAccount | None:
    """Return a paper connection's stored book with the version it was read at."""
    return await session.get(PaperAccount, connection_id)


async def add_paper_book(
    session: AsyncSession, *, connection_id: uuid.UUID, book: dict[str, Any]
) -> PaperAccount:
    """Store a new paper connection's opening book."""
    return await insert(session, PaperAccount(connection_id=connection_id, book=book))


async def save_paper_book(
    session: AsyncSession, *, account: PaperAccount, book: dict[str, Any]
) -> bool:
    """Store `book` if nobody changed it since `account` was read; False when someone did.

    One conditional UPDATE on the version, so two requests that each read the book and
    placed an order can never both write: the loser re-reads and tries again.
    """
    statement = (
        update(PaperAccount)
        .where(
            col(PaperAccount.connection_id) == account.connection_id,
            col(PaperAccount.version) == account.version,
        )
        .values(book=book, version=account.version + 1)
        .returning(col(PaperAccount.version))
    )
    return (await session.exec(statement)).first() is not None


async def claim_sync(
    session: AsyncSession, *, connection_id: uuid.UUID, now: datetime, stale_before: datetime
) -> bool:
    """Mark a connection SYNCING in one statement; False while another sync holds it.

    A mark older than `stale_before` belonged to a sync that died, and is taken over.
    """
    statement = (
        update(ExchangeConnection)
        .where(
            col(ExchangeConnection.id) == connection_id,
            (col(ExchangeConnection.status) != "SYNCING")
            | (col(ExchangeConnection.sync_started_at) < stale_before),
        )
        .values(status="SYNCING", sync_started_at=now)
        .returning(col(ExchangeConnection.id))
    )
    return (await session.exec(statement)).first() is not None


async def end_sync(
    session: AsyncSession, *, connection_id: uuid.UUID, now: datetime, error: str | None
) -> None:
    """Release the SYNCING mark: ACTIVE after a sync that worked, ERROR with its reason."""
    values: dict[str, Any] = {"sync_started_at": None, "last_attempt_at": now}
    if error is None:
        values |= {"status": "ACTIVE", "last_sync_at": now, "last_error": None, "failures": 0}
    else:
        values |= {
            "status": "ERROR",
            "last_error": error[:300],
            "failures": ExchangeConnection.failures + 1,
        }
    await session.exec(
        update(ExchangeConnection)
        .where(col(ExchangeConnection.id) == connection_id)
        .values(**values)
    )


async def connections_to_sync(
    session: AsyncSession,
    *,
    due: Callable[[ExchangeConnection], bool],
    stale_before: datetime,
    limit: int,
) -> list[ExchangeConnection]:
    """Up to `limit` connections of every user that `due` says should sync now, the longest
    waiting first (never tried, then by their last attempt); those SYNCING are left out,
    unless their mark is older than `stale_before` (a sync that died)."""
    result = await session.exec(
        select(ExchangeConnection)
        .where(
            (col(ExchangeConnection.status) != "SYNCING")
            | (col(ExchangeConnection.sync_started_at) < stale_before)
        )
        .order_by(
            col(ExchangeConnection.last_attempt_at).is_not(None),
            col(ExchangeConnection.last_attempt_at),
            col(ExchangeConnection.id),
        )
    )
    return [connection for connection in result.all() if due(connection)][:limit]


async def sync_states(session: AsyncSession) -> list[tuple[str, int, datetime | None]]:
    """Every connection's (status, failures, last sync), for /health/ready."""
    result = await session.exec(
        select(
            ExchangeConnection.status,
            ExchangeConnection.failures,
            ExchangeConnection.last_sync_at,
        )
    )
    return [(status, failures, synced) for status, failures, synced in result.all()]


async def rename_connection(
    session: AsyncSession, *, connection_id: uuid.UUID, owner_id: uuid.UUID, label: str
) -> ExchangeConnection | None:
    """Relabel an owner's connection; None if they have no such connection."""
    connection = await get_connection(session, connection_id=connection_id, owner_id=owner_id)
    if connection is not None:
        connection.label = label
        await session.flush()
    return connection


async def add_snapshot(
    session: AsyncSession,
    *,
    connection_id: uuid.UUID,
    taken_at: datetime,
    balances: dict[str, Any],
    positions: list[Any] | None = None,
) -> AccountSnapshot:
    """Keep the balances a sync read."""
    snapshot = AccountSnapshot(
        connection_id=connection_id, taken_at=taken_at, balances=balances, positions=positions
    )
    return await insert(session, snapshot)
