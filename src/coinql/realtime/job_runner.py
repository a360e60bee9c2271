"""The runner around each job body: claims, progress, heartbeats, cancellation, the end.

A job's body (`coinql.realtime.runs`) runs inside `JobRunner.run_claimed`: its progress is
recorded in the jobs table and published on `jobs.<id>`; while its heavy step runs the runner
heartbeats every HEARTBEAT_SECONDS and checks the store every `CANCEL_CHECK_SECONDS`, and once
the job is no longer RUNNING (cancelled, from any replica) the step is stopped at its next
chunk (`coinql.realtime.compute`). A chunk heartbeats for its parent too, and reports the
parent's progress (the chunks' mean). The same runner serves this process's slots and every
`coinql worker` (`coinql.realtime.jobs` for the queue, the pool and the sweeper).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog
from arq.connections import ArqRedis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql import __version__
from coinql.realtime import channels
from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.compute import Compute, Stopped
from coinql.realtime.hub import Hub
from coinql.realtime.runs import CHUNKS_END, CHUNKS_START, Cancelled, run_body
from coinql.realtime.tasks import cancel
from coinql.store import chunks as chunk_store
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
            found = await chunk_store.chunk_progress(
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
                await chunk_store.requeue_chunk(
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
