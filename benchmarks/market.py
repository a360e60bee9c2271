"""[2/7] Market data: the Candles query against a bare endpoint, and bulk imports."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.common import (
    BENCHMARK_SECRET,
    UNLIMITED_BUDGETS,
    Figure,
    median_seconds_async,
    postgres_url,
)
from coinql.app import create_app
from coinql.domain.candles import DAY_MS, Candles, Interval
from coinql.migrations import upgrade
from coinql.resolvers.market import import_bytes
from coinql.settings import Settings
from coinql.store import candles as candle_store
from coinql.store import market as market_store
from coinql.store.candles import Candle
from coinql.store.db import create_engine, create_session_factory

NOW = datetime(2026, 1, 1, tzinfo=UTC)
IMPORT_TARGET = 250_000  # candles/s of a 1,000,000-candle CSV import on PostgreSQL (issue [4/8])
CANDLES_QUERY = Path(__file__).resolve().parents[1].parent / "shared/contract/market.graphql"


def random_candles(count: int, step: int, seed: int = 0) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    open_ = np.concatenate([[100.0], close[:-1]])
    return Candles(
        np.arange(count, dtype=np.int64) * step,
        open_,
        np.maximum(open_, close) * 1.01,
        np.minimum(open_, close) * 0.99,
        close,
        rng.random(count) * 1000,
        rng.random(count) * 1e6,
    )


def candles_operation() -> str:
    from graphql import OperationDefinitionNode, parse

    source = CANDLES_QUERY.read_text()
    for definition in parse(source).definitions:
        if isinstance(definition, OperationDefinitionNode) and definition.name.value == "Candles":
            assert definition.loc is not None
            return source[definition.loc.start : definition.loc.end]
    raise LookupError("Candles")


async def candles_query(workdir: Path, *, repeat: int) -> list[Figure]:
    database_url = f"sqlite+aiosqlite:///{workdir / 'candles.db'}"
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    async with sessions() as session, session.begin():
        await market_store.save_candles(
            session,
            symbol="BTC",
            name="Bitcoin",
            data_source="import",
            exchange="import",
            pair="BTC/USD",
            interval=Interval.D1,
            candles=random_candles(3650, DAY_MS),
            now=NOW,
        )

    async def bare(request: Request) -> Response:
        """The same store calls as the resolver, encoded with orjson, no GraphQL."""
        symbol = request.path_params["symbol"]
        async with sessions() as session:
            asset = await market_store.get_asset(session, symbol=symbol)
            assert asset is not None and asset.id is not None
            markets = (await market_store.markets_of(session, asset_ids=[asset.id]))[asset.id]
            market = market_store.primary_market(asset, markets)
            assert market is not None and market.id is not None
            candles = await candle_store.read_candles(
                session, market_id=market.id, interval=Interval.D1
            )
        body = {
            "symbol": asset.symbol,
            "candles": {
                "count": len(candles),
                "timestamps": candles.timestamps,
                "open": candles.open,
                "high": candles.high,
                "low": candles.low,
                "close": candles.close,
                "volume": candles.volume,
                "quoteVolume": candles.quote_volume,
            },
        }
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))

    bare_app = Starlette(routes=[Route("/candles/{symbol}", bare)])
    settings = Settings(
        database_url=database_url,
        secret_key=BENCHMARK_SECRET,
        source="none",
        log_level="WARNING",
        **UNLIMITED_BUDGETS,
    )
    app = create_app(settings)
    query = candles_operation()
    async with app.router.lifespan_context(app):
        graphql = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
        plain = httpx.AsyncClient(transport=httpx.ASGITransport(app=bare_app), base_url="http://b")

        async def via_graphql() -> None:
            response = await graphql.post(
                "/graphql",
                json={"query": query, "variables": {"symbol": "BTC"}, "operationName": "Candles"},
            )
            assert response.json()["data"]["asset"]["candles"]["count"] == 3650

        async def via_bare() -> None:
            response = await plain.get("/candles/BTC")
            assert response.json()["candles"]["count"] == 3650

        graphql_s = await median_seconds_async(via_graphql, repeat=repeat, warmup=3)
        bare_s = await median_seconds_async(via_bare, repeat=repeat, warmup=3)
        await graphql.aclose()
        await plain.aclose()
    await engine.dispose()
    return [
        Figure(
            "Candles query, 10 years of D1 (3,650 candles)",
            graphql_s * 1000,
            "ms",
            baseline=bare_s * 1000,
            baseline_name="bare Starlette + same store query + orjson",
            target="<= 1.5x baseline time (ratio >= 0.67)",
        )
    ]


def csv_of(candles: Candles) -> bytes:
    header = "timestamp,open,high,low,close,volume,quote_volume\n"
    columns = [
        candles.timestamps.astype(str),
        *(
            np.char.mod("%.10g", values)
            for values in (
                candles.open,
                candles.high,
                candles.low,
                candles.close,
                candles.volume,
                candles.quote_volume,
            )
        ),
    ]
    lines = [",".join(row) for row in zip(*columns, strict=True)]
    return (header + "\n".join(lines) + "\n").encode()


async def fresh_postgres(url: str) -> tuple[str, str]:
    base = make_url(url)
    name = f"coinql_bench_{uuid.uuid4().hex[:8]}"
    admin = base.set(database="postgres").render_as_string(hide_password=False)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False), admin


async def drop_postgres(admin: str, database_url: str) -> None:
    name = make_url(database_url).database
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def import_rate(database_url: str, data: bytes, count: int) -> float:
    engine = create_engine(database_url)
    started = time.perf_counter()
    report = await import_bytes(
        create_session_factory(engine),
        data=data,
        symbol="BTC",
        interval=Interval.M1,
        max_bytes=len(data) + 1,
        now=NOW,
    )
    elapsed = time.perf_counter() - started
    assert report.candles_written == count, report
    await engine.dispose()
    return count / elapsed


async def orm_row_by_row_rate(database_url: str, candles: Candles) -> float:
    """The naive way: one ORM object added and flushed per candle."""
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    async with sessions() as session, session.begin():
        asset = await market_store.upsert_asset(
            session, symbol="ORM", name=None, data_source="import", now=NOW
        )
        assert asset.id is not None
        market = await market_store.get_or_add_market(
            session, asset_id=asset.id, exchange="import", pair="ORM/USD"
        )
        assert market.id is not None
        started = time.perf_counter()
        for i in range(len(candles)):
            session.add(
                Candle(
                    market_id=market.id,
                    interval="M1",
                    open_time=int(candles.timestamps[i]),
                    open=float(candles.open[i]),
                    high=float(candles.high[i]),
                    low=float(candles.low[i]),
                    close=float(candles.close[i]),
                    volume=float(candles.volume[i]),
                    quote_volume=float(candles.quote_volume[i]),
                )
            )
            await session.flush()
        elapsed = time.perf_counter() - started
    await engine.dispose()
    return len(candles) / elapsed


async def imports(workdir: Path, *, count: int, orm_count: int) -> list[Figure]:
    candles = random_candles(count, 60_000)
    data = csv_of(candles)
    sqlite_url = f"sqlite+aiosqlite:///{workdir / 'import.db'}"
    await asyncio.to_thread(upgrade, sqlite_url)
    sqlite_rate = await import_rate(sqlite_url, data, count)
    figures = [
        Figure(
            f"import {count:,} M1 candles from CSV, SQLite (parse+validate+write)",
            sqlite_rate,
            "candles/s",
            higher_is_better=True,
        )
    ]
    pg = postgres_url()
    if pg is None:
        print("  PostgreSQL import figures skipped: set COINQL_BENCH_DATABASE_URL")
        return figures
    database_url, admin = await fresh_postgres(pg)
    try:
        await asyncio.to_thread(upgrade, database_url)
        pg_rate = await import_rate(database_url, data, count)
        orm_rate = await orm_row_by_row_rate(database_url, random_candles(orm_count, 60_000, 1))
    finally:
        await drop_postgres(admin, database_url)
    verdict = "met" if pg_rate >= IMPORT_TARGET else "not met"
    figures.append(
        Figure(
            f"import {count:,} M1 candles from CSV, PostgreSQL via binary COPY",
            pg_rate,
            "candles/s",
            baseline=orm_rate,
            baseline_name=f"ORM add+flush per row ({orm_count:,} rows)",
            higher_is_better=True,
            target=f">= {IMPORT_TARGET:,} candles/s ({verdict}); >= 10x",
        )
    )
    return figures


async def run(*, quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        figures = await candles_query(workdir, repeat=20 if quick else 50)
        figures += await imports(
            workdir, count=100_000 if quick else 1_000_000, orm_count=2_000 if quick else 10_000
        )
    return figures
