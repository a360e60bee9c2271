"""The Starlette application: GraphQL over HTTP and WebSocket, health and metrics.

`create_app` is the factory: its lifespan builds the services from the settings (the Redis
or local backends from `coinql.realtime.backends`), starts the background tasks the source
calls for, and closes everything on shutdown.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Protocol, TypeVar

import httpx
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from coinql.exchanges.ccxt import ExchangeAdapter, ExchangeClient, create_exchange
from coinql.exchanges.coingecko import CoinGeckoMarketCaps, MarketCapProvider
from coinql.health import live, metrics, ready
from coinql.migrations import ensure_current
from coinql.observability import Metrics, RequestIdMiddleware, configure_logging
from coinql.realtime.accounts import AccountSyncScheduler
from coinql.realtime.backends import Backends, Role
from coinql.realtime.bots import BotLifecycle, BotRunner
from coinql.realtime.demo import demo_clock, demo_ticks, load_demo_if_empty
from coinql.realtime.feed import ExchangeCandles, ExchangeTicks, FeedService, TickSource
from coinql.realtime.ingestion import IngestionScheduler
from coinql.realtime.leader import Leader
from coinql.realtime.prices import LatestPrices
from coinql.realtime.risk import RiskMonitor
from coinql.realtime.series_cache import SeriesCache
from coinql.realtime.sessions import LiveSessions
from coinql.reports import report_routes
from coinql.resolvers.context import Services
from coinql.schema import build_schema
from coinql.settings import Settings
from coinql.store.db import create_engine, create_session_factory
from coinql.view import CoinqlGraphQL, error_response
from coinql.web import dashboard_routes

log = structlog.get_logger("coinql.app")
GC_THRESHOLDS = (50_000, 20, 100)  # CPython's defaults: (700, 10, 10)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, error.detail)


def reporter(services: Services, task: str) -> Callable[[str], None]:
    """How the background `task` reports its state to /health: "starting", then the role its
    leader election gave it."""

    def on_status(state: str) -> None:
        services.background[task] = state

    return on_status


async def start_feed(
    services: Services,
    source: TickSource,
    exchange: str,
    candle_source: ExchangeCandles | None = None,
) -> FeedService:
    settings = services.settings

    on_status = reporter(services, "feed")
    feed = FeedService(
        hub=services.hub,
        sessions=services.sessions,
        source=source,
        leader=services.backends.leader("feed", engine=services.engine),
        exchange=exchange,
        pair_quote="USD" if exchange == "demo" else settings.exchange_quote,
        on_status=on_status,
        on_candles=services.metrics.candles_inserted.labels("feed").inc,
        candle_source=candle_source,
        clock=services.market_now,
    )
    on_status("starting")
    services.feed = feed
    await services.prices.start(source.symbols)  # hear every tick, as queries read them
    feed.start()
    return feed


class Background(Protocol):
    def start(self) -> None: ...


B = TypeVar("B", bound=Background, covariant=True)


class BuildBackground(Protocol[B]):
    """A background task's class with its own arguments bound: `partial(BotRunner, ...)`."""

    def __call__(self, *, leader: Leader, on_status: Callable[[str], None]) -> B: ...


def start_background(services: Services, task: str, role: Role, build: BuildBackground[B]) -> B:
    """Build the background `task`, led by the election for `role` and reporting to /health,
    report it starting and start it."""
    on_status = reporter(services, task)
    background = build(
        leader=services.backends.leader(role, engine=services.engine), on_status=on_status
    )
    on_status("starting")
    background.start()
    return background


def start_risk_monitor(services: Services) -> RiskMonitor:
    """Risk limits checked whatever the source, even with no feed (at the stored prices)."""
    monitor = partial(
        RiskMonitor,
        sessions=services.sessions,
        hub=services.hub,
        prices=services.prices,
        every_seconds=services.settings.risk_check_seconds,
        on_breach=BotLifecycle(services.bots).pause_booking_into,
        clock=services.now,
    )
    return start_background(services, "risk", "risk", monitor)


def start_account_sync(services: Services) -> AccountSyncScheduler:
    """Every exchange connection synced each COINQL_ACCOUNT_SYNC_SECONDS, by one process."""
    scheduler = partial(
        AccountSyncScheduler,
        syncer=services.accounts,
        every_seconds=services.settings.account_sync_seconds,
        on_sync=lambda outcome: services.metrics.account_syncs.labels(outcome).inc(),
        clock=services.now,
    )
    return start_background(services, "accountSync", "account-sync", scheduler)


def start_bots(services: Services) -> BotRunner:
    """Every running bot's signals traded each COINQL_BOT_POLL_SECONDS, by one process."""
    runner = partial(
        BotRunner, engine=services.bots, poll_seconds=services.settings.bot_poll_seconds
    )
    return start_background(services, "bots", "bots", runner)


def start_ingestion(
    services: Services,
    client: ExchangeClient,
    market_caps: MarketCapProvider | None,
) -> IngestionScheduler:
    settings = services.settings
    adapter = ExchangeAdapter(
        client, quote=settings.exchange_quote, clock=lambda: services.now().timestamp()
    )
    services.exchange = adapter
    scheduler = partial(
        IngestionScheduler,
        sessions=services.sessions,
        adapter=adapter,
        symbols=settings.exchange_symbols,
        intervals=settings.exchange_intervals,
        poll_seconds=settings.ingest_poll_seconds,
        history_days=settings.ingest_history_days,
        market_caps=market_caps,
        on_candles=services.metrics.candles_inserted.labels(adapter.exchange_id).inc,
        clock=services.now,
    )
    return start_background(services, "ingestion", "ingestion", scheduler)


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
            backends = Backends.from_settings(settings)
            hub = backends.hub(on_reconnect=metrics.broadcast_reconnects.inc)
            await hub.connect()
            stack.push_async_callback(hub.disconnect)
            series = SeriesCache(
                max_bytes=int(settings.cache_mb * 1024 * 1024),
                hub=hub,
                on_hit=metrics.series_cache.labels("hit").inc,
                on_miss=metrics.series_cache.labels("miss").inc,
                on_eviction=metrics.series_cache.labels("eviction").inc,
                on_size=metrics.series_cache_bytes.set,
            )
            await series.start()
            stack.push_async_callback(series.stop)
            # Every transaction that writes candles drops their cached series when it commits.
            sessions = create_session_factory(engine, on_commit=series.committed)
            jobs = backends.job_queue(settings, on_end=metrics.job_ended)
            await jobs.start(sessions=sessions, hub=hub)
            stack.push_async_callback(jobs.stop)
            throttle = backends.throttle()
            stack.push_async_callback(throttle.close)
            live_sessions = LiveSessions(hub)
            await live_sessions.start()
            stack.push_async_callback(live_sessions.stop)
            prices = LatestPrices(hub)
            stack.push_async_callback(prices.stop)
            app.state.services = Services(
                settings=settings,
                backends=backends,
                engine=engine,
                sessions=sessions,
                hub=hub,
                jobs=jobs,
                metrics=metrics,
                secret_key=settings.resolved_secret_key(),
                live_sessions=live_sessions,
                prices=prices,
                throttle=throttle,
                series=series,
            )
            services = app.state.services
            monitor = start_risk_monitor(services)
            stack.push_async_callback(monitor.stop)
            if settings.account_sync_seconds > 0:
                account_sync = start_account_sync(services)
                stack.push_async_callback(account_sync.stop)
            if settings.bot_poll_seconds > 0:
                bots = start_bots(services)
                stack.push_async_callback(bots.stop)
            if settings.source == "demo":
                await load_demo_if_empty(sessions, clock=services.now)
                if settings.feed_enabled:
                    if settings.demo_speed != 1:
                        services.market_clock = await demo_clock(
                            sessions, speed=settings.demo_speed
                        )
                    demo = await demo_ticks(
                        sessions,
                        interval_seconds=settings.feed_tick_seconds,
                        clock=services.market_now,
                        speed=settings.demo_speed,
                    )
                    feed = await start_feed(services, demo, "demo")
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
                        clock=services.now,
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
            *report_routes(graphql),
            *dashboard_routes(settings),
        ],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
