"""The read path: what a repeated document costs, statements per request, the series cache."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import strawberry.schema.schema as strawberry_schema
from sqlalchemy import event
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.domain.candles import DAY_MS, Candles, Interval
from coinql.realtime.series_cache import BYTES_PER_CANDLE, SeriesCache
from coinql.store import candles as candle_store
from coinql.store import market as market_store
from tests.client import GraphQLClient
from tests.conftest import COINS_DIR, Backend, make_settings, upload
from tests.helpers import running


async def test_a_repeated_document_is_validated_once(
    client: GraphQLClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    validate = strawberry_schema.validate

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return validate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(strawberry_schema, "validate", counting)
    # A document of this test alone (the caches live as long as the schema, across tests).
    alias = f"validatedOnce{backend.name.title()}"
    document = f"query ValidatedOnce {{ serverInfo {{ version {alias}: database }} }}"
    for _ in range(3):
        assert (await client.execute(document)).ok()["serverInfo"][alias]
    assert len(calls) == 1


# -- statements per request ---------------------------------------------------------------

UNIVERSE = (
    "query Universe { assets(first: 10) { edges { node { symbol name marketCap rank lastPrice }"
    " } } }"
)


@asynccontextmanager
async def statements(app: Starlette) -> AsyncIterator[list[str]]:
    """The SQL statements the app's engine runs inside the block."""
    found: list[str] = []
    engine = app.state.services.engine.sync_engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        found.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
async def demo(backend: Backend, tmp_path: Path) -> AsyncIterator[tuple[Starlette, GraphQLClient]]:
    """The app on the demo market (8 assets), no feed."""
    app = create_app(make_settings(backend, tmp_path, source="demo", feed_enabled=False))
    async with running(app) as client:
        yield app, client


async def test_a_page_of_assets_with_ranks_runs_a_few_statements_then_none(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    app, client = demo
    async with statements(app) as cold:
        page = (await client.execute(UNIVERSE)).ok()["assets"]["edges"]
    async with statements(app) as warm:
        again = (await client.execute(UNIVERSE)).ok()["assets"]["edges"]
    assert len(page) == 8 and again == page
    assert [edge["node"]["rank"] for edge in page] == list(range(1, 9))
    # Every asset and market in two statements, whatever the page's size; then from memory.
    assert len(cold) <= 2, cold
    assert warm == []
    async with statements(app) as counted:
        found = await client.execute("{ assets(first: 3) { totalCount edges { node { rank } } } }")
    assert found.ok()["assets"]["totalCount"] == 8 and counted == []


async def test_performance_of_every_asset_of_the_universe_reads_each_series_once(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    app, client = demo
    query = "{ universe(top: 8) { symbol performance { sharpe maxDrawdown } } }"
    async with statements(app) as cold:
        first = (await client.execute(query)).ok()["universe"]
    async with statements(app) as warm:
        second = (await client.execute(query)).ok()["universe"]
    assert first == second and len(first) == 6  # stablecoins left out
    # The snapshot (2), then per series a count and a read: not 3 statements per asset.
    assert len(cold) <= 2 + 2 * 6, cold
    assert warm == []
    metrics = (await client.http.get("/metrics")).text
    assert 'coinql_series_cache_total{outcome="hit"} 6.0' in metrics


# -- invalidation -------------------------------------------------------------------------


def rows_of(path: Path, count: int) -> bytes:
    lines = path.read_bytes().splitlines(keepends=True)
    return b"".join(lines[: count + 1])


CANDLES = '{ asset(symbol: "BTC") { lastPrice candles { count close } } }'


async def test_an_import_changes_what_the_next_query_returns(
    app: Starlette, client: GraphQLClient, admin: str
) -> None:
    bitcoin = COINS_DIR / "coin_Bitcoin.csv"
    await upload(client, rows_of(bitcoin, 100), token=admin, filename=bitcoin.name)
    before = (await client.execute(CANDLES)).ok()["asset"]
    assert before["candles"]["count"] == 100
    assert (await client.execute(CANDLES)).ok()["asset"] == before  # from the cache
    await upload(client, rows_of(bitcoin, 200), token=admin, filename=bitcoin.name)
    after = (await client.execute(CANDLES)).ok()["asset"]
    assert after["candles"]["count"] == 200
    assert after["candles"]["close"][:100] == before["candles"]["close"]
    assert after["lastPrice"] == after["candles"]["close"][-1] != before["lastPrice"]


async def append_day(app: Starlette, symbol: str, *, exchange: str = "demo") -> float:
    """What ingestion and the feed do: save candles in a transaction of the app's sessions.
    Appends one day after the last to the symbol's D1 series; returns its close."""
    services = app.state.services
    async with services.sessions() as session, session.begin():
        asset = await market_store.get_asset(session, symbol=symbol)
        assert asset is not None and asset.last_price_at is not None
        stored = await market_store.load_candles(
            session, asset=asset, interval=Interval.D1, start=None, end=None
        )
        last = int(stored.timestamps[-1])
        close = float(stored.close[-1]) * 1.5
        await market_store.save_candles(
            session,
            symbol=symbol,
            name=None,
            data_source=asset.data_source,
            exchange=exchange,
            pair=f"{symbol}/USD",
            interval=Interval.D1,
            candles=Candles.from_columns(
                [last + DAY_MS], [close], [close], [close], [close], [1.0], [np.nan]
            ),
            now=services.now(),
        )
    return close


async def test_an_append_by_ingestion_or_the_feed_is_visible_at_once(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    app, client = demo
    before = (await client.execute(CANDLES)).ok()["asset"]["candles"]
    close = await append_day(app, "BTC")
    after = (await client.execute(CANDLES)).ok()["asset"]["candles"]
    assert after["count"] == before["count"] + 1 and after["close"][-1] == close


async def test_a_rolled_back_write_keeps_the_cache(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    app, client = demo
    await client.execute(CANDLES)
    with pytest.raises(RuntimeError):
        async with app.state.services.sessions() as session, session.begin():
            market_store.mark_written(session, 1)
            raise RuntimeError("rolled back")
    async with statements(app) as warm:
        await client.execute(CANDLES)
    assert warm == []


@pytest.mark.skipif(
    not os.environ.get("COINQL_TEST_REDIS_URL"), reason="needs COINQL_TEST_REDIS_URL"
)
async def test_with_redis_a_write_in_one_process_reaches_the_cache_of_another(
    backend: Backend, tmp_path: Path
) -> None:
    settings = make_settings(
        backend,
        tmp_path,
        source="demo",
        feed_enabled=False,
        redis_url=backend.redis_url or os.environ["COINQL_TEST_REDIS_URL"],
    )
    reader, writer = create_app(settings), create_app(settings)
    async with running(reader) as client, running(writer):
        before = (await client.execute(CANDLES)).ok()["asset"]["candles"]["count"]
        assert (await client.execute(CANDLES)).ok()["asset"]["candles"]["count"] == before
        close = await append_day(writer, "BTC")
        for _ in range(100):
            found = (await client.execute(CANDLES)).ok()["asset"]["candles"]
            if found["count"] == before + 1:
                break
            await asyncio.sleep(0.05)
        assert found["count"] == before + 1 and found["close"][-1] == close


# -- the bound ----------------------------------------------------------------------------


async def test_the_cache_stays_within_its_bound_least_recently_used_out(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    app, _ = demo
    services = app.state.services
    async with services.reader() as session:
        markets = sorted(
            market.id
            for found in (
                await market_store.markets_of(session, asset_ids=list(range(1, 9)))
            ).values()
            for market in found
            if market.id is not None
        )
        size = len(
            await candle_store.read_candles(session, market_id=markets[0], interval=Interval.D1)
        )
    entry = size * BYTES_PER_CANDLE
    evictions: list[int] = []
    cache = SeriesCache(max_bytes=3 * entry + entry // 2, on_eviction=lambda: evictions.append(1))
    cache.max_entry_bytes = entry  # room for three series
    async with services.reader() as session:
        reads = [
            await cache.read(session, market_id=m, interval=Interval.D1, start=None, end=None)
            for m in markets[:4]
        ]
        assert cache.nbytes <= cache.max_bytes and len(evictions) == 1
        assert (
            cache.cached(market_id=markets[0], interval=Interval.D1, start=None, end=None) is None
        )
        assert all(
            cache.cached(market_id=m, interval=Interval.D1, start=None, end=None)
            for m in markets[1:4]
        )
        expected = await candle_store.read_candles(
            session, market_id=markets[0], interval=Interval.D1
        )
        assert np.array_equal(reads[0].candles.close, expected.close)
        # A series larger than a quarter of the bound is read, not kept.
        small = SeriesCache(max_bytes=entry)
        window = await small.read(
            session,
            market_id=markets[0],
            interval=Interval.D1,
            start=int(expected.timestamps[10]),
            end=int(expected.timestamps[19]),
        )
        assert window.version is None and small.nbytes == 0
        assert np.array_equal(window.candles.close, expected.close[10:20])
