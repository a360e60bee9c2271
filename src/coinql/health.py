"""The service's health and metrics endpoints: liveness, readiness of each component, and
the Prometheus metrics (their gauges read off the services as of the request)."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coinql.realtime.ingestion import stalled_seconds
from coinql.resolvers.context import Services
from coinql.store import accounts as account_store
from coinql.store import ingestion as ingestion_store
from coinql.store.db import ping

READINESS_TIMEOUT_SECONDS = 2.0


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


async def _account_sync_health(services: Services) -> dict[str, Any]:
    """Account sync is "degraded" (not down: the portfolios still serve) while a connection's
    last sync failed; the counts say how many connections stand where ("unknown" while the
    database cannot tell)."""

    async def read() -> list[tuple[str, int, Any]]:
        async with services.reader() as session:
            return await account_store.sync_states(session)

    try:
        states = await asyncio.wait_for(read(), READINESS_TIMEOUT_SECONDS)
    except Exception as error:
        return {"status": "unknown", "error": f"{type(error).__name__}: {error}"[:300]}
    failing = [failures for status, failures, _ in states if status == "ERROR"]
    synced = [at for _, _, at in states if at is not None]
    every = services.settings.account_sync_seconds
    return {
        "status": "degraded" if failing else "up",
        "role": services.background.get("accountSync", "starting") if every else "off",
        "everySeconds": every,
        "connections": len(states),
        "syncing": sum(1 for status, _, _ in states if status == "SYNCING"),
        "failing": len(failing),
        "mostFailuresInARow": max(failing, default=0),
        "oldestSyncAt": min(synced).isoformat() if synced else None,
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
    if services.backends.kind == "redis":
        components["redis"] = await _check(services.hub.ping)
    for name, state in services.background.items():
        if name not in ("ingestion", "accountSync"):
            components[name] = {"status": state}
    if services.exchange is not None:
        components["ingestion"] = await _ingestion_health(services)
    components["accountSync"] = await _account_sync_health(services)
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
