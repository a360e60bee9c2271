"""The Starlette application: GraphQL over HTTP and WebSocket, health and metrics."""

from __future__ import annotations

import asyncio
import gc
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import numpy as np
import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from coinql.domain.candles import DAY_MS, Interval
from coinql.domain.demo import generate_demo_market
from coinql.migrations import ensure_current
from coinql.observability import Metrics, RequestIdMiddleware, configure_logging
from coinql.realtime.feed import (
    DemoTicks,
    ExchangeCandles,
    ExchangeTicks,
    FeedService,
    LocalLeader,
    RedisLeader,
    TickSource,
)
from coinql.realtime.hub import Hub
from coinql.realtime.ingestion import IngestionScheduler, stalled_seconds
from coinql.realtime.jobs import JobQueue
from coinql.realtime.prices import LatestPrices
from coinql.realtime.risk import LEADER_KEY as RISK_LEADER_KEY
from coinql.realtime.risk import RiskMonitor
from coinql.realtime.sessions import LiveSessions
from coinql.resolvers.context import Services
from coinql.schema import build_schema
from coinql.settings import Settings
from coinql.store import ingestion as ingestion_store
from coinql.store import market as market_store
from coinql.store.db import create_engine, create_session_factory, ping
from coinql.store.exchange import (
    CoinGeckoMarketCaps,
    ExchangeAdapter,
    ExchangeClient,
    MarketCapProvider,
    create_exchange,
)
from coinql.store.throttle import create_throttle
from coinql.view import CoinqlGraphQL, error_response

log = structlog.get_logger("coinql.app")
READINESS_TIMEOUT_SECONDS = 2.0
GC_THRESHOLDS = (50_000, 20, 100)  # CPython's defaults: (700, 10, 10)
ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


async def _check(component: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(component(), READINESS_TIMEOUT_SECONDS)
    except Exception as error:
        return {"status": "down", "error": f"{type(error).__name__}: {error}"[:300]}
    return {"status": "up", "latencyMs": round((time.perf_counter() - started) * 1000, 2)}


async def _ingestion_health(services: Services) -> dict[str, Any]:
    """Ingestion is "degraded" (not down: stored data still serves) while any job fails or
    has had no success for several polls."""
    async with services.reader() as session:
        states = await ingestion_store.list_states(session)
    now, poll = services.now(), services.settings.ingest_poll_seconds
    stalled = [
        {
            "symbol": state.symbol,
            "interval": state.interval,
            "consecutiveFailures": state.consecutive_failures,
            "stalledBySeconds": seconds,
            "lastError": state.last_error,
        }
        for state in states
        if (seconds := stalled_seconds(state, now=now, poll_seconds=poll)) is not None
    ]
    return {
        "status": "degraded" if stalled else "up",
        "role": services.background.get("ingestion", "starting"),
        "jobs": len(states),
        "stalled": stalled,
    }


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Each component's state; 503 when a required one is down."""
    services: Services = request.app.state.services
    components: dict[str, dict[str, Any]] = {
        "database": {
            "kind": services.engine.dialect.name,
            **await _check(lambda: ping(services.engine)),
        }
    }
    if services.hub.kind == "redis":
        components["redis"] = await _check(services.hub.ping)
    for name, state in services.background.items():
        if name != "ingestion":
            components[name] = {"status": state}
    if services.exchange is not None:
        components["ingestion"] = await _ingestion_health(services)
    for name, component in components.items():
        services.metrics.component_up.labels(name).set(component["status"] == "up")
    healthy = all(component["status"] != "down" for component in components.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "components": components},
        status_code=200 if healthy else 503,
    )


async def metrics(request: Request) -> Response:
    """Prometheus metrics; with COINQL_METRICS_TOKEN set, only for "Bearer <that token>"."""
    services: Services = request.app.state.services
    expected = services.settings.metrics_token
    if expected is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
            return JSONResponse(
                {"errors": [{"message": "send 'Authorization: Bearer <COINQL_METRICS_TOKEN>'"}]},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    await _refresh_gauges(services)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _refresh_gauges(services: Services) -> None:
    """The gauges read off the services, as of now: shared subscription streams, and the lags
    since each ingestion job's last success and since the newest tick the feed published."""
    services.metrics.shared_streams.set(len(services.fanout.streams))
    now = services.now()
    if services.feed is not None and services.feed.last_tick_ms is not None:
        services.metrics.feed_lag.set(max(0.0, now.timestamp() - services.feed.last_tick_ms / 1000))
    if services.exchange is None:
        return
    async with services.reader() as session:
        states = await ingestion_store.list_states(session)
    for state in states:
        since = state.last_success_at or state.failing_since
        if since is not None:
            lag = (now - since).total_seconds()
            services.metrics.ingestion_lag.labels(state.symbol, state.interval).set(lag)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, error.detail)


async def load_demo_if_empty(services: Services) -> None:
    """On an empty store, the seeded demo market (marked dataSource "demo" everywhere)."""
    async with services.transaction() as session:
        if await market_store.has_assets(session):
            return
        today = int(services.now().timestamp() * 1000) // DAY_MS * DAY_MS
        # The history ends with yesterday's whole day: today's candles would be closes (and
        # hours) from the future. The feed carries on from yesterday's close.
        added = await market_store.save_demo_market(
            session, assets=generate_demo_market(end_day_ms=today - DAY_MS), now=services.now()
        )
    log.info("demo market loaded", candles=added, note="synthetic data, not market prices")


async def demo_ticks(services: Services) -> DemoTicks:
    """The demo market continued from its last closes, at each asset's recent volatility."""
    assets: dict[str, tuple[float, float]] = {}
    async with services.reader() as session:
        for asset in await market_store.list_assets(
            session,
            order=market_store.AssetOrder.SYMBOL_ASC,
            where=market_store.AssetFilter(data_source="demo"),
            offset=0,
            limit=500,
        ):
            daily = await market_store.load_candles(
                session, asset=asset, interval=Interval.D1, start=None, end=None
            )
            closes = daily.close[-91:]
            if asset.last_price is None or closes.size < 3:
                continue
            volatility = float(np.std(np.diff(np.log(closes)), ddof=1))
            assets[asset.symbol] = (asset.last_price, volatility)
    return DemoTicks(assets, interval_seconds=services.settings.feed_tick_seconds)


async def start_feed(
    services: Services,
    source: TickSource,
    exchange: str,
    candle_source: ExchangeCandles | None = None,
) -> FeedService:
    settings = services.settings

    def on_status(role: str) -> None:
        services.background["feed"] = role

    feed = FeedService(
        hub=services.hub,
        sessions=services.sessions,
        source=source,
        leader=RedisLeader(settings.redis_url) if settings.redis_url else LocalLeader(),
        exchange=exchange,
        pair_quote="USD" if exchange == "demo" else settings.exchange_quote,
        on_status=on_status,
        on_candles=services.metrics.candles_inserted.labels("feed").inc,
        candle_source=candle_source,
    )
    services.background["feed"] = "starting"
    services.feed = feed
    await services.prices.start(source.symbols)  # hear every tick, as queries read them
    feed.start()
    return feed


def start_risk_monitor(services: Services) -> RiskMonitor:
    """Risk limits checked whatever the source, even with no feed (at the stored prices)."""
    settings = services.settings

    def on_status(role: str) -> None:
        services.background["risk"] = role

    monitor = RiskMonitor(
        sessions=services.sessions,
        hub=services.hub,
        prices=services.prices,
        leader=RedisLeader(settings.redis_url, key=RISK_LEADER_KEY)
        if settings.redis_url
        else LocalLeader(),
        every_seconds=settings.risk_check_seconds,
        on_status=on_status,
    )
    services.background["risk"] = "starting"
    monitor.start()
    return monitor


def start_ingestion(
    services: Services,
    client: ExchangeClient,
    market_caps: MarketCapProvider | None,
) -> IngestionScheduler:
    settings = services.settings
    adapter = ExchangeAdapter(client, quote=settings.exchange_quote)
    services.exchange = adapter

    def on_status(role: str) -> None:
        services.background["ingestion"] = role

    scheduler = IngestionScheduler(
        engine=services.engine,
        sessions=services.sessions,
        adapter=adapter,
        symbols=settings.exchange_symbols,
        intervals=settings.exchange_intervals,
        poll_seconds=settings.ingest_poll_seconds,
        history_days=settings.ingest_history_days,
        market_caps=market_caps,
        on_status=on_status,
        on_candles=services.metrics.candles_inserted.labels(adapter.exchange_id).inc,
    )
    services.background["ingestion"] = "starting"
    scheduler.start()
    return scheduler


def create_app(
    settings: Settings,
    *,
    exchange_client: ExchangeClient | None = None,
    market_caps: MarketCapProvider | None = None,
) -> Starlette:
    """Build the service for these settings; the lifespan opens and closes its resources.

    `exchange_client` and `market_caps` replace the real ccxt client and CoinGecko provider
    (tests pass objects with the same interface; nothing here reaches the network for them).
    """
    configure_logging(settings)
    schema = build_schema(
        production=settings.production,
        limits=settings.query_limits,
        introspection=settings.introspection_enabled,
    )
    graphql = CoinqlGraphQL(
        schema,
        settings,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        multipart_uploads_enabled=True,
        allowed_origins=settings.cors_origins,
        keep_alive=True,
        keep_alive_interval=15,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            engine = create_engine(settings.database_url)
            stack.push_async_callback(engine.dispose)
            await ensure_current(engine)
            metrics = Metrics()
            hub = Hub(settings.redis_url, on_reconnect=metrics.broadcast_reconnects.inc)
            await hub.connect()
            stack.push_async_callback(hub.disconnect)
            sessions = create_session_factory(engine)
            jobs = JobQueue(
                settings.redis_url,
                slots=settings.effective_job_slots,
                max_running_per_user=settings.max_running_jobs_per_user,
                stale_seconds=settings.job_stale_seconds,
                sweep_seconds=settings.job_sweep_seconds,
                on_end=metrics.job_ended,
            )
            await jobs.start(sessions=sessions, hub=hub)
            stack.push_async_callback(jobs.stop)
            throttle = create_throttle(settings.redis_url)
            stack.push_async_callback(throttle.close)
            live_sessions = LiveSessions(hub)
            await live_sessions.start()
            stack.push_async_callback(live_sessions.stop)
            prices = LatestPrices(hub)
            stack.push_async_callback(prices.stop)
            app.state.services = Services(
                settings=settings,
                engine=engine,
                sessions=sessions,
                hub=hub,
                jobs=jobs,
                metrics=metrics,
                secret_key=settings.resolved_secret_key(),
                live_sessions=live_sessions,
                prices=prices,
                throttle=throttle,
            )
            services = app.state.services
            monitor = start_risk_monitor(services)
            stack.push_async_callback(monitor.stop)
            if settings.source == "demo":
                await load_demo_if_empty(services)
                if settings.feed_enabled:
                    feed = await start_feed(services, await demo_ticks(services), "demo")
                    stack.push_async_callback(feed.stop)
            elif settings.exchange_id is not None:
                client = exchange_client or create_exchange(settings.exchange_id)
                stack.push_async_callback(client.close)
                provider = market_caps
                if provider is None and settings.market_cap_provider == "coingecko":
                    http = httpx.AsyncClient()
                    stack.push_async_callback(http.aclose)
                    provider = CoinGeckoMarketCaps(http)
                scheduler = start_ingestion(services, client, provider)
                stack.push_async_callback(scheduler.stop)
                if settings.feed_enabled:
                    ticks = ExchangeTicks(
                        client,
                        settings.exchange_symbols,
                        quote=settings.exchange_quote,
                        poll_seconds=settings.feed_poll_seconds,
                    )
                    candles = ExchangeCandles(
                        client, settings.exchange_symbols, quote=settings.exchange_quote
                    )
                    feed = await start_feed(services, ticks, settings.exchange_id, candles)
                    stack.push_async_callback(feed.stop)
            # Everything built so far lives as long as the process: keep it out of the garbage
            # collector's full passes, which otherwise stall the loop (and live feeds) ~200 ms.
            gc.collect()
            gc.freeze()
            # Then collect the young generation less often (each pass stays ~10-20 ms), so
            # fewer per-message objects are promoted, and full passes, which scan every
            # connection's state (~100 ms with 1,000 subscribers), come much more rarely.
            gc.set_threshold(*GC_THRESHOLDS)
            log.info(
                "started",
                database=engine.dialect.name,
                broadcast=hub.kind,
                job_queue=jobs.kind,
                env=settings.env.value,
                source=settings.source,
            )
            yield
        log.info("stopped")

    middleware = [Middleware(RequestIdMiddleware)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id", "retry-after"],
            )
        )
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/health/live", live),
            Route("/health/ready", ready),
            Route("/metrics", metrics),
        ],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
