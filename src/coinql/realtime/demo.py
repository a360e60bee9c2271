"""The embedded demo market: loaded into an empty store, then continued live by the feed."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.candles import DAY_MS, Interval
from coinql.domain.demo import generate_demo_market, recent_volatility
from coinql.domain.demo_derivatives import generate_demo_perpetuals
from coinql.realtime.clock import Clock, accelerated, utc_now
from coinql.realtime.feed import DemoTicks
from coinql.store import derivatives as derivatives_store
from coinql.store import market as market_store

log = structlog.get_logger("coinql.demo")


async def load_demo_if_empty(sessions: async_sessionmaker[AsyncSession], *, clock: Clock) -> None:
    """On an empty store, the seeded demo market (marked dataSource "demo" everywhere)."""
    async with sessions() as session, session.begin():
        if await market_store.has_assets(session):
            return
        today = int(clock().timestamp() * 1000) // DAY_MS * DAY_MS
        # The history ends with yesterday's whole day: today's candles would be closes (and
        # hours) from the future. The feed carries on from yesterday's close.
        assets = generate_demo_market(end_day_ms=today - DAY_MS)
        added = await market_store.save_demo_market(session, assets=assets, now=clock())
        # Perpetuals over the same days, consistent with the prices just stored.
        stored = await market_store.get_assets(session, symbols=[a.symbol for a in assets])
        derivatives = await derivatives_store.save_demo_perpetuals(
            session,
            perpetuals=generate_demo_perpetuals(assets),
            asset_ids={symbol: asset.id for symbol, asset in stored.items() if asset.id},
        )
    log.info(
        "demo market loaded",
        candles=added,
        fundings_and_bars=derivatives,
        note="synthetic data, not market prices",
    )


async def demo_clock(sessions: async_sessionmaker[AsyncSession], *, speed: float) -> Clock:
    """The accelerated demo market's clock (COINQL_DEMO_SPEED): `speed` times real time from
    now, or from the newest demo price when an earlier accelerated run got ahead of the wall
    clock (so a restart never stamps ticks before the candles it stored)."""
    newest = 0
    async with sessions() as session:
        for asset in await _demo_assets(session):
            newest = max(newest, asset.last_price_at or 0)
    origin = max(utc_now(), datetime.fromtimestamp(newest / 1000, tz=UTC))
    return accelerated(origin, speed)


async def _demo_assets(session: AsyncSession) -> list[market_store.Asset]:
    return await market_store.list_assets(
        session,
        order=market_store.AssetOrder.SYMBOL_ASC,
        where=market_store.AssetFilter(data_source="demo"),
        offset=0,
        limit=500,
    )


async def demo_ticks(
    sessions: async_sessionmaker[AsyncSession],
    *,
    interval_seconds: float,
    clock: Clock,
    speed: float = 1.0,
) -> DemoTicks:
    """The demo market continued from its last closes, at each asset's recent volatility (a
    tick each `interval_seconds`, spanning `speed` times as much market time)."""
    assets: dict[str, tuple[float, float]] = {}
    async with sessions() as session:
        for asset in await _demo_assets(session):
            daily = await market_store.load_candles(
                session, asset=asset, interval=Interval.D1, start=None, end=None
            )
            volatility = recent_volatility(daily.close)
            if asset.last_price is None or volatility is None:
                continue
            assets[asset.symbol] = (asset.last_price, volatility)
    return DemoTicks(assets, interval_seconds=interval_seconds, speed=speed, clock=clock)
