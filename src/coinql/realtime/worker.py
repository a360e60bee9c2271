"""`coinql worker`: arq runs the same job body as the in-process queue, from Redis."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from arq.connections import RedisSettings
from arq.worker import func
from prometheus_client import start_http_server
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from coinql.observability import Metrics
from coinql.realtime.hub import Hub
from coinql.realtime.jobs import ARQ_FUNCTION, JobRunner
from coinql.settings import Settings
from coinql.store import tables  # noqa: F401 - every table, so foreign keys resolve
from coinql.store.db import create_engine, create_session_factory

T = TypeVar("T")
OUTAGE_RETRIES = 60


async def _in_thread(function: Callable[..., T], *args: Any) -> T:
    """A worker process is already apart from the API: its heavy step runs in a thread so that
    its own loop keeps heartbeating."""
    return await asyncio.to_thread(function, *args)


def riding_out_outages(redis_settings: RedisSettings) -> RedisSettings:
    """arq's worker loop lets a Redis error end the process; retried with backoff (up to
    ~2 minutes), a Redis restart is ridden out and the worker picks up where it was."""
    redis_settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    redis_settings.retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=OUTAGE_RETRIES)
    redis_settings.conn_retries = OUTAGE_RETRIES
    return redis_settings


def worker_settings(settings: Settings, *, metrics_port: int | None = None) -> type:
    assert settings.redis_url is not None
    redis_url = settings.redis_url
    metrics = Metrics()

    async def startup(ctx: dict[str, Any]) -> None:
        if metrics_port is not None:
            start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
        engine = create_engine(settings.database_url)
        hub = Hub(settings.redis_url)
        await hub.connect()
        ctx["engine"], ctx["hub"] = engine, hub
        ctx["runner"] = JobRunner(
            sessions=create_session_factory(engine),
            hub=hub,
            compute=_in_thread,
            runner=f"arq:{socket.gethostname()}:{os.getpid()}",
            on_end=metrics.job_ended,
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["hub"].disconnect()
        await ctx["engine"].dispose()

    async def run_job(ctx: dict[str, Any], job_id: str) -> None:
        import uuid

        await ctx["runner"].run(uuid.UUID(job_id))

    class WorkerSettings:
        functions = (func(run_job, name=ARQ_FUNCTION),)
        redis_settings = riding_out_outages(RedisSettings.from_dsn(redis_url))
        on_startup = startup
        on_shutdown = shutdown
        max_tries = 1  # a job whose worker died is FAILED by the sweeper, not retried
        job_timeout = 3600
        handle_signals = True

    return WorkerSettings
