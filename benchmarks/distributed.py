"""[4/8] Research that outgrows one machine: a 1,000-combination sweep job, cut into chunks,
on one `coinql worker` and then on two (one job slot each, through Redis), timed from the
job's wake-up to its end; the two runs' results must be the same.

Needs Redis (COINQL_BENCH_REDIS_URL, or COINQL_TEST_REDIS_URL); without it the row says why
it was skipped. The store is a PostgreSQL database of its own (COINQL_BENCH_DATABASE_URL or
COINQL_TEST_DATABASE_URL), created and dropped here, else a SQLite file.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from redis.asyncio import Redis

from benchmarks.backtest import CONFIG, random_walk
from benchmarks.common import BENCHMARK_SECRET, Figure, postgres_url
from benchmarks.market import drop_postgres, fresh_postgres
from coinql.domain.candles import Interval
from coinql.domain.runs import StudyJob
from coinql.migrations import upgrade
from coinql.realtime.clock import utc_now
from coinql.realtime.job_runner import wake_workers
from coinql.resolvers.auth import create_user
from coinql.store import jobs as job_store
from coinql.store import market as market_store
from coinql.store import runs as run_store
from coinql.store.db import create_engine, create_session_factory
from coinql.store.jobs import JobKind, JobStatus

GRID = {"fast": list(range(2, 42)), "slow": list(range(45, 45 + 25 * 5, 5))}  # 1,000
TARGET = 1.7


def redis_url() -> str | None:
    return os.environ.get("COINQL_BENCH_REDIS_URL") or os.environ.get("COINQL_TEST_REDIS_URL")


def start_workers(count: int, database_url: str, redis: str) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "COINQL_DATABASE_URL": database_url,
        "COINQL_REDIS_URL": redis,
        "COINQL_SECRET_KEY": BENCHMARK_SECRET,
        "COINQL_LOG_LEVEL": "WARNING",
        "COINQL_JOB_SLOTS": "1",  # one core each
    }
    return [
        subprocess.Popen(
            [sys.executable, "-m", "coinql.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def seed(database_url: str, bars: int) -> uuid.UUID:
    """The schema, one user, and `bars` M1 candles of a random walk as BTC; the user's id."""
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            user = await create_user(
                session,
                email="bench@example.com",
                password="a long benchmark password",
                is_admin=False,
                now=utc_now(),
            )
            await market_store.save_candles(
                session,
                symbol="BTC",
                name="Bitcoin",
                data_source="benchmark",
                exchange="bench",
                pair="BTC/USD",
                interval=Interval.M1,
                candles=random_walk(bars, seed=1),
                now=utc_now(),
            )
            return user.id
    finally:
        await engine.dispose()


async def timed_sweep(database_url: str, redis: str, owner: uuid.UUID) -> tuple[float, Any]:
    """Queue the sweep, wake the workers, wait for its end: seconds, and the stored result."""
    request = StudyJob(
        symbol="BTC",
        interval=Interval.M1,
        start=None,
        end=None,
        kind="smaCross",
        grid=GRID,
        metric="sharpe",
        config=CONFIG,
    )
    engine = create_engine(database_url)
    arq = await create_pool(RedisSettings.from_dsn(redis))
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            job = await job_store.add_job(
                session,
                owner_id=owner,
                kind=JobKind.SWEEP,
                job_input=request.to_json(),
                now=utc_now(),
            )
        started = time.perf_counter()
        await wake_workers(arq, job.id)
        while True:
            await asyncio.sleep(0.05)
            async with sessions() as session:
                found = await job_store.get_job(session, job_id=job.id)
            assert found is not None
            if JobStatus(found.status).final:
                break
        elapsed = time.perf_counter() - started
        if found.status != JobStatus.SUCCEEDED.value:
            raise RuntimeError(f"the sweep job ended {found.status}: {found.error}")
        async with sessions() as session:
            run = await run_store.get_study_run(session, run_id=found.result_id, owner_id=owner)
        assert run is not None
        return elapsed, run.result
    finally:
        await arq.aclose()
        await engine.dispose()


async def ready(count: int, redis: str) -> None:
    """Until `count` arq workers have written their health check (they poll the queue)."""
    client = Redis.from_url(redis)
    try:
        for _ in range(300):
            if await client.exists("arq:queue:health-check"):
                break
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    await asyncio.sleep(2.0)  # the second worker's startup, which writes the same key


async def run(*, quick: bool) -> list[Figure]:
    redis = redis_url()
    name = "distributed sweep, 1,000 combinations: 2 workers vs 1"
    if redis is None:
        return [Figure(f"{name} (skipped: set COINQL_BENCH_REDIS_URL)", 0.0, "")]
    bars = 20_000 if quick else 100_000
    flush = Redis.from_url(redis)
    await flush.flushdb()
    await flush.aclose()
    admin = None
    with tempfile.TemporaryDirectory() as folder:
        pg = postgres_url()
        if pg:
            database_url, admin = await fresh_postgres(pg)
        else:
            database_url = f"sqlite+aiosqlite:///{Path(folder) / 'distributed.db'}"
        try:
            owner = await seed(database_url, bars)
            seconds, results = {}, {}
            for count in (1, 2):
                workers = start_workers(count, database_url, redis)
                try:
                    await ready(count, redis)
                    seconds[count], results[count] = await timed_sweep(database_url, redis, owner)
                finally:
                    stop(workers)
        finally:
            if admin is not None:
                await drop_postgres(admin, database_url)
    same = results[1] == results[2]
    store = "PostgreSQL" if admin is not None else "SQLite"
    return [
        Figure(
            f"sweep job, 1,000 combinations x {bars:,} bars, 2 workers ({store})",
            seconds[2],
            "s",
            seconds[1],
            "1 worker",
            target=f">= {TARGET}x",
        ),
        Figure("distributed sweep: same result on 2 workers as on 1", float(same), "", target="1"),
    ]
