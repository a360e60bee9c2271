"""The async engine and session factory, for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from sqlalchemy import Column, DateTime, ForeignKey, Numeric, String, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.orm.session import Session as SyncSession

SQLITE_BUSY_TIMEOUT_MS = 5_000

Row = TypeVar("Row")


class Owned(Protocol):
    owner_id: uuid.UUID


OwnedRow = TypeVar("OwnedRow", bound=Owned)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no offset, so values are normalised to UTC on the way in and tagged on the way
    out; naive datetimes are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; coinql stores UTC-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """An engine with coinql's connection settings for the URL's dialect.

    SQLite: WAL journal (readers do not block the writer), foreign keys enforced, and a busy
    timeout so that a database locked by another process fails with a clear error instead of
    hanging. PostgreSQL: connections are checked before use so the pool survives a restart.
    """
    if database_url.startswith("sqlite"):
        engine = _create_async_engine(
            database_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        return engine
    return _create_async_engine(database_url, pool_pre_ping=True, **kwargs)


# What a lost or refused database connection raises, by name so that the asyncpg driver need
# not be imported where SQLite is used: the server going away mid-query, shutting down
# ("terminating connection due to administrator command"), starting up, or refusing.
_CONNECTION_LOSS = {
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "AdminShutdownError",
    "CannotConnectNowError",
    "CrashShutdownError",
    "InterfaceError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "BrokenPipeError",
}


def is_connection_loss(error: BaseException) -> bool:
    """True if `error`, or anything it was raised from, means the database connection was
    lost or could not be made (as opposed to a bad statement or a constraint)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if type(current).__name__ in _CONNECTION_LOSS:
            return True
        current = current.__cause__ or current.__context__
    return False


def create_session_factory(
    engine: AsyncEngine, *, on_commit: Callable[[Session], None] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine`; `on_commit` is called with each one's (sync) session after each
    of its transactions commits, and what a rolled-back transaction noted is forgotten."""
    if on_commit is None:
        return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    # A session class of this factory's own: the hooks reach its sessions only.
    hooked = type("HookedSession", (SyncSession,), {})
    event.listen(hooked, "before_flush", _note_flushed)
    event.listen(hooked, "after_commit", on_commit)
    event.listen(hooked, "after_rollback", lambda session: session.info.clear())
    return async_sessionmaker(
        engine, class_=AsyncSession, sync_session_class=hooked, expire_on_commit=False
    )


FLUSHED_TABLES = "coinql.flushed_tables"


def _note_flushed(session: Session, _context: Any, _instances: Any) -> None:
    tables: set[str] = session.info.setdefault(FLUSHED_TABLES, set())
    for row in (*session.new, *session.dirty, *session.deleted):
        name = getattr(type(row), "__tablename__", None)
        if isinstance(name, str):
            tables.add(name)


def flushed_tables(session: Session) -> set[str]:
    """The tables a transaction added, changed or deleted rows of through the session (a
    hooked factory's), forgotten once asked (after it ended)."""
    found: set[str] = session.info.pop(FLUSHED_TABLES, set())
    return found


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


class DecimalType(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC on PostgreSQL, text on SQLite (which has no decimal type and
    would round through floats)."""

    impl = String(80)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(String(80))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not value.is_finite():
            raise ValueError("only finite decimals are stored")
        return value if dialect.name == "postgresql" else format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


def parent_key(target: str) -> Any:
    """A required, indexed foreign key to `target` ("users.id"): the row goes when its parent
    does (ON DELETE CASCADE)."""
    return Field(
        sa_column=Column(ForeignKey(target, ondelete="CASCADE"), nullable=False, index=True)
    )


async def insert(session: AsyncSession, row: Row) -> Row:
    """Add `row` and flush, so that its generated columns are set; return it."""
    session.add(row)
    await session.flush()
    return row


async def get_if_owned(
    session: AsyncSession, model: type[OwnedRow], key: uuid.UUID, *, owner_id: uuid.UUID
) -> OwnedRow | None:
    """The `model` row with primary key `key` if `owner_id` owns it; None for another's and
    for none alike."""
    row = await session.get(model, key)
    return row if row is not None and row.owner_id == owner_id else None


async def delete(session: AsyncSession, row: object) -> None:
    """Delete `row` and flush."""
    await session.delete(row)
    await session.flush()
