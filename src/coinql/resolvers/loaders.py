"""DataLoaders: one statement per kind of read per request, whatever the number of parents.

A query of every portfolio, its positions and each position's asset and last price runs one
statement for the portfolios, one for all their transactions and one for all the assets.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader

from coinql.realtime.prices import LatestPrices
from coinql.store import market as market_store
from coinql.store import portfolio as portfolio_store


@dataclass
class Loaders:
    sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]]  # Services.reader
    prices: LatestPrices  # assets carry the live price, as the feed last published it
    entries: DataLoader[uuid.UUID, list[portfolio_store.LedgerEntry]] = field(init=False)
    assets: DataLoader[str, market_store.Asset | None] = field(init=False)

    def __post_init__(self) -> None:
        self.entries = DataLoader(load_fn=self._load_entries)
        self.assets = DataLoader(load_fn=self._load_assets)

    async def _load_entries(
        self, keys: Sequence[uuid.UUID]
    ) -> list[list[portfolio_store.LedgerEntry]]:
        async with self.sessions() as session:
            found = await portfolio_store.entries_of(session, portfolio_ids=list(keys))
        return [found[key] for key in keys]

    async def _load_assets(self, keys: Sequence[str]) -> list[market_store.Asset | None]:
        async with self.sessions() as session:
            found = await market_store.get_assets(session, symbols=list(keys))
        return [
            self.prices.apply(asset) if (asset := found.get(key.upper())) is not None else None
            for key in keys
        ]
