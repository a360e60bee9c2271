"""Universe, candles, returns, imports, gaps, backfill and ingestion status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain import candles as candle_domain
from coinql.domain import returns as returns_domain
from coinql.domain.candles import Candles, Gap, Interval
from coinql.domain.csv_lines import TooManyRows
from coinql.domain.errors import InvalidInput, NotFound
from coinql.domain.imports import ParsedFile, parse_candle_file
from coinql.domain.returns import ReturnKind, ReturnsMatrix
from coinql.realtime.ingestion import BackfillReport, stalled_seconds
from coinql.realtime.ingestion import backfill as run_backfill
from coinql.resolvers.context import Context
from coinql.resolvers.loaders import MarketKey, SeriesKey
from coinql.store import candles as candle_store
from coinql.store import ingestion as ingestion_store
from coinql.store import market as market_store
from coinql.store.market import Asset, AssetFilter, AssetOrder, AssetSnapshot

MAX_PAGE = 500
IMPORT_SOURCE = "import"


@dataclass(frozen=True, slots=True)
class AssetPage:
    assets: list[Asset]
    offset: int
    has_next_page: bool
    where: AssetFilter  # for the total count, read only when asked for


@dataclass(frozen=True, slots=True)
class MarketSeries:
    """Candles of an asset's primary market, and where they come from (the market, and the
    version of the cached series; None for either when there is none)."""

    candles: Candles
    market_id: int | None
    version: int | None


async def list_assets(
    context: Context,
    *,
    first: int,
    offset: int,
    order: AssetOrder,
    where: AssetFilter,
) -> AssetPage:
    if not 0 < first <= MAX_PAGE:
        raise InvalidInput("first", f"first must be between 1 and {MAX_PAGE}")
    snapshot = await context.loaders.snapshot() if AssetSnapshot.serves(where) else None
    if snapshot is not None:
        rows = snapshot.page(order=order, where=where, offset=offset, limit=first + 1)
    else:
        async with context.reader() as session:
            rows = await market_store.list_assets(
                session, order=order, where=where, offset=offset, limit=first + 1
            )
    live = [context.services.prices.apply(asset) for asset in rows[:first]]
    return AssetPage(live, offset, len(rows) > first, where)


async def count_assets(context: Context, *, where: AssetFilter) -> int:
    snapshot = await context.loaders.snapshot() if AssetSnapshot.serves(where) else None
    if snapshot is not None:
        return snapshot.count(where=where)
    async with context.reader() as session:
        return await market_store.count_assets(session, where=where)


async def get_asset(context: Context, *, symbol: str) -> Asset | None:
    """The asset, carrying its live price (coinql.realtime.prices)."""
    return await context.loaders.assets.load(symbol)


async def universe(
    context: Context, *, top: int, by: AssetOrder, exclude_stablecoins: bool
) -> list[Asset]:
    """The top `top` assets by market cap or volume, without stablecoins unless asked."""
    if not 0 < top <= MAX_PAGE:
        raise InvalidInput("top", f"top must be between 1 and {MAX_PAGE}")
    where = AssetFilter(stablecoin=False if exclude_stablecoins else None)
    snapshot = await context.loaders.snapshot()
    if snapshot is not None:
        found = snapshot.page(order=by, where=where, offset=0, limit=top)
    else:
        async with context.reader() as session:
            found = await market_store.list_assets(
                session, order=by, where=where, offset=0, limit=top
            )
    return [context.services.prices.apply(asset) for asset in found]


async def rank(context: Context, asset: Asset) -> int | None:
    """Rank by market cap; the ranking is read once per request, whatever the assets."""
    return await context.loaders.ranks.load(asset.id) if asset.id is not None else None


async def candles_for(
    context: Context,
    *,
    asset: Asset,
    interval: Interval,
    start: int | None,
    end: int | None,
) -> Candles:
    """The candles of one request, at most COINQL_MAX_SERIES_POINTS of them."""
    found = await market_series(context, asset=asset, interval=interval, start=start, end=end)
    return found.candles


async def market_series(
    context: Context,
    *,
    asset: Asset,
    interval: Interval,
    start: int | None,
    end: int | None,
) -> MarketSeries:
    """`candles_for`, with the market and the cached series' version they come from."""
    assert asset.id is not None
    loaders = context.loaders
    market = await loaders.markets.load(MarketKey(asset.id, asset.data_source))
    if market is None or market.id is None:
        return MarketSeries(Candles.empty(), None, None)
    read = await loaders.candles.load(SeriesKey(market.id, interval, start, end))
    assert read is not None
    candles = read.candles
    limit = context.services.settings.max_series_points
    if len(candles) > limit:
        raise InvalidInput(
            "start",
            f"{asset.symbol} has {len(candles):,} {interval.value} candles between start and end;"
            f" a request reads at most {limit:,} (COINQL_MAX_SERIES_POINTS): narrow start and"
            " end, or use a larger interval",
        )
    return MarketSeries(candles, market.id, read.version)


async def candles_by_symbol(
    context: Context, *, symbol: str, interval: Interval, start: int | None, end: int | None
) -> Candles:
    asset = await get_asset(context, symbol=symbol)
    if asset is None:
        raise NotFound(f"no asset {symbol.upper()!r}")
    return await candles_for(context, asset=asset, interval=interval, start=start, end=end)


async def returns_matrix(
    context: Context,
    *,
    symbols: Sequence[str],
    interval: Interval,
    start: int | None,
    end: int | None,
    kind: ReturnKind,
) -> ReturnsMatrix:
    if not symbols:
        raise InvalidInput("symbols", "give at least one symbol")
    upper = [symbol.upper() for symbol in symbols]
    if len(set(upper)) != len(upper):
        raise InvalidInput("symbols", "symbols must not repeat")
    async with context.reader() as session:
        assets = await market_store.get_assets(session, symbols=upper)
    unknown = [symbol for symbol in upper if symbol not in assets]
    if unknown:
        raise InvalidInput("symbols", f"unknown symbols: {', '.join(unknown)}")
    closes = []
    for symbol in upper:
        series = await candles_for(
            context, asset=assets[symbol], interval=interval, start=start, end=end
        )
        closes.append((series.timestamps, series.close))
    return returns_domain.returns_matrix(upper, closes, kind)


@dataclass(frozen=True, slots=True)
class ImportReport:
    symbol: str
    interval: Interval
    format: str
    rows_read: int
    candles_written: int
    first: int | None
    last: int | None


async def import_file(
    context: Context, *, data: bytes, symbol: str | None, interval: Interval | None
) -> ImportReport:
    """Validate a whole file and store its candles in one transaction (the schema lets only
    admins call it)."""
    services = context.services
    report = await import_bytes(
        services.sessions,
        data=data,
        symbol=symbol,
        interval=interval,
        max_bytes=services.settings.import_max_bytes,
        max_rows=services.settings.max_upload_rows,
        now=services.now(),
    )
    services.metrics.candles_inserted.labels("import").inc(report.candles_written)
    return report


async def import_bytes(
    sessions: async_sessionmaker[AsyncSession],
    *,
    data: bytes,
    symbol: str | None,
    interval: Interval | None,
    max_bytes: int,
    now: datetime,
    max_rows: int | None = None,
    progress: Callable[[str], None] = lambda stage: None,
) -> ImportReport:
    """Parse, validate, then write in one transaction: a rejected file writes nothing.
    `progress` hears each stage (the CLI shows them for large files)."""
    if len(data) > max_bytes:
        raise InvalidInput(
            "file",
            f"file is {len(data):,} bytes; the limit is {max_bytes:,} (COINQL_IMPORT_MAX_BYTES)",
        )
    progress(f"parsing {len(data) / 1e6:,.1f} MB")
    parsed = await parse_upload(data, symbol=symbol, interval=interval, max_rows=max_rows)
    progress(f"writing {len(parsed.candles):,} candles of {parsed.symbol} {parsed.interval.value}")
    async with sessions() as session, session.begin():
        saved = await _save_import(session, parsed, now=now)
    return ImportReport(
        parsed.symbol,
        parsed.interval,
        parsed.format.value,
        parsed.rows_read,
        saved,
        int(parsed.candles.timestamps[0]) if len(parsed.candles) else None,
        int(parsed.candles.timestamps[-1]) if len(parsed.candles) else None,
    )


async def parse_upload(
    data: bytes, *, symbol: str | None, interval: Interval | None, max_rows: int | None
) -> ParsedFile:
    """A candle file parsed in a worker thread: a million rows are seconds of CPU, which on
    the event loop would stall every other request. More than `max_rows` data rows are
    refused as soon as parsing reaches them, naming COINQL_MAX_UPLOAD_ROWS."""
    try:
        return await asyncio.to_thread(
            parse_candle_file, data, symbol=symbol, interval=interval, max_rows=max_rows
        )
    except TooManyRows as error:
        raise InvalidInput(
            "file", f"{error.message}; the limit is {error.limit:,} (COINQL_MAX_UPLOAD_ROWS)"
        ) from None


async def _save_import(session: AsyncSession, parsed: ParsedFile, *, now: datetime) -> int:
    caps = parsed.market_caps
    last_cap = caps[np.isfinite(caps)][-1:] if caps.size else caps
    supply = (
        float(last_cap[0] / parsed.candles.close[np.isfinite(caps)][-1]) if last_cap.size else None
    )
    saved = await market_store.save_candles(
        session,
        symbol=parsed.symbol,
        name=parsed.name,
        data_source=IMPORT_SOURCE,
        exchange=IMPORT_SOURCE,
        pair=f"{parsed.symbol}/USD",
        interval=parsed.interval,
        candles=parsed.candles,
        now=now,
        market_caps=caps,
        circulating_supply=supply,
    )
    return saved.added


async def data_gaps(
    context: Context, *, symbol: str, interval: Interval, start: int | None, end: int | None
) -> list[Gap]:
    """Missing candles of the asset's primary market between its first and last candle (or
    within [start, end] when given)."""
    asset = await get_asset(context, symbol=symbol)
    if asset is None or asset.id is None:
        raise NotFound(f"no asset {symbol.upper()!r}")
    async with context.reader() as session:
        markets = (await market_store.markets_of(session, asset_ids=[asset.id]))[asset.id]
        market = market_store.primary_market(asset, markets)
        if market is None or market.id is None:
            return []
        present = await candle_store.open_times(
            session, market_id=market.id, interval=interval, start=start, end=end
        )
    return candle_domain.find_gaps(present, interval, start, end)


async def backfill(
    context: Context, *, symbol: str, interval: Interval, start: int, end: int
) -> BackfillReport:
    """Fetch the missing candles of [start, end] from the configured exchange."""
    if end < start:
        raise InvalidInput("end", "end must not be before start")
    adapter = context.services.exchange
    if adapter is None:
        raise InvalidInput(
            "symbol",
            "no exchange is configured (COINQL_SOURCE is demo or none): nothing to backfill from",
        )
    return await run_backfill(
        context.services.sessions,
        adapter,
        symbol=symbol.upper(),
        interval=interval,
        start=start,
        end=end,
    )


async def ingestion_status(
    context: Context,
) -> list[tuple[ingestion_store.IngestionState, int]]:
    """Every ingestion job's state, with the seconds it is stalled by (0 when healthy)."""
    services = context.services
    async with services.reader() as session:
        states = await ingestion_store.list_states(session)
    now, poll = services.now(), services.settings.ingest_poll_seconds
    return [(state, stalled_seconds(state, now=now, poll_seconds=poll) or 0) for state in states]


__all__ = ["AssetPage", "BackfillReport", "ImportReport"]  # BackfillReport for the schema
