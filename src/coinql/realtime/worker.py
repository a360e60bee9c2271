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

from coinql.observability import Metrics
from coinql.realtime.hub import Hub
from coinql.realtime.jobs import ARQ_FUNCTION, JobRunner
from coinql.settings import Settings
from coinql.store import tables  # noqa: F401 - every table, so foreign keys resolve
from coinql.store.db import create_engine, create_session_factory

T = TypeVar("T")


async def _in_thread(function: Callable[..., T], *args: Any) -> T:
    """A worker process is already apart from the API: its heavy step runs in a thread so that
    its own loop keeps heartbeating."""
    return await asyncio.to_thread(function, *args)


def worker_settings(settings: Settings, *, metrics_port: int | None = None) -> type:
    assert settings.redis_url is not None
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
        redis_settings = RedisSettings.from_dsn(settings.redis_url)  # type: ignore[arg-type]
        on_startup = startup
        on_shutdown = shutdown
        max_tries = 1  # a job whose worker died is FAILED by the sweeper, not retried
        job_timeout = 3600
        handle_signals = True

    return WorkerSettings
