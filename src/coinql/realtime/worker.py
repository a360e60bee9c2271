"""`coinql worker`: arq runs the same job body as the in-process queue, from Redis.

Each arq entry is a wake-up: the worker claims the job the store picks (fair across users,
within each one's running limit), not necessarily the one the entry is named after, and after
running it wakes the workers again, since a slot, and perhaps its owner's running slot, is
free. A wake-up that finds nothing to start ends at once: the jobs stay QUEUED until a job
ends (or the API's sweeper hands them over again), so a worker never polls for them.
"""

from __future__ import annotations

import os
import socket
from functools import partial
from typing import Any

import structlog
from arq.connections import RedisSettings
from arq.worker import func
from prometheus_client import start_http_server
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from coinql.observability import Metrics
from coinql.realtime.backends import Backends
from coinql.realtime.compute import run_in_thread
from coinql.realtime.job_runner import ARQ_FUNCTION, JobRunner, wake_workers
from coinql.settings import Settings
from coinql.store import tables  # noqa: F401 - every table, so foreign keys resolve
from coinql.store.db import create_engine, create_session_factory

log = structlog.get_logger("coinql.jobs")
OUTAGE_RETRIES = 60


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
        hub = Backends.from_settings(settings).hub()
        await hub.connect()
        ctx["engine"], ctx["hub"] = engine, hub
        ctx["runner"] = JobRunner(
            sessions=create_session_factory(engine),
            hub=hub,
            compute=run_in_thread,
            runner=f"arq:{socket.gethostname()}:{os.getpid()}",
            max_running_per_user=settings.max_running_jobs_per_user,
            wake=partial(wake_workers, ctx["redis"]),
            on_end=metrics.job_ended,
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["hub"].disconnect()
        await ctx["engine"].dispose()

    async def run_job(ctx: dict[str, Any], queued: str | None = None) -> None:
        """`queued`: the job whose submission woke the workers (for the logs)."""
        if not await ctx["runner"].run_next():
            return
        try:
            await ctx["redis"].enqueue_job(ARQ_FUNCTION)
        except (OSError, RedisError) as error:  # the sweeper wakes the workers later
            log.warning("workers not woken after a job", error=str(error))

    class WorkerSettings:
        # keep_result=0: once a wake-up has run, its id (a job's) may be queued again by the
        # API's sweeper (`JobQueue.requeue_stranded`).
        functions = (func(run_job, name=ARQ_FUNCTION, keep_result=0),)
        redis_settings = riding_out_outages(RedisSettings.from_dsn(redis_url))
        on_startup = startup
        on_shutdown = shutdown
        max_jobs = settings.effective_job_slots
        max_tries = 1  # a job whose worker died is FAILED by the sweeper, not retried
        job_timeout = 3600
        handle_signals = True

    return WorkerSettings
