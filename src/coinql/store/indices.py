"""Saved indices: an allocation rule kept live under a name (its value is computed from the
candles whenever it is read, `coinql.resolvers.indices`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store.db import UTCDateTime, get_if_owned, insert, parent_key


class SavedIndex(SQLModel, table=True):
    """An index of its owner's: `spec` is the allocation strategy it follows
    (`StrategySpec.to_json`), `benchmark` the symbol it is compared with."""

    __tablename__ = "indices"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = parent_key("users.id")
    name: str = Field(max_length=100)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    benchmark: str | None = Field(default=None, max_length=20)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


async def add_index(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    name: str,
    spec: dict[str, Any],
    benchmark: str | None,
    now: datetime,
) -> SavedIndex:
    row = SavedIndex(owner_id=owner_id, name=name, spec=spec, benchmark=benchmark, created_at=now)
    return await insert(session, row)


async def get_index(
    session: AsyncSession, *, owner_id: uuid.UUID, index_id: uuid.UUID
) -> SavedIndex | None:
    """An owner's index; None for another's and for none alike."""
    return await get_if_owned(session, SavedIndex, index_id, owner_id=owner_id)


async def list_indices(
    session: AsyncSession, *, owner_id: uuid.UUID, offset: int, limit: int
) -> list[SavedIndex]:
    statement = (
        select(SavedIndex)
        .where(SavedIndex.owner_id == owner_id)
        .order_by(col(SavedIndex.created_at), col(SavedIndex.id))
        .offset(offset)
        .limit(limit)
    )
    return list((await session.exec(statement)).all())
