"""Ingestion bookkeeping: how each (exchange, symbol, interval) job is doing.
(The lock that lets one process ingest at a time is coinql.realtime.leader's.)"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store.db import UTCDateTime, insert


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
        state = await insert(
            session, IngestionState(exchange=exchange, symbol=symbol, interval=interval)
        )
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
