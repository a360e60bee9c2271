"""What the owned entities' types share: ids from their stored row, resolution of global ids
for their owner only, and cursor pages."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Self, TypeVar

import strawberry
from strawberry import relay
from strawberry.types import Info

from coinql.domain.errors import NotFound
from coinql.resolvers.context import Context

M = TypeVar("M")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def of(cls, cursors: list[str], *, offset: int, has_next_page: bool) -> Self:
        return cls(
            has_next_page=has_next_page,
            has_previous_page=offset > 0,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )


class OwnedNode(relay.Node):
    """A Node backed by a stored row (`model`) whose id is a UUID, visible to its owner only:
    anyone else's id resolves to null, exactly like a missing one."""

    @classmethod
    def resolve_id(cls, root: Any, *, info: Info[Context, None]) -> str:
        return str(root.model.id)

    @classmethod
    async def resolve_owned(
        cls,
        info: Info[Context, None],
        node_ids: Iterable[str],
        load: Callable[[Context, uuid.UUID], Awaitable[M | None]],
        build: Callable[[M], Any],
    ) -> list[Any]:
        if await info.context.user() is None:
            return [None for _ in node_ids]
        found: list[Any] = []
        for node_id in node_ids:
            try:
                row = await load(info.context, uuid.UUID(node_id))
            except (ValueError, NotFound):
                row = None
            found.append(build(row) if row is not None else None)
        return found
