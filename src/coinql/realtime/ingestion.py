"""Keeping candles fresh from an exchange: one ingestion pass, gap backfill, and the scheduler.

Only one process ingests at a time: the scheduler runs while it leads (coinql.realtime.leader:
a Redis lease, or without Redis a lock on the database). Replicas that do not lead stand by and
try again, so a replacement takes over when the leader stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import Interval, find_gaps
from coinql.exchanges.ccxt import ExchangeAdapter
from coinql.exchanges.coingecko import MarketCapProvider
from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.leader import Leader, LeadingLoop
from coinql.store import candles as candle_store
from coinql.store import ingestion as ingestion_store
from coinql.store import market as market_store

log = structlog.get_logger("coinql.ingestion")
DEFAULT_HISTORY_DAYS = 365
# A job whose last success is older than this many polls is stalled, failing or not (a hung
# scheduler fails nothing).
STALE_POLLS = 3


def stalled_seconds(
    state: ingestion_store.IngestionState, *, now: datetime, poll_seconds: float
) -> int | None:
    """None while a job is healthy; else the seconds since its last success (or, before any,
    since it first failed or was first tried). A job is unhealthy while it fails, and once its
    last success is older than STALE_POLLS polls."""
    since = state.last_success_at or state.failing_since or state.last_attempt_at
    age = max(0, int((now - since).total_seconds())) if since is not None else 0
    if state.consecutive_failures or age > STALE_POLLS * poll_seconds:
        return age
    return None


@dataclass(frozen=True, slots=True)
class BackfillReport:
    gaps_found: int
    gaps_fixed: int
    candles_added: int


async def ingest(
    sessions: async_sessionmaker[AsyncSession],
    adapter: ExchangeAdapter,
    *,
    symbol: str,
    interval: Interval,
    since: int,
    until: int | None = None,
    clock: Clock = utc_now,
) -> int:
    """Fetch closed candles in [since, until] and store the new ones; returns how many."""
    candles = await adapter.fetch_candles(symbol, interval, since=since, until=until)
    async with sessions() as session, session.begin():
        saved = await market_store.save_candles(
            session,
            symbol=symbol,
            name=None,
            data_source=adapter.exchange_id,
            exchange=adapter.exchange_id,
            pair=adapter.pair(symbol),
            interval=interval,
            candles=candles,
            now=clock(),
        )
    return saved.added


async def backfill(
    sessions: async_sessionmaker[AsyncSession],
    adapter: ExchangeAdapter,
    *,
    symbol: str,
    interval: Interval,
    start: int,
    end: int,
    clock: Clock = utc_now,
    progress: Callable[[int, int, int], None] = lambda done, gaps, added: None,
) -> BackfillReport:
    """Find the missing candles of [start, end] on this exchange's market and fetch them;
    `progress` hears (gaps done, gaps found, candles added) after each gap."""
    pair = adapter.pair(symbol)

    async def gaps() -> list[tuple[int, int]]:
        async with sessions() as session:
            market = await market_store.find_market(
                session, symbol=symbol, exchange=adapter.exchange_id, pair=pair
            )
            present = (
                await candle_store.open_times(
                    session, market_id=market.id, interval=interval, start=start, end=end
                )
                if market is not None and market.id is not None
                else np.empty(0, dtype=np.int64)
            )
        return [(gap.start, gap.end) for gap in find_gaps(present, interval, start, end)]

    found = await gaps()
    added = 0
    progress(0, len(found), 0)
    for done, (gap_start, gap_end) in enumerate(found, start=1):
        added += await ingest(
            sessions,
            adapter,
            symbol=symbol,
            interval=interval,
            since=gap_start,
            until=gap_end,
            clock=clock,
        )
        progress(done, len(found), added)
    remaining = set(await gaps())
    fixed = sum(1 for gap in found if gap not in remaining)
    return BackfillReport(gaps_found=len(found), gaps_fixed=fixed, candles_added=added)


class IngestionScheduler(LeadingLoop):
    """Polls the exchange for each (symbol, interval) and records how each job is doing."""

    task_name = "coinql-ingestion"

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        adapter: ExchangeAdapter,
        symbols: Sequence[str],
        intervals: Sequence[Interval],
        poll_seconds: float = 60.0,
        history_days: int = DEFAULT_HISTORY_DAYS,
        market_caps: MarketCapProvider | None = None,
        on_status: Callable[[str], None] = lambda status: None,
        on_candles: Callable[[int], None] = lambda added: None,
        leader: Leader | None = None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(leader=leader, pause_seconds=poll_seconds, on_status=on_status)
        self.sessions = sessions
        self.clock = clock
        self.on_candles = on_candles
        self.adapter = adapter
        self.jobs = [(symbol.upper(), interval) for symbol in symbols for interval in intervals]
        self.poll_seconds = poll_seconds
        self.history_days = history_days
        self.market_caps = market_caps

    async def run_once(self) -> None:
        """One pass over every job: fetch what is newer than the newest stored candle."""
        for symbol, interval in self.jobs:
            await self._run_job(symbol, interval)
        if self.market_caps is not None:
            await self._refresh_market_caps(self.market_caps)

    async def _refresh_market_caps(self, provider: MarketCapProvider) -> None:
        symbols = sorted({symbol for symbol, _ in self.jobs})
        try:
            caps = await provider.fetch(symbols)
        except Exception as error:  # a missing cap is not worth stopping ingestion for
            log.warning("market caps unavailable", error=f"{type(error).__name__}: {error}")
            return
        async with self.sessions() as session, session.begin():
            for symbol, cap in caps.items():
                asset = await market_store.get_asset(session, symbol=symbol)
                if asset is not None:
                    asset.market_cap = cap.market_cap
                    asset.circulating_supply = cap.circulating_supply

    async def _since(self, symbol: str, interval: Interval) -> int:
        """Just after the newest stored candle, or `history_days` back for a new market."""
        async with self.sessions() as session:
            market = await market_store.find_market(
                session,
                symbol=symbol,
                exchange=self.adapter.exchange_id,
                pair=self.adapter.pair(symbol),
            )
            if market is not None and market.id is not None:
                newest = await candle_store.read_candles(
                    session, market_id=market.id, interval=interval, limit=1
                )
                if len(newest):
                    return int(newest.timestamps[0]) + interval.milliseconds
        start = int(self.clock().timestamp() * 1000) - self.history_days * 86_400_000
        return int(interval.floor(np.asarray([start], dtype=np.int64))[0])

    async def _run_job(self, symbol: str, interval: Interval) -> None:
        exchange = self.adapter.exchange_id
        try:
            added = await ingest(
                self.sessions,
                self.adapter,
                symbol=symbol,
                interval=interval,
                since=await self._since(symbol, interval),
                clock=self.clock,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "ingestion failed", symbol=symbol, interval=interval.value, error=str(error)
            )
            async with self.sessions() as session, session.begin():
                await ingestion_store.record_failure(
                    session,
                    exchange=exchange,
                    symbol=symbol,
                    interval=interval.value,
                    now=self.clock(),
                    error=f"{type(error).__name__}: {error}",
                )
            return
        self.on_candles(added)
        async with self.sessions() as session, session.begin():
            await ingestion_store.record_success(
                session,
                exchange=exchange,
                symbol=symbol,
                interval=interval.value,
                now=self.clock(),
                added=added,
            )
