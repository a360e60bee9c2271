"""Where heavy jobs run, and the job body that is the same wherever they run.

- Embedded default (`in-process`): `JobQueue.enqueue` starts the body as a task of this
  process; its CPU-heavy step runs in a process pool (spawned workers), so the event loop
  stays free.
- With Redis: `enqueue` puts the job on arq; `coinql worker` processes on any machine run the
  same body, their heavy step in a thread of the worker.

The body records progress in the jobs table and publishes it on `jobs.<id>`. Failures are
visible: an exception marks the job FAILED with its message; a job whose runner stops
heartbeating (a killed worker) is marked FAILED by the sweeper; jobs this process was running
when it stopped are marked INTERRUPTED at its next start. Jobs are not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson
import structlog
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql import __version__
from coinql.domain import backtest, research, simulation
from coinql.domain.allocation import allocation_summary, performance_summary, run_allocation
from coinql.domain.candles import Interval
from coinql.domain.strategies import StrategySpec
from coinql.realtime import channels
from coinql.realtime.hub import Hub
from coinql.store import jobs as job_store
from coinql.store import market as market_store
from coinql.store.jobs import JobKind, JobStatus

log = structlog.get_logger("coinql.jobs")
T = TypeVar("T")
HEARTBEAT_SECONDS = 2.0
ARQ_FUNCTION = "run_job"
Compute = Callable[..., Awaitable[Any]]


def code_version() -> str:
    """The package version, and the git commit when running from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def canonical_hash(value: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Cancelled(Exception):
    """The job stopped being RUNNING (cancelled) while it worked."""


class JobRunner:
    """Runs one job body: claims it, reports progress, stores the result, records the end."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        hub: Hub,
        compute: Compute,
        runner: str,
        on_end: Callable[[str, JobStatus, float], None] = lambda kind, status, seconds: None,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.compute = compute
        self.runner = runner
        self.on_end = on_end  # (kind, final status, seconds since the start): for metrics
        self.version = code_version()

    async def _publish(self, job_id: Any, status: JobStatus, progress: float, stage: str) -> None:
        """Tell subscribers; the store already has it, so a broadcast outage (Redis away) does
        not stop the job: jobProgress re-reads the store while it hears nothing."""
        try:
            await self.hub.publish(
                channels.job(job_id),
                {
                    "jobId": str(job_id),
                    "status": status.value,
                    "progress": progress,
                    "stage": stage,
                },
            )
        except (OSError, RedisError) as error:
            log.warning("job progress not broadcast", job_id=str(job_id), error=str(error))

    async def progress(self, job_id: Any, value: float, stage: str) -> None:
        async with self.sessions() as session, session.begin():
            running = await job_store.set_progress(
                session, job_id=job_id, progress=value, stage=stage, now=datetime.now(UTC)
            )
        if not running:
            raise Cancelled
        await self._publish(job_id, JobStatus.RUNNING, value, stage)

    async def _heartbeat(self, job_id: Any, value: float, stage: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.progress(job_id, value, stage)

    async def heavy(
        self, job_id: Any, value: float, stage: str, function: Callable[..., T], *args: Any
    ) -> T:
        """Run the CPU-heavy step while heartbeating, so a dead runner is noticed."""
        await self.progress(job_id, value, stage)
        beat = asyncio.create_task(self._heartbeat(job_id, value, stage))
        try:
            result: T = await self.compute(function, *args)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Cancelled):
                await beat
        return result

    async def run(self, job_id: Any) -> None:
        async with self.sessions() as session, session.begin():
            claimed = await job_store.claim(
                session, job_id=job_id, runner=self.runner, now=datetime.now(UTC)
            )
            job = await job_store.get_job(session, job_id=job_id) if claimed else None
        if job is None:
            return  # cancelled before it started, or another runner has it
        started = time.monotonic()
        status = JobStatus.INTERRUPTED
        try:
            status = await self._run_body(job)
        finally:
            self.on_end(job.kind, status, time.monotonic() - started)

    async def _run_body(self, job: job_store.Job) -> JobStatus:
        """Run the claimed job to its final status and return it."""
        job_id = job.id
        await self._publish(job_id, JobStatus.RUNNING, 0.0, "starting")
        try:
            if job.kind == JobKind.BACKTEST.value:
                result_id = await self._backtest(job)
            elif job.kind == JobKind.SIMULATION.value:
                result_id = await self._simulation(job)
            else:
                result_id = await self._study(job)
        except Cancelled:
            await self._publish(job_id, JobStatus.CANCELLED, job.progress, "cancelled")
            return JobStatus.CANCELLED
        except asyncio.CancelledError:
            await self._end(job_id, JobStatus.INTERRUPTED, "the service stopped during the job")
            raise
        except Exception as error:
            log.exception("job failed", job_id=str(job_id))
            await self._end(job_id, JobStatus.FAILED, f"{type(error).__name__}: {error}")
            return JobStatus.FAILED
        await self._end(job_id, JobStatus.SUCCEEDED, None, result_id)
        return JobStatus.SUCCEEDED

    async def _end(
        self, job_id: Any, status: JobStatus, error: str | None, result_id: Any = None
    ) -> None:
        async with self.sessions() as session, session.begin():
            ended = await job_store.finish(
                session,
                job_id=job_id,
                status=status,
                now=datetime.now(UTC),
                error=error,
                result_id=result_id,
                only_from=(JobStatus.RUNNING,),
            )
        if ended:
            await self._publish(
                job_id, status, 1.0 if status is JobStatus.SUCCEEDED else 0.0, status.value.lower()
            )

    async def _load(self, job: job_store.Job, symbols: list[str]) -> dict[str, Any]:
        interval = Interval(job.input["interval"])
        candles = {}
        async with self.sessions() as session:
            for symbol in symbols:
                asset = await market_store.get_asset(session, symbol=symbol)
                if asset is None:
                    raise LookupError(f"asset {symbol} is no longer in the universe")
                candles[symbol] = await market_store.load_candles(
                    session,
                    asset=asset,
                    interval=interval,
                    start=job.input.get("start"),
                    end=job.input.get("end"),
                )
        return candles

    async def _backtest(self, job: job_store.Job) -> Any:
        spec = StrategySpec.from_json(job.input["strategy"])
        config = backtest.BacktestConfig.from_json(job.input["config"])
        await self.progress(job.id, 0.05, "loading candles")
        symbols = list(job.input["symbols"])
        candles = await self._load(job, symbols)
        if spec.family == "signal":
            book = await self.heavy(
                job.id, 0.2, "simulating", backtest.run_book, spec, candles, config
            )
            metrics = backtest.summary(book, config.periods_per_year)
            timestamps, equity, positions = book.timestamps, book.equity, book.positions
            trades = [
                {"symbol": symbol, **row}
                for symbol, row in zip(
                    [symbol for symbol, _ in book.trades],
                    backtest.trade_table([trade for _, trade in book.trades], book.timestamps),
                    strict=True,
                )
            ]
        else:
            found = await self.heavy(
                job.id,
                0.2,
                "rebalancing",
                partial(
                    run_allocation,
                    initial_capital=config.initial_capital,
                    fee_bps=config.fee_bps,
                    periods_per_year=config.periods_per_year,
                    supply=job.input.get("supply") or {},
                ),
                spec,
                candles,
            )
            metrics = allocation_summary(found, config.periods_per_year)
            timestamps, equity, positions = found.timestamps, found.equity, found.weights
            trades = []
        metrics["benchmark"] = await self._benchmark(job, timestamps, config.periods_per_year)
        await self.progress(job.id, 0.9, "storing")
        async with self.sessions() as session, session.begin():
            run = await job_store.add_backtest_run(
                session,
                run=job_store.BacktestRun(
                    owner_id=job.owner_id,
                    job_id=job.id,
                    name=str(job.input.get("name") or spec.kind),
                    input=job.input,
                    input_hash=canonical_hash(job.input),
                    metrics=metrics,
                    timestamps=timestamps.astype(np.int64).tobytes(),
                    equity=equity.astype(np.float64).tobytes(),
                    positions=np.ascontiguousarray(positions, dtype=np.float64).tobytes(),
                    trades=trades,
                    code_version=self.version,
                    created_at=datetime.now(UTC),
                ),
            )
        return run.id

    async def _benchmark(
        self, job: job_store.Job, timestamps: Any, periods_per_year: float
    ) -> dict[str, Any] | None:
        """Buy and hold of the benchmark symbol (BTC) over the same bars, when it is stored."""
        symbol = str(job.input.get("benchmark") or "BTC")
        try:
            candles = (await self._load(job, [symbol]))[symbol]
        except LookupError:
            return None
        common = np.intersect1d(candles.timestamps, timestamps)
        if common.size < 2:
            return None
        close = candles.close[np.searchsorted(candles.timestamps, common)]
        return {
            "symbol": symbol,
            **performance_summary(close[1:] / close[:-1] - 1, periods_per_year),
        }

    async def _study(self, job: job_store.Job) -> Any:
        config = backtest.BacktestConfig.from_json(job.input["config"])
        symbol = str(job.input["symbols"][0])
        await self.progress(job.id, 0.05, "loading candles")
        candles = (await self._load(job, [symbol]))[symbol]
        kind, grid, metric = job.input["kind"], job.input["grid"], job.input["metric"]
        if job.kind == JobKind.SWEEP.value:
            swept = await self.heavy(
                job.id, 0.1, "sweeping", research.sweep, kind, grid, candles, config, metric
            )
            result: dict[str, Any] = {
                "metric": metric,
                "rows": [{"params": row.params, "metrics": row.metrics} for row in swept.rows],
                "best": {"params": swept.best.params, "metrics": swept.best.metrics}
                if swept.best
                else None,
            }
        else:
            walked = await self.heavy(
                job.id,
                0.1,
                "walking forward",
                partial(
                    research.walk_forward,
                    train=int(job.input["train_bars"]),
                    test=int(job.input["test_bars"]),
                    mode=research.SplitMode(job.input["mode"]),
                    metric=metric,
                ),
                kind,
                grid,
                candles,
                config,
            )
            stamps = candles.timestamps
            result = {
                "metric": metric,
                "decay": walked.decay,
                "splits": [
                    {
                        "train": [int(stamps[s.split.train[0]]), int(stamps[s.split.train[1] - 1])],
                        "test": [int(stamps[s.split.test[0]]), int(stamps[s.split.test[1] - 1])],
                        "params": s.params,
                        "in_sample": s.in_sample,
                        "out_of_sample": s.out_of_sample,
                    }
                    for s in walked.splits
                ],
            }
        await self.progress(job.id, 0.9, "storing")
        async with self.sessions() as session, session.begin():
            run = await job_store.add_study_run(
                session,
                run=job_store.StudyRun(
                    owner_id=job.owner_id,
                    job_id=job.id,
                    kind=job.kind,
                    input=job.input,
                    result=result,
                    created_at=datetime.now(UTC),
                ),
            )
        return run.id

    async def _simulation(self, job: job_store.Job) -> Any:
        returns = np.asarray(job.input["returns"], dtype=np.float64)
        config = simulation.SimulationConfig.from_json(job.input["config"])
        await self.progress(job.id, 0.05, "sampling paths")
        found = await self.heavy(job.id, 0.1, "simulating", simulation.simulate, returns, config)
        await self.progress(job.id, 0.9, "storing")
        start, step = int(job.input["last_timestamp"]), int(job.input["step_ms"])
        stamps = start + np.arange(config.horizon + 1, dtype=np.int64) * step
        statistics = {
            "max_drawdown_percentiles": {
                str(k): v for k, v in found.max_drawdown_percentiles.items()
            },
            "time_under_water_percentiles": {
                str(k): v for k, v in found.time_under_water_percentiles.items()
            },
            "expected_shortfall_99": found.expected_shortfall_99,
            "ruin_probability": found.ruin_probability,
            "liquidation_probability": found.liquidation_probability,
            "final_return_percentiles": {
                str(k): v for k, v in found.final_return_percentiles.items()
            },
        }
        async with self.sessions() as session, session.begin():
            run = await job_store.add_simulation_run(
                session,
                run=job_store.SimulationRun(
                    owner_id=job.owner_id,
                    job_id=job.id,
                    input={key: value for key, value in job.input.items() if key != "returns"},
                    statistics={k: _plain(v) for k, v in statistics.items()},
                    bands=found.bands.astype(np.float64).tobytes(),
                    band_timestamps=stamps.tobytes(),
                    created_at=datetime.now(UTC),
                ),
            )
        return run.id


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return float(value) if isinstance(value, np.floating | float) else value


class JobQueue:
    """The job backend of one process; `kind` is `in-process` or `redis`."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        max_workers: int | None = None,
        stale_seconds: float = 30.0,
        sweep_seconds: float = 10.0,
        on_end: Callable[[str, JobStatus, float], None] = lambda kind, status, seconds: None,
    ) -> None:
        self.redis_url = redis_url
        self.on_end = on_end
        self.kind = "redis" if redis_url else "in-process"
        self.max_workers = max_workers or max(1, (os.cpu_count() or 2) - 1)
        self.stale_seconds = stale_seconds
        self.sweep_seconds = sweep_seconds
        self.runner_id = f"{self.kind}:{socket.gethostname()}:{os.getpid()}"
        self._pool: ProcessPoolExecutor | None = None
        self.arq: ArqRedis | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.runner: JobRunner | None = None

    async def start(
        self, *, sessions: async_sessionmaker[AsyncSession] | None = None, hub: Hub | None = None
    ) -> None:
        if self.redis_url:
            self.arq = await create_pool(RedisSettings.from_dsn(self.redis_url))
        if sessions is None or hub is None:
            return
        self.runner = JobRunner(
            sessions=sessions,
            hub=hub,
            compute=self.run_in_pool,
            runner=self.runner_id,
            on_end=self.on_end,
        )
        if self.kind == "in-process":
            await self._interrupt_leftovers(sessions)
        self._sweeper = asyncio.create_task(self._sweep(sessions), name="coinql-job-sweeper")

    async def _interrupt_leftovers(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Jobs of an earlier in-process run of the service cannot still be running."""
        now = datetime.now(UTC)
        async with sessions() as session, session.begin():
            for job in await job_store.unfinished_of_runner(session, runner_prefix="in-process:"):
                await job_store.finish(
                    session,
                    job_id=job.id,
                    status=JobStatus.INTERRUPTED,
                    now=now,
                    error="the service restarted while the job ran",
                )
            for job in await job_store.queued(session):
                await job_store.finish(
                    session,
                    job_id=job.id,
                    status=JobStatus.INTERRUPTED,
                    now=now,
                    error="the service restarted before the job started",
                )

    async def _sweep(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                await self.fail_stale(sessions)
                if self.arq is not None:
                    await self.requeue_stranded(sessions)
            except Exception:  # the sweeper must outlive a database or Redis hiccup
                log.exception("job sweep failed")

    async def requeue_stranded(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        """Hand arq again the jobs still QUEUED in the store after `stale_seconds`: those whose
        enqueue failed (Redis was down) or whose queue entry Redis lost (a restart without
        persistence). arq keeps one job per id, so a job still waiting in its queue is not
        added twice, and a worker runs a job only after claiming it in the store."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.stale_seconds)
        async with sessions() as session:
            stranded = await job_store.queued(session, older_than=cutoff)
        requeued = 0
        for job in stranded:
            requeued += await self.enqueue(job.id)
        if requeued:
            log.info("stranded jobs handed to the workers again", jobs=requeued)
        return requeued

    async def fail_stale(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        now = datetime.now(UTC)
        cutoff = now - timedelta(seconds=self.stale_seconds)
        failed = 0
        async with sessions() as session, session.begin():
            for job in await job_store.stale_running(session, older_than=cutoff):
                failed += await job_store.finish(
                    session,
                    job_id=job.id,
                    status=JobStatus.FAILED,
                    now=now,
                    error=f"the worker stopped: no heartbeat for {self.stale_seconds:g} s"
                    f" (runner {job.runner})",
                    only_from=(JobStatus.RUNNING,),
                )
        return failed

    async def enqueue(self, job_id: Any) -> bool:
        """Start the job here, or hand it to arq; False if arq already has it, or if Redis is
        away: the job stays QUEUED in the store and the sweeper hands it over later."""
        if self.arq is not None:
            try:
                added = await self.arq.enqueue_job(ARQ_FUNCTION, str(job_id), _job_id=str(job_id))
            except (OSError, RedisError) as error:
                log.warning("job kept in the store: Redis is unavailable", error=str(error))
                return False
            return added is not None
        assert self.runner is not None, "the job queue was started without a store"
        task = asyncio.create_task(self.runner.run(job_id), name=f"coinql-job-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def run_in_pool(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, function, *args)
        except BrokenProcessPool:
            # A worker process died (killed, out of memory): this job fails, the next one
            # gets a fresh pool.
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self.arq is not None:
            await self.arq.aclose()
            self.arq = None

    @property
    def pool(self) -> ProcessPoolExecutor:
        """Created on first use; spawned, not forked (a fork of a process with a running event
        loop and open connections is unsafe)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.max_workers, mp_context=get_context("spawn")
            )
        return self._pool
