"""Assets and their markets: tables and queries. Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Column, Float, UniqueConstraint, func
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import Candles, Interval, aggregate, source_intervals
from coinql.domain.demo import DemoAsset
from coinql.store.candles import latest_quote, read_candles, stored_intervals, write_candles
from coinql.store.db import UTCDateTime, insert, parent_key


class Asset(SQLModel, table=True):
    """A coin of the universe. `last_price` and `change_24h` follow the newest candles written.

    `data_source` says where its candles come from: "demo" (synthetic, not market prices),
    "import", or an exchange id.
    """

    __tablename__ = "assets"

    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(max_length=20, unique=True, index=True)
    name: str = Field(max_length=100)
    stablecoin: bool = Field(default=False)
    data_source: str = Field(max_length=40)
    market_cap: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    circulating_supply: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    quote_volume_24h: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    last_price: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    last_price_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    change_24h: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class Market(SQLModel, table=True):
    """Where an asset's candles come from: an exchange's pair, an import, or the demo."""

    __tablename__ = "markets"
    __table_args__ = (UniqueConstraint("asset_id", "exchange", "pair"),)

    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = parent_key("assets.id")
    exchange: str = Field(max_length=40)
    pair: str = Field(max_length=40)


class AssetOrder(StrEnum):
    MARKET_CAP_DESC = "MARKET_CAP_DESC"
    VOLUME_DESC = "VOLUME_DESC"
    SYMBOL_ASC = "SYMBOL_ASC"
    CHANGE_24H_DESC = "CHANGE_24H_DESC"


@dataclass(frozen=True, slots=True)
class AssetFilter:
    symbols: Sequence[str] | None = None
    stablecoin: bool | None = None
    search: str | None = None
    data_source: str | None = None


_ORDERING = {
    AssetOrder.MARKET_CAP_DESC: (col(Asset.market_cap).desc().nulls_last(), col(Asset.symbol)),
    AssetOrder.VOLUME_DESC: (col(Asset.quote_volume_24h).desc().nulls_last(), col(Asset.symbol)),
    AssetOrder.SYMBOL_ASC: (col(Asset.symbol),),
    AssetOrder.CHANGE_24H_DESC: (col(Asset.change_24h).desc().nulls_last(), col(Asset.symbol)),
}


def _filtered(statement: Any, where: AssetFilter) -> Any:
    if where.symbols is not None:
        statement = statement.where(col(Asset.symbol).in_([s.upper() for s in where.symbols]))
    if where.stablecoin is not None:
        statement = statement.where(Asset.stablecoin == where.stablecoin)
    if where.data_source is not None:
        statement = statement.where(Asset.data_source == where.data_source)
    if where.search:
        pattern = f"%{where.search.lower()}%"
        statement = statement.where(
            func.lower(Asset.symbol).like(pattern) | func.lower(Asset.name).like(pattern)
        )
    return statement


async def list_assets(
    session: AsyncSession,
    *,
    order: AssetOrder,
    where: AssetFilter,
    offset: int,
    limit: int,
) -> list[Asset]:
    statement = _filtered(select(Asset), where).order_by(*_ORDERING[order])
    result = await session.exec(statement.offset(offset).limit(limit))
    return list(result.all())


async def count_assets(session: AsyncSession, *, where: AssetFilter) -> int:
    result = await session.exec(_filtered(select(func.count()).select_from(Asset), where))
    return int(result.one())


async def market_cap_ranks(session: AsyncSession) -> dict[int, int]:
    """Rank by market cap (1 = largest) of every asset that has one."""
    statement = (
        select(Asset.id)
        .where(col(Asset.market_cap).is_not(None))
        .order_by(col(Asset.market_cap).desc(), col(Asset.symbol))
    )
    result = await session.exec(statement)
    return {asset_id: rank for rank, asset_id in enumerate(result.all(), start=1) if asset_id}


async def get_asset(session: AsyncSession, *, symbol: str) -> Asset | None:
    result = await session.exec(select(Asset).where(Asset.symbol == symbol.upper()))
    return result.first()


async def get_assets(session: AsyncSession, *, symbols: Sequence[str]) -> dict[str, Asset]:
    wanted = {symbol.upper() for symbol in symbols}
    result = await session.exec(select(Asset).where(col(Asset.symbol).in_(wanted)))
    return {asset.symbol: asset for asset in result.all()}


MAX_SNAPSHOT_ASSETS = 10_000
_SORT_KEYS = {
    AssetOrder.MARKET_CAP_DESC: lambda asset: asset.market_cap,
    AssetOrder.VOLUME_DESC: lambda asset: asset.quote_volume_24h,
    AssetOrder.CHANGE_24H_DESC: lambda asset: asset.change_24h,
}


@dataclass(frozen=True)
class AssetSnapshot:
    """Every asset and market as read at once, for reads that need no statement: pages and
    counts without a text search, lookups by symbol, primary markets and ranks. The rows are
    shared by every reader: never change them."""

    by_symbol: dict[str, Asset]
    markets: dict[int, list[Market]]
    ranks: dict[int, int]

    @staticmethod
    def serves(where: AssetFilter) -> bool:
        """Whether a page or count with this filter can come from the snapshot (a text search
        is LIKE's to answer)."""
        return not where.search

    def _matching(self, where: AssetFilter) -> list[Asset]:
        symbols = None if where.symbols is None else {s.upper() for s in where.symbols}
        return [
            asset
            for asset in self.by_symbol.values()
            if (symbols is None or asset.symbol in symbols)
            and (where.stablecoin is None or asset.stablecoin == where.stablecoin)
            and (where.data_source is None or asset.data_source == where.data_source)
        ]

    def page(
        self, *, order: AssetOrder, where: AssetFilter, offset: int, limit: int
    ) -> list[Asset]:
        """What `list_assets` answers (descending values first, nulls last, then by symbol)."""
        found = sorted(self._matching(where), key=lambda asset: asset.symbol)
        key = _SORT_KEYS.get(order)
        if key is not None:
            known = [asset for asset in found if key(asset) is not None]
            unknown = [asset for asset in found if key(asset) is None]
            known.sort(key=key, reverse=True)  # stable: ties keep the symbol order
            found = known + unknown
        return found[offset : offset + limit]

    def count(self, *, where: AssetFilter) -> int:
        return len(self._matching(where))


async def asset_snapshot(session: AsyncSession) -> AssetSnapshot | None:
    """Every asset and market, or None when there are too many to keep."""
    assets = list((await session.exec(select(Asset).limit(MAX_SNAPSHOT_ASSETS + 1))).all())
    if len(assets) > MAX_SNAPSHOT_ASSETS:
        return None
    markets: dict[int, list[Market]] = {asset.id: [] for asset in assets if asset.id is not None}
    for market in (await session.exec(select(Market).order_by(col(Market.id)))).all():
        markets.setdefault(market.asset_id, []).append(market)
    capped = sorted(
        (asset for asset in assets if asset.market_cap is not None and asset.id is not None),
        key=lambda asset: asset.symbol,
    )
    capped.sort(key=lambda asset: asset.market_cap or 0.0, reverse=True)
    ranks = {asset.id: rank for rank, asset in enumerate(capped, start=1) if asset.id}
    return AssetSnapshot({asset.symbol: asset for asset in assets}, markets, ranks)


async def has_assets(session: AsyncSession) -> bool:
    result = await session.exec(select(Asset.id).limit(1))
    return result.first() is not None


async def upsert_asset(
    session: AsyncSession,
    *,
    symbol: str,
    name: str | None,
    data_source: str,
    now: datetime,
    stablecoin: bool | None = None,
    circulating_supply: float | None = None,
    market_cap: float | None = None,
) -> Asset:
    """The asset with this symbol, created or updated with what is given (None keeps)."""
    asset = await get_asset(session, symbol=symbol)
    if asset is None:
        asset = Asset(
            symbol=symbol.upper(),
            name=name or symbol.upper(),
            data_source=data_source,
            stablecoin=bool(stablecoin),
            updated_at=now,
        )
        session.add(asset)
    else:
        if name:
            asset.name = name
        asset.data_source = data_source
        if stablecoin is not None:
            asset.stablecoin = stablecoin
        asset.updated_at = now
    if circulating_supply is not None:
        asset.circulating_supply = circulating_supply
    if market_cap is not None:
        asset.market_cap = market_cap
    await session.flush()
    return asset


async def get_or_add_market(
    session: AsyncSession, *, asset_id: int, exchange: str, pair: str
) -> Market:
    statement = select(Market).where(
        Market.asset_id == asset_id, Market.exchange == exchange, Market.pair == pair
    )
    market = (await session.exec(statement)).first()
    if market is None:
        market = await insert(session, Market(asset_id=asset_id, exchange=exchange, pair=pair))
    return market


async def markets_of(session: AsyncSession, *, asset_ids: Sequence[int]) -> dict[int, list[Market]]:
    result = await session.exec(
        select(Market).where(col(Market.asset_id).in_(asset_ids)).order_by(col(Market.id))
    )
    by_asset: dict[int, list[Market]] = {asset_id: [] for asset_id in asset_ids}
    for market in result.all():
        by_asset[market.asset_id].append(market)
    return by_asset


@dataclass(frozen=True, slots=True)
class SavedCandles:
    asset: Asset
    market: Market
    added: int


async def save_candles(
    session: AsyncSession,
    *,
    symbol: str,
    name: str | None,
    data_source: str,
    exchange: str,
    pair: str,
    interval: Interval,
    candles: Candles,
    now: datetime,
    market_caps: Any = None,
    stablecoin: bool | None = None,
    circulating_supply: float | None = None,
) -> SavedCandles:
    """Store candles for a symbol's market, creating the asset and market as needed, and
    refresh the asset's last price, 24h change and volume, and market cap when given."""
    known_caps = (
        np.asarray(market_caps, dtype=np.float64)[np.isfinite(market_caps)]
        if market_caps is not None
        else np.empty(0)
    )
    asset = await upsert_asset(
        session,
        symbol=symbol,
        name=name,
        data_source=data_source,
        now=now,
        stablecoin=stablecoin,
        circulating_supply=circulating_supply,
        market_cap=float(known_caps[-1]) if known_caps.size else None,
    )
    assert asset.id is not None
    market = await get_or_add_market(session, asset_id=asset.id, exchange=exchange, pair=pair)
    assert market.id is not None
    mark_written(session, market.id)
    added = await write_candles(session, market_id=market.id, interval=interval, candles=candles)
    await refresh_quote(session, asset=asset, market=market)
    return SavedCandles(asset, market, added)


WRITTEN_MARKETS = "coinql.written_markets"


def mark_written(session: AsyncSession, market_id: int) -> None:
    """Note in the session that this transaction writes candles of the market: when it
    commits, cached series of it are dropped (coinql.realtime.series_cache)."""
    session.info.setdefault(WRITTEN_MARKETS, set()).add(market_id)


def written_markets(session: Session) -> set[int]:
    """The markets whose candles a transaction wrote, forgotten once asked (after it ended)."""
    found: set[int] = session.info.pop(WRITTEN_MARKETS, set())
    return found


async def refresh_quote(session: AsyncSession, *, asset: Asset, market: Market) -> None:
    """Last price and 24h change from the finest interval stored for the market."""
    assert market.id is not None
    intervals = sorted(
        await stored_intervals(session, market_id=market.id), key=lambda i: i.milliseconds
    )
    if not intervals:
        return
    quote = await latest_quote(session, market_id=market.id, interval=intervals[0])
    if quote is None:
        return
    if asset.last_price_at is None or quote.open_time >= asset.last_price_at:
        asset.last_price, asset.last_price_at = quote.close, quote.open_time
        asset.change_24h, asset.quote_volume_24h = quote.change_24h, quote.quote_volume_24h
        if asset.circulating_supply:
            asset.market_cap = quote.close * asset.circulating_supply
    await session.flush()


def primary_market(asset: Asset, markets: list[Market]) -> Market | None:
    """The market an asset's candles are read from: the one of its data source, else the first."""
    return primary_market_of(asset.data_source, markets)


def primary_market_of(data_source: str, markets: list[Market]) -> Market | None:
    """Of an asset's markets, the one of its data source, else the first."""
    for market in markets:
        if market.exchange == data_source:
            return market
    return markets[0] if markets else None


DEMO_SOURCE = "demo"


async def save_demo_market(
    session: AsyncSession, *, assets: Sequence[DemoAsset], now: datetime
) -> int:
    """Store a generated demo market, every asset marked `data_source="demo"`."""
    added = 0
    for demo in assets:
        for interval, candles in ((Interval.D1, demo.daily), (Interval.H1, demo.hourly)):
            saved = await save_candles(
                session,
                symbol=demo.symbol,
                name=demo.name,
                data_source=DEMO_SOURCE,
                exchange=DEMO_SOURCE,
                pair=f"{demo.symbol}/USD",
                interval=interval,
                candles=candles,
                now=now,
                stablecoin=demo.stablecoin,
                circulating_supply=demo.circulating_supply,
            )
            added += saved.added
    return added


async def find_market(
    session: AsyncSession, *, symbol: str, exchange: str, pair: str | None = None
) -> Market | None:
    statement = (
        select(Market)
        .join(Asset, col(Asset.id) == col(Market.asset_id))
        .where(Asset.symbol == symbol.upper(), Market.exchange == exchange)
    )
    if pair is not None:
        statement = statement.where(Market.pair == pair)
    return (await session.exec(statement)).first()


async def load_candles(
    session: AsyncSession,
    *,
    asset: Asset,
    interval: Interval,
    start: int | None,
    end: int | None,
) -> Candles:
    """The asset's candles from its primary market; aggregated from the largest smaller
    stored interval when `interval` itself is not stored."""
    assert asset.id is not None
    market = primary_market(asset, (await markets_of(session, asset_ids=[asset.id]))[asset.id])
    if market is None or market.id is None:
        return Candles.empty()
    stored = await read_candles(
        session, market_id=market.id, interval=interval, start=start, end=end
    )
    if len(stored):
        return stored
    available = await stored_intervals(session, market_id=market.id)
    for source in source_intervals(interval):
        if source in available:
            # Widen to whole target buckets so that the first and last are complete.
            lower = None if start is None else int(interval.floor(np.asarray([start]))[0])
            upper = None if end is None else end + interval.milliseconds - 1
            finer = await read_candles(
                session, market_id=market.id, interval=source, start=lower, end=upper
            )
            return aggregate(finer, source, interval).between(start, end)
    return Candles.empty()
