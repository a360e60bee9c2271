"""Ingestion bookkeeping: per-job state, and the lock that lets one process ingest at a time."""

from __future__ import annotations

import fcntl
import os
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy import Column, UniqueConstraint, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store.db import UTCDateTime

# An arbitrary constant: the PostgreSQL advisory lock id of the ingestion leader.
INGESTION_LOCK_KEY = 0x636F696E716C  # "coinql"


class IngestionState(SQLModel, table=True):
    """How one (exchange, symbol, interval) ingestion job is doing."""

    __tablename__ = "ingestion_states"
    __table_args__ = (UniqueConstraint("exchange", "symbol", "interval"),)

    id: int | None = Field(default=None, primary_key=True)
    exchange: str = Field(max_length=40)
    symbol: str = Field(max_length=20)
    interval: str = Field(max_length=3)
    last_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    last_success_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    failing_since: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    last_error: str | None = Field(default=None, max_length=500)
    consecutive_failures: int = Field(default=0)
    candles_added: int = Field(default=0)


async def get_state(
    session: AsyncSession, *, exchange: str, symbol: str, interval: str
) -> IngestionState:
    statement = select(IngestionState).where(
        IngestionState.exchange == exchange,
        IngestionState.symbol == symbol,
        IngestionState.interval == interval,
    )
    state = (await session.exec(statement)).first()
    if state is None:
        state = IngestionState(exchange=exchange, symbol=symbol, interval=interval)
        session.add(state)
        await session.flush()
    return state


async def record_success(
    session: AsyncSession, *, exchange: str, symbol: str, interval: str, now: datetime, added: int
) -> None:
    state = await get_state(session, exchange=exchange, symbol=symbol, interval=interval)
    state.last_attempt_at = state.last_success_at = now
    state.failing_since = None
    state.consecutive_failures = 0
    state.candles_added += added


async def record_failure(
    session: AsyncSession, *, exchange: str, symbol: str, interval: str, now: datetime, error: str
) -> None:
    state = await get_state(session, exchange=exchange, symbol=symbol, interval=interval)
    state.last_attempt_at = now
    state.failing_since = state.failing_since or now
    state.consecutive_failures += 1
    state.last_error = error[:500]


async def list_states(session: AsyncSession) -> list[IngestionState]:
    statement = select(IngestionState).order_by(
        col(IngestionState.exchange), col(IngestionState.symbol), col(IngestionState.interval)
    )
    return list((await session.exec(statement)).all())


class LeaderLock:
    """A non-blocking, process-wide lock: a PostgreSQL advisory lock held on a connection of
    its own, or on SQLite an exclusive `flock` on a file beside the database."""

    def __init__(self, engine: AsyncEngine, *, key: int = INGESTION_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._connection: AsyncConnection | None = None
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def _lock_path(self) -> Path:
        database = make_url(str(self.engine.url)).database or ""
        base = Path(database) if database and database != ":memory:" else Path(".coinql")
        return base.with_name(f"{base.name}.{self.key:x}.lock")

    async def try_acquire(self) -> bool:
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            connection = await self.engine.connect()
            acquired = (
                await connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                )
            ).scalar_one()
            if acquired:
                self._connection = connection
            else:
                await connection.close()
            return bool(acquired)
        handle = open(self._lock_path(), "ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._file = handle
        return True

    async def release(self) -> None:
        if self._connection is not None:
            try:
                await self._connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                )
            finally:
                await self._connection.close()
                self._connection = None
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
