"""The series cache: each market's candles per interval, packed, in this process's memory.

Reads of an asset's candles (the Candles query, performance, indicators, returns) take the
whole stored series of a (market, interval) once and slice it by open time afterwards, so a
repeated read runs no statement. The cache is bounded (COINQL_CACHE_MB, least recently used
first out); a series too large for a quarter of it is read from the store each time, for the
window asked only.

Nothing is kept past a write: every transaction that wrote candles (imports, backfills,
ingestion, the feed, the demo) drops the cached series of the markets it wrote when it commits
(`committed`, a session hook), and tells the other processes through the broadcast hub (with
Redis, every replica). A read that began before such a commit does not store what it read.
Computed results worth keeping (a return stream over an unchanged series) are kept beside
their series by version and arguments (`remember` / `recall`) and go with it.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import Candles, Interval, aggregate, source_intervals
from coinql.realtime import channels
from coinql.realtime.hub import Hub
from coinql.realtime.tasks import cancel
from coinql.store import candles as candle_store
from coinql.store import market as market_store
from coinql.store.db import flushed_tables
from coinql.store.market import AssetSnapshot, written_markets

log = structlog.get_logger("coinql.series_cache")

BYTES_PER_CANDLE = 8 * 7  # an int64 open time and six float64 columns
MAX_RESULTS_PER_SERIES = 16

Key = tuple[int, Interval]  # (market id, interval)
REFERENCE_TABLES = frozenset({"assets", "markets"})  # what the asset snapshot holds


@dataclass(frozen=True, slots=True)
class SeriesRead:
    """What a read found: the candles of the window, and the version of the cached series
    they come from (None when they were read from the store without caching)."""

    candles: Candles
    version: int | None


@dataclass
class _Entry:
    candles: Candles
    version: int
    nbytes: int
    results: OrderedDict[Hashable, tuple[Any, int]] = field(default_factory=OrderedDict)


def _frozen(candles: Candles) -> Candles:
    """The same candles, their arrays read-only: readers share them."""
    for array in (
        candles.timestamps,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        candles.volume,
        candles.quote_volume,
    ):
        array.flags.writeable = False
    return candles


def _window(candles: Candles, start: int | None, end: int | None) -> Candles:
    """The candles with open time in [start, end] (views of the cached arrays)."""
    if start is None and end is None:
        return candles
    times = candles.timestamps
    lower = 0 if start is None else int(np.searchsorted(times, start, side="left"))
    upper = len(candles) if end is None else int(np.searchsorted(times, end, side="right"))
    return Candles(
        times[lower:upper],
        candles.open[lower:upper],
        candles.high[lower:upper],
        candles.low[lower:upper],
        candles.close[lower:upper],
        candles.volume[lower:upper],
        candles.quote_volume[lower:upper],
    )


class SeriesCache:
    """This process's cached candle series, at most `max_bytes` of them (0: none)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        hub: Hub | None = None,
        on_hit: Callable[[], None] | None = None,
        on_miss: Callable[[], None] | None = None,
        on_eviction: Callable[[], None] | None = None,
        on_size: Callable[[float], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_bytes // 4
        self._hub = hub
        self._on_hit = on_hit or (lambda: None)
        self._on_miss = on_miss or (lambda: None)
        self._on_eviction = on_eviction or (lambda: None)
        self._on_size = on_size or (lambda _: None)
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._too_large: set[Key] = set()
        # Bumped when a market's series are dropped: a read that began before keeps nothing.
        self._generations: dict[int, int] = {}
        self._versions = itertools.count(1)
        self._origin = uuid.uuid4().hex  # this process, to skip its own broadcasts
        self._listener: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self.nbytes = 0
        # Every asset and market (coinql.store.market.AssetSnapshot), while none changed.
        self._assets: AssetSnapshot | None = None
        self._assets_generation = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Hear the other processes' invalidations (from now on)."""
        if self._hub is None:
            return
        channel = channels.series_written()
        self._listener = asyncio.create_task(self._listen(channel), name="coinql-series-cache")
        await self._hub.listening([channel])

    async def stop(self) -> None:
        await cancel(self._listener)
        for task in list(self._publishing):
            await cancel(task)

    async def _listen(self, channel: str) -> None:
        assert self._hub is not None
        async for message in self._hub.subscribe([channel], conflate=False, capacity=10_000):
            if message.get("origin") != self._origin:
                self.invalidate(int(market) for market in message.get("markets", ()))
                if message.get("assets"):
                    self.invalidate_assets()

    # -- invalidation -----------------------------------------------------------------------

    def committed(self, session: Session) -> None:
        """After a commit: drop the series of the markets the transaction wrote candles of,
        here and, through the hub, in every other process."""
        markets = written_markets(session)
        assets = bool(markets) or bool(flushed_tables(session) & REFERENCE_TABLES)
        if not assets:
            return
        self.invalidate(markets)
        self.invalidate_assets()
        if self._hub is not None:
            payload = {"origin": self._origin, "markets": sorted(markets), "assets": assets}
            task = asyncio.get_running_loop().create_task(self._publish(payload))
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _publish(self, payload: dict[str, Any]) -> None:
        assert self._hub is not None
        try:
            await self._hub.publish(channels.series_written(), payload)
        except ConnectionError as error:  # the others keep what they have until Redis is back
            log.warning("series invalidation not broadcast", error=str(error))

    def invalidate(self, markets: Iterable[int] | None = None) -> None:
        """Drop the cached series of `markets` (all of them when None)."""
        if markets is None:
            targets = set(self._generations) | {key[0] for key in self._entries}
            self._entries_dropped([*self._entries])
            self._too_large.clear()
        else:
            targets = set(markets)
            self._entries_dropped([key for key in self._entries if key[0] in targets])
            self._too_large = {key for key in self._too_large if key[0] not in targets}
        for market in targets:
            self._generations[market] = self._generations.get(market, 0) + 1

    def invalidate_assets(self) -> None:
        """Forget the snapshot of assets and markets."""
        self._assets = None
        self._assets_generation += 1

    def _entries_dropped(self, keys: list[Key]) -> None:
        for key in keys:
            entry = self._entries.pop(key)
            self.nbytes -= entry.nbytes
        self._on_size(self.nbytes)

    # -- reads ------------------------------------------------------------------------------

    def cached_assets(self) -> AssetSnapshot | None:
        """The snapshot of every asset and market, if one is kept."""
        return self._assets

    async def assets(self, session: AsyncSession) -> AssetSnapshot | None:
        """The snapshot, read now if none is kept (None: too many assets to keep, or none
        kept at all)."""
        if self._assets is not None:
            return self._assets
        if self.max_bytes <= 0:
            return None
        generation = self._assets_generation
        found = await market_store.asset_snapshot(session)
        if generation == self._assets_generation:  # nothing written while it was read
            self._assets = found
        return found

    def cached(
        self, *, market_id: int, interval: Interval, start: int | None, end: int | None
    ) -> SeriesRead | None:
        """`read` when the series is cached (no session needed), else None."""
        key = (market_id, interval)
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        self._on_hit()
        return SeriesRead(_window(entry.candles, start, end), entry.version)

    async def read(
        self,
        session: AsyncSession,
        *,
        market_id: int,
        interval: Interval,
        start: int | None,
        end: int | None,
    ) -> SeriesRead:
        """The market's candles of `interval` with open time in [start, end], aggregated from
        the largest smaller stored interval when `interval` itself is not stored."""
        found = self.cached(market_id=market_id, interval=interval, start=start, end=end)
        if found is not None:
            return found
        key = (market_id, interval)
        self._on_miss()
        generation = self._generations.get(market_id, 0)
        whole = None if key in self._too_large else await self._whole(session, key)
        if whole is None:
            if self._generations.get(market_id, 0) == generation:
                self._too_large.add(key)
            return SeriesRead(await self._window_from_store(session, key, start, end), None)
        if self._generations.get(market_id, 0) != generation:  # written while we read
            return SeriesRead(_window(whole, start, end), None)
        entry = self._store(key, _frozen(whole))
        return SeriesRead(_window(whole, start, end), entry.version if entry else None)

    async def _whole(self, session: AsyncSession, key: Key) -> Candles | None:
        """The whole series `key` reads, or None when it is too large to keep."""
        market_id, interval = key
        if self.max_bytes <= 0:
            return None
        count = await candle_store.count_candles(
            session, market_id=market_id, interval=interval, start=None, end=None
        )
        if count:
            if count * BYTES_PER_CANDLE > self.max_entry_bytes:
                return None
            return await candle_store.read_candles(session, market_id=market_id, interval=interval)
        available = await candle_store.stored_intervals(session, market_id=market_id)
        for source in source_intervals(interval):
            if source in available:
                finer = await candle_store.count_candles(
                    session, market_id=market_id, interval=source, start=None, end=None
                )
                if finer * BYTES_PER_CANDLE > self.max_entry_bytes:
                    return None
                candles = await candle_store.read_candles(
                    session, market_id=market_id, interval=source
                )
                return aggregate(candles, source, interval)
        return Candles.empty()

    async def _window_from_store(
        self, session: AsyncSession, key: Key, start: int | None, end: int | None
    ) -> Candles:
        """What `read` answers without the cache: the window alone, from the store."""
        market_id, interval = key
        stored = await candle_store.read_candles(
            session, market_id=market_id, interval=interval, start=start, end=end
        )
        if len(stored):
            return stored
        available = await candle_store.stored_intervals(session, market_id=market_id)
        for source in source_intervals(interval):
            if source in available:
                # Widen to whole target buckets so that the first and last are complete.
                lower = None if start is None else int(interval.floor(np.asarray([start]))[0])
                upper = None if end is None else end + interval.milliseconds - 1
                finer = await candle_store.read_candles(
                    session, market_id=market_id, interval=source, start=lower, end=upper
                )
                return aggregate(finer, source, interval).between(start, end)
        return Candles.empty()

    def _store(self, key: Key, candles: Candles) -> _Entry | None:
        nbytes = max(len(candles), 1) * BYTES_PER_CANDLE
        if nbytes > self.max_entry_bytes:
            return None
        entry = _Entry(candles, next(self._versions), nbytes)
        self._entries[key] = entry
        self.nbytes += nbytes
        self._evict()
        return entry

    def _evict(self) -> None:
        """Least recently used out until the cache is within its bound."""
        while self.nbytes > self.max_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self.nbytes -= evicted.nbytes
            self._on_eviction()
        self._on_size(self.nbytes)

    # -- computed results -------------------------------------------------------------------

    def recall(self, market_id: int, interval: Interval, version: int, arguments: Hashable) -> Any:
        """A result remembered for this version of the series and these arguments, or None."""
        entry = self._entries.get((market_id, interval))
        if entry is None or entry.version != version:
            return None
        found = entry.results.get(arguments)
        return None if found is None else found[0]

    def remember(
        self,
        market_id: int,
        interval: Interval,
        version: int,
        arguments: Hashable,
        value: Any,
        *,
        nbytes: int,
    ) -> None:
        """Keep `value` (about `nbytes` large) beside its series while the series is this
        version: a few per series, the oldest out first, counted in the cache's bound."""
        key = (market_id, interval)
        entry = self._entries.get(key)
        if entry is None or entry.version != version or arguments in entry.results:
            return
        if entry.nbytes + nbytes > self.max_entry_bytes:
            return
        entry.results[arguments] = (value, nbytes)
        entry.nbytes += nbytes
        self.nbytes += nbytes
        while len(entry.results) > MAX_RESULTS_PER_SERIES:
            _, (_, dropped) = entry.results.popitem(last=False)
            entry.nbytes -= dropped
            self.nbytes -= dropped
        self._entries.move_to_end(key)
        self._evict()
