"""The caller's rows: the store looks a row up for its owner, so that someone else's row is
missing exactly like an absent one (`NotFound` either way)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.errors import NotFound
from coinql.resolvers.auth import require_user
from coinql.resolvers.context import Context
from coinql.store import db

Row = TypeVar("Row")
FoundRow = TypeVar("FoundRow", covariant=True)


class Lookup(Protocol[FoundRow]):
    """A store getter with its key bound: `partial(get_strategy, strategy_id=...)`."""

    def __call__(self, session: AsyncSession, *, owner_id: uuid.UUID) -> Awaitable[FoundRow]: ...


def owned(row: Row | None, missing: str) -> Row:
    """The row the store found for the caller; `NotFound(missing)` when it found none."""
    if row is None:
        raise NotFound(missing)
    return row


async def get_owned(context: Context, lookup: Lookup[Row | None], missing: str) -> Row:
    """The caller's row that `lookup` finds; `NotFound(missing)` when it finds none."""
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        row = await lookup(session, owner_id=owner)
    return owned(row, missing)


async def delete_owned(context: Context, lookup: Lookup[object | None], missing: str) -> None:
    """Delete the caller's row that `lookup` finds; `NotFound(missing)` when it finds none."""
    owner = (await require_user(context)).id
    async with context.services.transaction() as session:
        await db.delete(session, owned(await lookup(session, owner_id=owner), missing))
