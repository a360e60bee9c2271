"""Where heavy jobs run: the queue, the pool and the sweeper (the runner around each job body,
with its heartbeats and cancellation checks, is `coinql.realtime.job_runner`).

- Embedded default (`in-process`): `JobQueue.enqueue` wakes this process's dispatcher, which
  starts jobs as tasks while it has free slots (`COINQL_JOB_SLOTS`); their CPU-heavy step runs
  in a process pool (spawned workers), so the event loop stays free.
- With Redis: `enqueue` puts a wake-up on arq; a `coinql worker` that takes one claims a job
  and runs the same body, its heavy step in a thread of the worker. The bodies themselves
  (backtest, study, simulation) are in `coinql.realtime.runs`.

Either way the store chooses which job starts (`coinql.store.jobs.claim_next`): fairly across
users, and never more than `COINQL_MAX_RUNNING_JOBS_PER_USER` at once for one user; the others
wait QUEUED. The body records progress in the jobs table and publishes it on `jobs.<id>`.
A cancelled job's heavy step stops at its next chunk and the slot is free for the next job.

A sweep, walk-forward or simulation runs as chunks (`coinql.domain.chunks`): its body plans
them, queues them as jobs of kind CHUNK and wakes the runners, one wake-up per chunk; any runner
(this process's pool, any `coinql worker`) claims them like jobs, and the runner of the last
chunk to end merges their results into the job's run and ends the job. A chunk heartbeats for
its parent too, and reports the parent's progress (the chunks' mean). The parent holds its
owner's running slot; its chunks are claimed fairly across owners by what each runs.

Failures are visible: an exception marks the job FAILED with its message; a job whose runner
stops heartbeating (a killed worker) is marked FAILED by the sweeper, except a chunk, which is
queued again for another runner (up to `MAX_CHUNK_ATTEMPTS` runs), and a job with chunks still
to run, which lives on with them; jobs this process was running when it stopped are marked
INTERRUPTED at its next start. Jobs are not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import structlog
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.compute import ProcessPool
from coinql.realtime.hub import Hub
from coinql.realtime.job_runner import JobRunner, wake_workers
from coinql.realtime.tasks import cancel
from coinql.store import chunks as chunk_store
from coinql.store import jobs as job_store
from coinql.store.jobs import JobStatus

log = structlog.get_logger("coinql.jobs")
T = TypeVar("T")


async def sweep_stale(
    sessions: async_sessionmaker[AsyncSession],
    *,
    stale_seconds: float,
    now: datetime,
    wake: Callable[[Any], Awaitable[bool]],
) -> int:
    """End the RUNNING jobs whose runner stopped heartbeating `stale_seconds` ago (FAILED);
    hand their chunks to the next runner instead, and leave a job with chunks to run.
    The count of jobs ended and chunks handed over."""
    cutoff = now - timedelta(seconds=stale_seconds)
    failed = 0
    requeued = []
    async with sessions() as session, session.begin():
        for job in await job_store.stale_running(session, older_than=cutoff):
            if job.parent_id is not None and job.attempts + 1 < job_store.MAX_CHUNK_ATTEMPTS:
                if await chunk_store.requeue_chunk(session, chunk=job, now=now):
                    requeued.append(job.id)
                continue
            if job.parent_id is not None:  # run too often: its parent fails with it
                await job_store.finish(
                    session,
                    job_id=job.parent_id,
                    status=JobStatus.FAILED,
                    now=now,
                    error=f"a chunk's worker stopped {job_store.MAX_CHUNK_ATTEMPTS} times",
                    only_from=(JobStatus.RUNNING,),
                )
            elif await chunk_store.has_unfinished_chunks(session, parent_id=job.id):
                continue  # its chunks heartbeat for it once they run
            failed += await job_store.finish(
                session,
                job_id=job.id,
                status=JobStatus.FAILED,
                now=now,
                error=f"the worker stopped: no heartbeat for {stale_seconds:g} s"
                f" (runner {job.runner})",
                only_from=(JobStatus.RUNNING,),
            )
    for chunk_id in requeued:
        log.info("a chunk whose worker stopped is handed over", chunk_id=str(chunk_id))
        await wake(chunk_id)
    return failed + len(requeued)


class JobQueue:
    """The job backend of one process; `kind` is `in-process` or `redis`. In process, `slots`
    jobs run at once (the size of the process pool)."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        slots: int,
        max_running_per_user: int,
        stale_seconds: float = 30.0,
        sweep_seconds: float = 10.0,
        on_end: Callable[[str, JobStatus, float], None] = lambda kind, status, seconds: None,
        clock: Clock = utc_now,
    ) -> None:
        self.now = clock
        self.redis_url = redis_url
        self.on_end = on_end
        self.kind = "redis" if redis_url else "in-process"
        self.slots = slots
        self.max_running_per_user = max_running_per_user
        self.stale_seconds = stale_seconds
        self.sweep_seconds = sweep_seconds
        self.runner_id = f"{self.kind}:{socket.gethostname()}:{os.getpid()}"
        self._processes = ProcessPool(slots)
        self.arq: ArqRedis | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
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
            max_running_per_user=self.max_running_per_user,
            wake=self.enqueue,
            hand_over=self.kind == "redis",
            on_end=self.on_end,
            clock=self.now,
        )
        if self.kind == "in-process":
            await self._interrupt_leftovers(sessions)
            self._dispatcher = asyncio.create_task(self._dispatch(), name="coinql-job-dispatcher")
        self._sweeper = asyncio.create_task(self._sweep(sessions), name="coinql-job-sweeper")

    async def _interrupt_leftovers(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Jobs of an earlier in-process run of the service cannot still be running."""
        now = self.now()
        async with sessions() as session, session.begin():
            leftovers = (
                (
                    partial(job_store.unfinished_of_runner, runner_prefix="in-process:"),
                    "the service restarted while the job ran",
                ),
                (job_store.queued, "the service restarted before the job started"),
            )
            for find, error in leftovers:
                for job in await find(session):
                    await job_store.finish(
                        session, job_id=job.id, status=JobStatus.INTERRUPTED, now=now, error=error
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
        """Wake the workers again for jobs still QUEUED in the store after `stale_seconds` that
        may start (their owner runs fewer than the limit): those whose enqueue failed (Redis
        was down) or whose wake-up Redis lost (a restart without persistence). arq keeps one
        entry per id, so a wake-up still waiting in its queue is not added twice, and a worker
        runs a job only after claiming it in the store."""
        cutoff = self.now() - timedelta(seconds=self.stale_seconds)
        async with sessions() as session:
            stranded = await job_store.queued(
                session, older_than=cutoff, max_running_per_owner=self.max_running_per_user
            )
        requeued = 0
        for job in stranded:
            requeued += await self.enqueue(job.id)
        if requeued:
            log.info("stranded jobs handed to the workers again", jobs=requeued)
        return requeued

    async def fail_stale(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        """See `sweep_stale`; handed-over chunks wake this process or the workers."""
        return await sweep_stale(
            sessions,
            stale_seconds=self.stale_seconds,
            now=self.now(),
            wake=partial(self.enqueue, fresh=True),
        )

    async def enqueue(self, job_id: Any, *, fresh: bool = False) -> bool:
        """A job was queued: wake the dispatcher here, or the workers through arq (a wake-up
        named after the job, or with `fresh` a new one: whichever job is fairest starts).
        False if arq already has that wake-up, or if Redis is away: the job stays QUEUED in
        the store and the sweeper hands it over later."""
        if self.arq is not None:
            return await wake_workers(self.arq, job_id, fresh=fresh)
        assert self.runner is not None, "the job queue was started without a store"
        self._wake.set()
        return True

    async def _dispatch(self) -> None:
        """In process: while a slot is free, start the job the store picks (fair across users,
        within each one's running limit). Woken by each job queued and each job ended, and
        every `sweep_seconds` in case a claim failed."""
        assert self.runner is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sweep_seconds)
            self._wake.clear()
            try:
                while len(self._tasks) < self.slots:
                    job = await self.runner.claim_next()
                    if job is None:
                        break
                    task = asyncio.create_task(
                        self.runner.run_claimed(job), name=f"coinql-job-{job.id}"
                    )
                    self._tasks.add(task)
                    task.add_done_callback(self._ended)
            except Exception:  # the dispatcher must outlive a database hiccup
                log.exception("job dispatch failed")

    @property
    def busy_slots(self) -> int:
        """Jobs this process runs now (in process; a worker's are its own)."""
        return len(self._tasks)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot is free, and perhaps a user's running slot

    async def run_in_pool(
        self, function: Callable[..., T], *args: Any, stop: asyncio.Event | None = None
    ) -> T:
        """`function(*args)` in the process pool, stopped at its next chunk once `stop` is set.
        A process of the pool that dies (killed, out of memory) fails this step only: the next
        one gets a fresh pool."""
        return await self._processes.run(function, *args, stop=stop)

    async def stop(self) -> None:
        for background in (self._dispatcher, self._sweeper):
            await cancel(background)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._processes.shutdown()
        if self.arq is not None:
            await self.arq.aclose()
            self.arq = None

    @property
    def pool(self) -> ProcessPoolExecutor:
        """The process pool's executor, created on first use."""
        return self._processes.executor
