"""DataLoaders: one statement per kind of read per request, whatever the number of parents.

A query of every portfolio, its positions and each position's asset and last price runs one
statement for the portfolios, one for all their transactions and one for all the assets. A
page of assets with their ranks runs one statement for the page and one for the ranking; their
candles come from the series cache (coinql.realtime.series_cache), one read per series.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader

from coinql.domain.candles import Interval
from coinql.domain.derivatives import FundingRates, PerpetualBars
from coinql.realtime.prices import LatestPrices
from coinql.realtime.series_cache import SeriesCache, SeriesRead
from coinql.store import derivatives as derivatives_store
from coinql.store import market as market_store
from coinql.store import portfolio as portfolio_store


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Candles of a market at an interval with open time in [start, end]."""

    market_id: int
    interval: Interval
    start: int | None
    end: int | None


@dataclass(frozen=True, slots=True)
class MarketKey:
    """The primary market of an asset (the one of its data source, else its first)."""

    asset_id: int
    data_source: str


@dataclass(frozen=True, slots=True)
class FundingKey:
    """Fundings of a perpetual paid in [start, end]."""

    perpetual_id: int
    start: int | None
    end: int | None


@dataclass(frozen=True, slots=True)
class BarsKey:
    """Bars of a perpetual at an interval (stored, or the last of each bucket of a finer
    stored one) with open time in [start, end]: openInterest and basis share one read."""

    perpetual_id: int
    interval: Interval
    start: int | None
    end: int | None


@dataclass
class Loaders:
    sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]]  # Context.reader
    prices: LatestPrices  # assets carry the live price, as the feed last published it
    series: SeriesCache
    entries: DataLoader[uuid.UUID, list[portfolio_store.LedgerEntry]] = field(init=False)
    assets: DataLoader[str, market_store.Asset | None] = field(init=False)
    ranks: DataLoader[int, int | None] = field(init=False)
    markets: DataLoader[MarketKey, market_store.Market | None] = field(init=False)
    candles: DataLoader[SeriesKey, SeriesRead | None] = field(init=False)
    perpetuals: DataLoader[MarketKey, derivatives_store.Perpetual | None] = field(init=False)
    funding: DataLoader[FundingKey, FundingRates] = field(init=False)
    perpetual_bars: DataLoader[BarsKey, PerpetualBars] = field(init=False)

    def __post_init__(self) -> None:
        self.entries = DataLoader(load_fn=self._load_entries)
        self.assets = DataLoader(load_fn=self._load_assets)
        self.ranks = DataLoader(load_fn=self._load_ranks)
        self.markets = DataLoader(load_fn=self._load_markets)
        self.candles = DataLoader(load_fn=self._load_candles)
        self.perpetuals = DataLoader(load_fn=self._load_perpetuals)
        self.funding = DataLoader(load_fn=self._load_funding)
        self.perpetual_bars = DataLoader(load_fn=self._load_perpetual_bars)

    async def snapshot(self) -> market_store.AssetSnapshot | None:
        """Every asset and market from the cache, read once if it holds none (no statement
        at all when it does)."""
        found = self.series.cached_assets()
        if found is None:
            async with self.sessions() as session:
                found = await self.series.assets(session)
        return found

    async def _load_ranks(self, keys: Sequence[int]) -> list[int | None]:
        snapshot = await self.snapshot()
        if snapshot is not None:
            ranks = snapshot.ranks
        else:
            async with self.sessions() as session:
                ranks = await market_store.market_cap_ranks(session)
        return [ranks.get(key) for key in keys]

    async def _load_markets(self, keys: Sequence[MarketKey]) -> list[market_store.Market | None]:
        snapshot = await self.snapshot()
        if snapshot is not None:
            found = snapshot.markets
        else:
            async with self.sessions() as session:
                found = await market_store.markets_of(
                    session, asset_ids=sorted({key.asset_id for key in keys})
                )
        return [
            market_store.primary_market_of(key.data_source, found.get(key.asset_id, []))
            for key in keys
        ]

    async def _load_candles(self, keys: Sequence[SeriesKey]) -> list[SeriesRead | None]:
        found: list[SeriesRead | None] = [
            self.series.cached(
                market_id=key.market_id, interval=key.interval, start=key.start, end=key.end
            )
            for key in keys
        ]
        missing = [index for index, read in enumerate(found) if read is None]
        if missing:
            async with self.sessions() as session:
                for index in missing:
                    key = keys[index]
                    found[index] = await self.series.read(
                        session,
                        market_id=key.market_id,
                        interval=key.interval,
                        start=key.start,
                        end=key.end,
                    )
        return found

    async def _load_perpetuals(
        self, keys: Sequence[MarketKey]
    ) -> list[derivatives_store.Perpetual | None]:
        """The primary perpetual of each asset (of its data source's exchange, else its
        first), one statement for all of them."""
        async with self.sessions() as session:
            found = await derivatives_store.perpetuals_of(
                session, asset_ids=sorted({key.asset_id for key in keys})
            )
        return [
            derivatives_store.primary_perpetual(key.data_source, found[key.asset_id])
            for key in keys
        ]

    async def _load_funding(self, keys: Sequence[FundingKey]) -> list[FundingRates]:
        async with self.sessions() as session:
            return [
                await derivatives_store.read_funding(
                    session, perpetual_id=key.perpetual_id, start=key.start, end=key.end
                )
                for key in keys
            ]

    async def _load_perpetual_bars(self, keys: Sequence[BarsKey]) -> list[PerpetualBars]:
        async with self.sessions() as session:
            return [
                await derivatives_store.load_bars(
                    session,
                    perpetual_id=key.perpetual_id,
                    interval=key.interval,
                    start=key.start,
                    end=key.end,
                )
                for key in keys
            ]

    async def _load_entries(
        self, keys: Sequence[uuid.UUID]
    ) -> list[list[portfolio_store.LedgerEntry]]:
        async with self.sessions() as session:
            found = await portfolio_store.entries_of(session, portfolio_ids=list(keys))
        return [found[key] for key in keys]

    async def _load_assets(self, keys: Sequence[str]) -> list[market_store.Asset | None]:
        snapshot = await self.snapshot()
        if snapshot is not None:
            found = snapshot.by_symbol
        else:
            async with self.sessions() as session:
                found = await market_store.get_assets(session, symbols=list(keys))
        return [
            self.prices.apply(asset) if (asset := found.get(key.upper())) is not None else None
            for key in keys
        ]
