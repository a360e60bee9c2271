"""What the owned entities' types share: ids from their stored row, resolution of global ids
for their owner only, and cursor pages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Self

import strawberry
from strawberry import relay
from strawberry.types import Info

from coinql.domain.errors import NotFound
from coinql.resolvers.context import Context


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
    anyone else's id resolves to null, exactly like a missing one. Each type says how to load
    its row for the signed-in user (`load_owned`) and build itself from it (`from_model`)."""

    @classmethod
    def resolve_id(cls, root: Any, *, info: Info[Context, None]) -> str:
        return str(root.model.id)

    @staticmethod
    async def load_owned(context: Context, row_id: uuid.UUID) -> Any:
        raise NotImplementedError

    @classmethod
    def from_model(cls, model: Any) -> Self:
        raise NotImplementedError

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        if await info.context.user() is None:
            return [None for _ in node_ids]
        found: list[Self | None] = []
        for node_id in node_ids:
            try:
                row = await cls.load_owned(info.context, uuid.UUID(node_id))
            except (ValueError, NotFound):
                row = None
            found.append(cls.from_model(row) if row is not None else None)
        return found
