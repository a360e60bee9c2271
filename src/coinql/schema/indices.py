"""Saved indices: an allocation rule kept live, its value from inception, its weights now and
at each rebalance, and its tear sheet against its benchmark (`coinql.resolvers.indices`)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from coinql.domain.bounds import Bounds
from coinql.domain.tearsheet import ReturnStream
from coinql.resolvers import indices as index_resolvers
from coinql.resolvers.benchmarks import benchmark_loader
from coinql.resolvers.context import Context
from coinql.schema.bounds import PageSizeArgument, RiskFreeRateArgument, bounded
from coinql.schema.enums import Rebalance, UniverseRank
from coinql.schema.errors import InvalidInput, NotAuthenticated
from coinql.schema.nodes import (
    Connection,
    Deleted,
    DeleteResult,
    OwnedNode,
    decode_id,
    offset_after,
)
from coinql.schema.performance import Performance, Series
from coinql.schema.permissions import IsAuthenticated
from coinql.schema.scalars import finite, moment
from coinql.schema.strategies import MAX_UNIVERSE, StrategyKindInput
from coinql.store.indices import SavedIndex


@strawberry.type
class IndexWeight:
    symbol: str
    weight: float


@strawberry.type(description="The weights an index took at one rebalance.")
class IndexRebalance:
    time: datetime = strawberry.field(description="The close it rebalanced at.")
    weights: list[IndexWeight]


def _weights(found: list[tuple[str, float]]) -> list[IndexWeight]:
    return [IndexWeight(symbol=symbol, weight=weight) for symbol, weight in found]


@strawberry.type(
    description="An allocation rule kept live: its value from its first day (1,000 then),"
    " computed from the stored candles whenever it is read, so each new candle extends it."
    " Its value fields are null while its candidates have too little common history."
)
class Index(OwnedNode):
    name: str
    kind: str
    definition: JSON
    benchmark: str | None
    created_at: datetime
    model: strawberry.Private[SavedIndex]
    # The values, computed once per answer however many fields read them.
    computed: strawberry.Private[dict[str, asyncio.Task[Any]]]

    @classmethod
    def from_model(cls, row: SavedIndex) -> Self:
        return cls(
            name=row.name,
            kind=str(row.spec["kind"]),
            definition=JSON(row.spec),
            benchmark=row.benchmark,
            created_at=row.created_at,
            model=row,
            computed={},
        )

    @staticmethod
    async def load_owned(context: Context, index_id: uuid.UUID) -> Any:
        return await index_resolvers.get_index(context, index_id=index_id)

    async def _values(self, info: Info[Context, None]) -> index_resolvers.IndexValues | None:
        if "values" not in self.computed:
            self.computed["values"] = asyncio.ensure_future(
                index_resolvers.index_values(info.context, self.model)
            )
        found: index_resolvers.IndexValues | None = await self.computed["values"]
        return found

    @strawberry.field(description="After the last close.")
    async def value(self, info: Info[Context, None]) -> float | None:
        found = await self._values(info)
        return finite(float(found.values[-1])) if found is not None else None

    @strawberry.field(description="After each daily close from its first day.")
    async def value_history(self, info: Info[Context, None]) -> Series | None:
        found = await self._values(info)
        return Series(timestamps=found.timestamps, values=found.values) if found else None

    @strawberry.field(description="What it holds now, heaviest first (weights as they drifted).")
    async def constituents(self, info: Info[Context, None]) -> list[IndexWeight] | None:
        found = await self._values(info)
        return _weights(found.constituents) if found is not None else None

    @strawberry.field(description="The weights it took at each rebalance, oldest first.")
    async def rebalances(self, info: Info[Context, None]) -> list[IndexRebalance] | None:
        found = await self._values(info)
        if found is None:
            return None
        return [
            IndexRebalance(time=moment(item.time), weights=_weights(item.weights))
            for item in found.rebalances
        ]

    @strawberry.field(description="The tear sheet of its daily values, as any return stream.")
    async def performance(
        self, info: Info[Context, None], risk_free_rate: RiskFreeRateArgument = 0.0
    ) -> Performance | None:
        found = await self._values(info)
        if found is None:
            return None
        interval = index_resolvers.INTERVAL
        stream = ReturnStream.of_equity(
            self.name,
            found.timestamps,
            found.values,
            interval,
            periods_per_year=interval.periods_per_year,
            risk_free_rate=risk_free_rate,
        )
        start = int(found.timestamps[0]) if found.timestamps.size else None
        benchmarks = benchmark_loader(info.context, interval=interval, start=start, end=None)
        return Performance.from_model(stream, benchmarks)


@strawberry.input
class IndexInput:
    name: str
    kind: StrategyKindInput = strawberry.field(
        description="An allocation strategy, e.g. {marketCapWeight: {lookback: 90}}."
    )
    symbols: list[str] | None = strawberry.field(
        default=None, description="Its candidates; or universeTop of the universe."
    )
    universe_top: int | None = bounded(
        Bounds(1, MAX_UNIVERSE),
        default=None,
        description="The top N of the universe (stablecoins aside) at each rebalance.",
    )
    universe_by: UniverseRank = strawberry.field(
        default=UniverseRank.QUOTE_VOLUME, description="How universeTop ranks."
    )
    rebalance: Rebalance = Rebalance.MONTHLY
    benchmark: str | None = strawberry.field(default=None, description="A symbol, e.g. BTC.")


CreateIndexResult = Annotated[
    Index | InvalidInput | NotAuthenticated, strawberry.union("CreateIndexResult")
]


@strawberry.type
class IndexQuery:
    @strawberry.field(description="The caller's indices.", permission_classes=[IsAuthenticated])
    async def indices(
        self, info: Info[Context, None], first: PageSizeArgument = 50, after: str | None = None
    ) -> Connection[Index] | None:
        offset = offset_after(after)
        found = await index_resolvers.list_indices(info.context, first=first + 1, offset=offset)
        return Connection[Index].from_rows(found, Index.from_model, first=first, offset=offset)

    @strawberry.field(
        description="One of the caller's indices; null if absent or someone else's.",
        permission_classes=[IsAuthenticated],
    )
    async def index(self, info: Info[Context, None], id: strawberry.ID) -> Index | None:
        return await Index.owned(info, id)


@strawberry.type
class IndexMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_index(
        self, info: Info[Context, None], input: IndexInput
    ) -> CreateIndexResult | None:
        kind, params = input.kind.chosen()
        created = await index_resolvers.create_index(
            info.context,
            index_resolvers.IndexRequest(
                name=input.name,
                kind=kind,
                params=params,
                symbols=input.symbols or [],
                universe_top=input.universe_top,
                universe_by=input.universe_by,
                rebalance=input.rebalance,
                benchmark=input.benchmark,
            ),
        )
        return Index.from_model(created)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def delete_index(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeleteResult | None:
        await index_resolvers.delete_index(info.context, index_id=decode_id(id, "Index"))
        return Deleted(id=id)
