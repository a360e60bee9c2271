"""What the entities' types share: global ids, encoded and decoded, resolution of owned
nodes for their owner only, the one cursor codec and the one generic connection
(`Connection[T]`, exported as `AssetConnection`, `StrategyConnection`, ...) with its offset
and keyset pages (newest first, by creation time or another key), and `Deleted`."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Self, TypeVar

import strawberry
from strawberry import relay
from strawberry.types import Info

from coinql.domain.errors import InvalidInput, NotFound
from coinql.resolvers.context import Context
from coinql.schema.errors import NotAuthenticated
from coinql.schema.errors import NotFound as NotFoundError

NodeType = TypeVar("NodeType")
RowType = TypeVar("RowType")


def global_id(type_name: str, row_id: object) -> strawberry.ID:
    """The global id of the row `row_id` of `type_name`: what `decode_id` reads back."""
    return strawberry.ID(str(relay.GlobalID(type_name, str(row_id))))


def decode_id(value: str | relay.GlobalID, type_name: str) -> uuid.UUID:
    """The UUID inside a global id of `type_name`; `NotFound` for anything else."""
    try:
        global_id = value if isinstance(value, relay.GlobalID) else relay.GlobalID.from_id(value)
        if global_id.type_name != type_name:
            raise ValueError(global_id.type_name)
        return uuid.UUID(global_id.node_id)
    except ValueError:
        raise NotFound(f"no {type_name.lower()} {value}") from None


def decode_uuid(global_id: relay.GlobalID, missing: str) -> uuid.UUID:
    """The UUID inside a global id already told apart by its type; `NotFound(missing)` when
    its node id is not one."""
    try:
        return uuid.UUID(global_id.node_id)
    except ValueError:
        raise NotFound(missing) from None


def encode_cursor(position: int, kind: str = "offset") -> str:
    """The opaque cursor of the item at `position` in a page's ordering: its offset, or (for
    a keyset page such as the audit log's) its `kind` of key."""
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode()


def decode_cursor(cursor: str, kind: str = "offset") -> int:
    """The position inside a cursor of `encode_cursor`; `InvalidInput` naming `after` otherwise."""
    try:
        found, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if found != kind or not value.isdigit():
            raise ValueError(cursor)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("after", "after is not a cursor returned by this API") from None


def offset_after(after: str | None) -> int:
    """Where the page following the cursor `after` starts (0 without one)."""
    return decode_cursor(after) + 1 if after else 0


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def of(cls, cursors: Sequence[str], *, offset: int, has_next_page: bool) -> Self:
        return cls(
            has_next_page=has_next_page,
            has_previous_page=offset > 0,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )


@strawberry.type
class Edge(Generic[NodeType]):
    node: NodeType
    cursor: str


@strawberry.type
class Connection(Generic[NodeType]):
    """A page of nodes; `Connection[Strategy]` is exported as `StrategyConnection`, its edges
    as `StrategyEdge`. Subclass it to add fields (`AssetConnection` adds `totalCount`)."""

    edges: list[Edge[NodeType]]
    page_info: PageInfo

    @classmethod
    def of(
        cls,
        nodes: Sequence[NodeType],
        cursors: Sequence[str],
        *,
        offset: int,
        has_next_page: bool,
        **fields: Any,
    ) -> Self:
        """The page of `nodes`, each with its cursor; `offset` > 0 when a page comes before,
        `fields` are a subclass's."""
        return cls(
            edges=[
                Edge(node=node, cursor=cursor) for node, cursor in zip(nodes, cursors, strict=True)
            ],
            page_info=PageInfo.of(cursors, offset=offset, has_next_page=has_next_page),
            **fields,
        )

    @classmethod
    def page(
        cls, nodes: Sequence[NodeType], *, offset: int, has_next_page: bool, **fields: Any
    ) -> Self:
        """The page of `nodes`, the first of which is at `offset`; `fields` are a subclass's."""
        cursors = [encode_cursor(index) for index in range(offset, offset + len(nodes))]
        return cls.of(nodes, cursors, offset=offset, has_next_page=has_next_page, **fields)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[RowType],
        node: Callable[[RowType], NodeType],
        *,
        first: int,
        offset: int,
    ) -> Self:
        """The page of the first `first` of `rows`, the first of which is at `offset`: `rows`
        were asked for one more than `first`, and holding it says there is a next page."""
        return cls.page(
            [node(row) for row in rows[:first]], offset=offset, has_next_page=len(rows) > first
        )


@strawberry.type
class Deleted:
    id: strawberry.ID


DeleteResult = Annotated[
    Deleted | NotFoundError | NotAuthenticated, strawberry.union("DeleteResult")
]


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
    async def of_row(cls, context: Context, row_id: uuid.UUID | None) -> Self | None:
        """The node of the row `row_id` for its owner: None without an id, or when the row is
        absent or someone else's (a bot's `portfolio`, say)."""
        if row_id is None:
            return None
        try:
            row = await cls.load_owned(context, row_id)
        except NotFound:
            return None
        return cls.from_model(row) if row is not None else None

    @classmethod
    async def owned(cls, info: Info[Context, None], id: strawberry.ID) -> Self | None:
        """The node of global id `id` for its owner: null when `id` is not one of this type's
        or names a row that is absent or someone else's (the `portfolio(id:)` fields)."""
        try:
            row_id = decode_id(id, cls.__name__)
        except NotFound:
            return None
        return await cls.of_row(info.context, row_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        if await info.context.user() is None:
            return [None for _ in node_ids]
        return [await cls.of_row(info.context, _uuid_or_none(node_id)) for node_id in node_ids]


def _uuid_or_none(node_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(node_id)
    except ValueError:
        return None


def _created_micros(row: Any) -> int:
    moment: datetime = row.created_at
    return int(moment.timestamp() * 1_000_000)


def keyset_before(after: str | None, kind: str) -> datetime | None:
    """The creation time a keyset cursor of `kind` points at: the page holds what is older."""
    if after is None:
        return None
    return datetime.fromtimestamp(decode_cursor(after, kind) / 1_000_000, tz=UTC)


def keyset_page(
    rows: Sequence[RowType],
    node: Callable[[RowType], NodeType],
    *,
    first: int,
    after: str | None,
    kind: str,
    key: Callable[[RowType], int] = _created_micros,
) -> Connection[NodeType]:
    """The page of the nodes of `rows[:first]` (newest first; `rows` holds one more when
    there is a next page), each cursor its row's `key` of `kind`, by default its creation
    time."""
    page = rows[:first]
    return Connection.of(
        [node(row) for row in page],
        [encode_cursor(key(row), kind) for row in page],
        offset=int(after is not None),
        has_next_page=len(rows) > first,
    )
