"""Where heavy jobs run: the queue, the runner around each job body, heartbeats, the sweeper.

- Embedded default (`in-process`): `JobQueue.enqueue` wakes this process's dispatcher, which
  starts jobs as tasks while it has free slots (`COINQL_JOB_SLOTS`); their CPU-heavy step runs
  in a process pool (spawned workers), so the event loop stays free.
- With Redis: `enqueue` puts a wake-up on arq; a `coinql worker` that takes one claims a job
  and runs the same body, its heavy step in a thread of the worker. The bodies themselves
  (backtest, study, simulation) are in `coinql.realtime.runs`.

Either way the store chooses which job starts (`coinql.store.jobs.claim_next`): fairly across
users, and never more than `COINQL_MAX_RUNNING_JOBS_PER_USER` at once for one user; the others
wait QUEUED. The body records progress in the jobs table and publishes it on `jobs.<id>`.
While its heavy step runs it checks the store every `CANCEL_CHECK_SECONDS`: once the job is no
longer RUNNING (cancelled, from any replica) the step is stopped at its next chunk
(`coinql.realtime.compute`) and the slot is free for the next job.

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
import subprocess
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import structlog
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql import __version__
from coinql.realtime import channels
from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.compute import Compute, ProcessPool, Stopped
from coinql.realtime.hub import Hub
from coinql.realtime.runs import CHUNKS_END, CHUNKS_START, Cancelled, run_body
from coinql.realtime.tasks import cancel
from coinql.store import jobs as job_store
from coinql.store.jobs import JobStatus

log = structlog.get_logger("coinql.jobs")
T = TypeVar("T")
HEARTBEAT_SECONDS = 2.0
CANCEL_CHECK_SECONDS = 0.25  # with a chunk of work, the stop of a cancelled job stays under 1 s
ARQ_FUNCTION = "run_job"


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


async def wake_workers(arq: ArqRedis, job_id: Any, *, fresh: bool = False) -> bool:
    """Put a wake-up named after a queued job on arq (with `fresh`, one of a new name: that
    of a chunk whose worker died may still be held by it); False if arq already has that
    wake-up, or if Redis is away (the job stays QUEUED in the store, and the sweeper hands it
    over)."""
    try:
        added = await arq.enqueue_job(
            ARQ_FUNCTION, str(job_id), _job_id=None if fresh else str(job_id)
        )
    except (OSError, RedisError) as error:
        log.warning("job kept in the store: Redis is unavailable", error=str(error))
        return False
    return added is not None


class JobRunner:
    """Runs one job body: claims it, reports progress, stores the result, records the end.
    `wake` hands a queued job (a chunk) to the runners; with `hand_over`, a chunk this
    runner stops running (its process shuts down) is queued for another runner, without,
    it is INTERRUPTED with its parent (in process: no other runner is left)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        hub: Hub,
        compute: Compute,
        runner: str,
        max_running_per_user: int,
        wake: Callable[[Any], Awaitable[bool]],
        hand_over: bool = True,
        on_end: Callable[[str, JobStatus, float], None] = lambda kind, status, seconds: None,
        clock: Clock = utc_now,
    ) -> None:
        self.wake = wake
        self.hand_over = hand_over
        self.now = clock  # the times a job's rows record
        self.sessions = sessions
        self.hub = hub
        self.compute = compute
        self.runner = runner
        self.max_running_per_user = max_running_per_user
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

    async def progress(
        self, job_id: Any, value: float | None, stage: str, *, parent: Any = None
    ) -> None:
        """Record (and heartbeat) a running job's progress; with `parent`, `job_id` is one of
        its chunks and the parent's progress (the chunks' mean) is recorded and published too
        (`value` None: the chunk has ended). Cancelled if the job no longer runs."""
        if parent is not None:
            await self._chunk_progress(job_id, value, stage, parent)
            return
        assert value is not None
        async with self.sessions() as session, session.begin():
            running = await job_store.set_progress(
                session, job_id=job_id, progress=value, stage=stage, now=self.now()
            )
        if not running:
            raise Cancelled
        await self._publish(job_id, JobStatus.RUNNING, value, stage)

    async def _chunk_progress(
        self, chunk_id: Any, value: float | None, stage: str, parent: Any
    ) -> None:
        async with self.sessions() as session, session.begin():
            found = await job_store.chunk_progress(
                session,
                chunk_id=chunk_id,
                parent_id=parent,
                progress=value,
                stage=stage,
                now=self.now(),
                start=CHUNKS_START,
                end=CHUNKS_END,
            )
            parent_stage = (await job_store.get_job(session, job_id=parent)) if found else None
        if found is None or parent_stage is None:
            raise Cancelled
        await self._publish(parent, JobStatus.RUNNING, found, parent_stage.stage)

    async def _watch(
        self, job_id: Any, value: float, stage: str, stop: asyncio.Event, parent: Any
    ) -> None:
        """While the heavy step runs: heartbeat, so that a dead runner is noticed, and check
        that the job is still RUNNING; once it is not (cancelled), `stop` the step."""
        beat_at = time.monotonic() + HEARTBEAT_SECONDS
        while True:
            await asyncio.sleep(CANCEL_CHECK_SECONDS)
            try:
                if time.monotonic() >= beat_at:
                    beat_at += HEARTBEAT_SECONDS
                    await self.progress(job_id, value, stage, parent=parent)
                else:
                    async with self.sessions() as session:
                        status = await job_store.get_status(session, job_id=job_id)
                    if status is not JobStatus.RUNNING:
                        raise Cancelled
            except Cancelled:
                stop.set()
                return
            except Exception as error:  # a database hiccup: the next check may pass
                log.warning("job check failed", job_id=str(job_id), error=str(error))

    async def heavy(
        self,
        job_id: Any,
        value: float,
        stage: str,
        function: Callable[..., T],
        *args: Any,
        parent: Any = None,
    ) -> T:
        """Run the CPU-heavy step while watching the job (a chunk of `parent`'s, with one);
        Cancelled once it is stopped."""
        await self.progress(job_id, value, stage, parent=parent)
        stop = asyncio.Event()
        watch = asyncio.create_task(self._watch(job_id, value, stage, stop, parent))
        try:
            result: T = await self.compute(function, *args, stop=stop)
        except Stopped:
            raise Cancelled from None
        finally:
            await cancel(watch)
        return result

    async def claim_next(self) -> job_store.Job | None:
        """The fairest job that may start now, claimed for this runner (see the store)."""
        async with self.sessions() as session, session.begin():
            return await job_store.claim_next(
                session,
                runner=self.runner,
                clock=self.now,
                max_running_per_owner=self.max_running_per_user,
            )

    async def run_next(self) -> bool:
        """Claim the fairest job that may start now and run it; False if none may."""
        job = await self.claim_next()
        if job is None:
            return False
        await self.run_claimed(job)
        return True

    async def run_claimed(self, job: job_store.Job) -> None:
        started = time.monotonic()
        status: JobStatus | None = JobStatus.INTERRUPTED
        try:
            status = await self._run_body(job)
        finally:
            if status is not None:
                self.on_end(job.kind, status, time.monotonic() - started)

    async def _run_body(self, job: job_store.Job) -> JobStatus | None:
        """Run the claimed job to its final status and return it; None when it goes on as
        chunks (a job once they are queued, a chunk whose parent is not merged yet)."""
        job_id = job.id
        if job.parent_id is None:
            await self._publish(job_id, JobStatus.RUNNING, 0.0, "starting")
        try:
            result_id = await run_body(self, job)
        except Cancelled:
            await self._publish(job_id, JobStatus.CANCELLED, job.progress, "cancelled")
            return JobStatus.CANCELLED
        except asyncio.CancelledError:
            if job.parent_id is not None and self.hand_over:  # another runner runs it
                await self._hand_over(job)
                raise
            stopped = "the service stopped during the job"
            await self._end(job.parent_id or job_id, JobStatus.INTERRUPTED, stopped)
            raise
        except Exception as error:
            log.exception("job failed", job_id=str(job_id))
            await self._end(job_id, JobStatus.FAILED, f"{type(error).__name__}: {error}")
            if job.parent_id is not None:
                index = job.input.get("index", 0) + 1
                await self._end(
                    job.parent_id,
                    JobStatus.FAILED,
                    f"chunk {index} of {job.input.get('count')}: {type(error).__name__}: {error}",
                )
            return JobStatus.FAILED
        if result_id is None:
            return None
        await self._end(job_id, JobStatus.SUCCEEDED, None, result_id)
        return JobStatus.SUCCEEDED

    async def _hand_over(self, chunk: job_store.Job) -> None:
        """Queue a chunk this runner stops running for the next runner (it was not counted as
        a run of its own: the runner, not the chunk, stopped)."""
        with contextlib.suppress(Exception):  # else the sweeper hands it over
            async with self.sessions() as session, session.begin():
                await job_store.requeue_chunk(
                    session, chunk=chunk, now=self.now(), count_attempt=False
                )
            await self.wake(chunk.id)

    async def end(
        self, job_id: Any, status: JobStatus, error: str | None, result_id: Any = None
    ) -> None:
        """Record the job's final status (if it still runs) and publish it."""
        await self._end(job_id, status, error, result_id)

    async def _end(
        self, job_id: Any, status: JobStatus, error: str | None, result_id: Any = None
    ) -> None:
        async with self.sessions() as session, session.begin():
            ended = await job_store.finish(
                session,
                job_id=job_id,
                status=status,
                now=self.now(),
                error=error,
                result_id=result_id,
                only_from=(JobStatus.RUNNING,),
            )
        if ended:
            await self._publish(
                job_id, status, 1.0 if status is JobStatus.SUCCEEDED else 0.0, status.value.lower()
            )


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
                if await job_store.requeue_chunk(session, chunk=job, now=now):
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
            elif await job_store.has_unfinished_chunks(session, parent_id=job.id):
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
