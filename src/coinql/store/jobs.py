"""Jobs: queued, claimed fairly across owners, heartbeating, finished. Nothing here commits.
The runs they produce are in `coinql.store.runs`.

A sweep, walk-forward or simulation job is run as chunks (`coinql.store.chunks`): rows of kind
CHUNK whose `parent_id` is the job. The parent counts against its owner's quota and running
limit as any job; its chunks do not (the parent holds its owner's running slot), so any runner
may claim them, fairly across owners by the chunks and backtests each owner runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, delete, false, func, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store.auth import User
from coinql.store.db import UTCDateTime, insert, parent_key


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    INTERRUPTED = "INTERRUPTED"

    @property
    def final(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
# An arbitrary constant: the PostgreSQL advisory lock id that claims of jobs take turns on.
CLAIM_LOCK_KEY = 0x6A6F62636C61696D  # "jobclaim"


class JobKind(StrEnum):
    BACKTEST = "BACKTEST"
    SWEEP = "SWEEP"
    WALK_FORWARD = "WALK_FORWARD"
    SIMULATION = "SIMULATION"
    CHUNK = "CHUNK"


COMPUTE_KINDS = (JobKind.BACKTEST.value, JobKind.CHUNK.value)  # what occupies a runner
MAX_CHUNK_ATTEMPTS = 3  # a chunk whose runner died is run again, up to this many times
MERGING = "merging"  # the stage of a parent whose chunks' results are being merged


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = parent_key("users.id")
    kind: str = Field(max_length=20)
    status: str = Field(max_length=12, index=True)
    progress: float = Field(default=0.0)
    stage: str = Field(default="queued", max_length=100)
    error: str | None = Field(default=None, max_length=2000)
    input: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    result_id: uuid.UUID | None = Field(default=None)
    runner: str | None = Field(default=None, max_length=80)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    heartbeat_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    parent_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True),
    )
    output: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    attempts: int = Field(default=0)


async def add_job(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    kind: JobKind,
    job_input: dict[str, Any],
    now: datetime,
) -> Job:
    job = Job(
        owner_id=owner_id,
        kind=kind.value,
        status=JobStatus.QUEUED.value,
        input=job_input,
        created_at=now,
    )
    return await insert(session, job)


async def get_job(
    session: AsyncSession, *, job_id: uuid.UUID, owner_id: uuid.UUID | None = None
) -> Job | None:
    statement = select(Job).where(Job.id == job_id)
    if owner_id is not None:
        statement = statement.where(Job.owner_id == owner_id)
    return (await session.exec(statement)).first()


async def list_jobs(
    session: AsyncSession, *, owner_id: uuid.UUID, status: JobStatus | None, limit: int
) -> list[Job]:
    statement = select(Job).where(Job.owner_id == owner_id, Job.kind != JobKind.CHUNK.value)
    if status is not None:
        statement = statement.where(Job.status == status.value)
    statement = statement.order_by(col(Job.created_at).desc()).limit(limit)
    return list((await session.exec(statement)).all())


@dataclass(frozen=True, slots=True)
class JobCounts:
    """One owner's unfinished jobs."""

    queued: int
    running: int

    @property
    def active(self) -> int:
        return self.queued + self.running


async def lock_owner(session: AsyncSession, *, owner_id: uuid.UUID) -> None:
    """Hold, until this transaction ends, the right to add jobs for this owner, so that the
    count against the quota stays true until the new job is written (PostgreSQL: the owner's
    row is locked; SQLite: the database's write lock)."""
    if _dialect(session) == "postgresql":
        await session.exec(select(User.id).where(User.id == owner_id).with_for_update())
    else:
        await _sqlite_write_lock(session)


async def _lock_claims(session: AsyncSession) -> None:
    """Claims take turns, one transaction at a time across every runner (PostgreSQL: an
    advisory lock; SQLite: the write lock): the fair choice and the running counts it reads
    stay true until the claim is written. A claim is a few milliseconds once per job."""
    if _dialect(session) == "postgresql":
        await session.exec(select(func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))
    else:
        await _sqlite_write_lock(session)


async def _sqlite_write_lock(session: AsyncSession) -> None:
    """SQLite has one writer at a time, and a deferred transaction (pysqlite's) takes the write
    lock only at its first write, after what it read may have changed: a write that matches no
    row takes it at once."""
    await session.exec(update(Job).where(false()).values(stage=Job.stage))


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def count_active(session: AsyncSession, *, owner_id: uuid.UUID) -> JobCounts:
    """The owner's QUEUED and RUNNING jobs (exact once `lock_owner` is held)."""
    rows = await session.exec(
        select(Job.status, func.count())
        .where(
            Job.owner_id == owner_id,
            col(Job.status).in_(ACTIVE),
            Job.kind != JobKind.CHUNK.value,
        )
        .group_by(col(Job.status))
    )
    found = dict(rows.all())
    return JobCounts(
        queued=int(found.get(JobStatus.QUEUED.value, 0)),
        running=int(found.get(JobStatus.RUNNING.value, 0)),
    )


def _running_of_owner(*, compute: bool = False) -> Any:
    """How many jobs the owner of the outer query's job runs (a correlated subquery): its
    jobs (not their chunks), or with `compute`, what occupies runners (chunks, backtests)."""
    running = aliased(Job)
    kinds = col(running.kind).in_(COMPUTE_KINDS) if compute else running.kind != JobKind.CHUNK.value
    return (
        select(func.count())
        .select_from(running)
        .where(running.owner_id == Job.owner_id, running.status == JobStatus.RUNNING.value, kinds)
        .correlate(Job)
        .scalar_subquery()
    )


def _may_start(max_running_per_owner: int) -> Any:
    """A QUEUED row may start: a chunk (its parent holds the owner's running slot), or a job
    whose owner runs fewer than the limit."""
    return or_(col(Job.kind) == JobKind.CHUNK.value, _running_of_owner() < max_running_per_owner)


async def claim_next(
    session: AsyncSession,
    *,
    runner: str,
    clock: Callable[[], datetime],
    max_running_per_owner: int,
) -> Job | None:
    """Claim the next job to run, fairly across owners, and mark it RUNNING for `runner`; None
    when nothing may start (no QUEUED job, or every owner with one runs their limit already).

    Fair: the owner with the fewest chunks and backtests running goes first, then the one
    served least recently (one who never started a job, first), then that owner's oldest job. So one
    owner's many jobs take turns with everyone else's instead of filling the slots in
    submission order. Claims take turns (`_lock_claims`), so two runners claiming at once
    cannot both start a job past an owner's running limit. The start time is read from
    `clock` once the claim's turn has come, so it is never before the end of a job whose
    finish the claim waited for.
    """
    await _lock_claims(session)
    now = clock()
    running_count = _running_of_owner(compute=True)
    started = aliased(Job)
    last_started = (
        select(func.max(started.started_at))
        .where(started.owner_id == Job.owner_id)
        .correlate(Job)
        .scalar_subquery()
    )
    fairest = (
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED.value, _may_start(max_running_per_owner))
        .order_by(running_count, last_started.asc().nulls_first(), col(Job.created_at), col(Job.id))
        .limit(1)
    )
    while (job_id := (await session.exec(fairest)).first()) is not None:
        claimed = await session.exec(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.QUEUED.value)
            .values(
                status=JobStatus.RUNNING.value,
                runner=runner,
                started_at=now,
                heartbeat_at=now,
                stage="starting",
            )
        )
        if claimed.rowcount:  # else it was cancelled since the choice: choose again
            return await get_job(session, job_id=job_id)
    return None


async def get_status(session: AsyncSession, *, job_id: uuid.UUID) -> JobStatus | None:
    status = (await session.exec(select(Job.status).where(Job.id == job_id))).first()
    return None if status is None else JobStatus(status)


async def set_progress(
    session: AsyncSession, *, job_id: uuid.UUID, progress: float, stage: str, now: datetime
) -> bool:
    """Record progress of a RUNNING job; False if it is no longer running (cancelled)."""
    result = await session.exec(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING.value)
        .values(progress=progress, stage=stage, heartbeat_at=now)
    )
    return bool(result.rowcount)


async def finish(
    session: AsyncSession,
    *,
    job_id: uuid.UUID,
    status: JobStatus,
    now: datetime,
    error: str | None = None,
    result_id: uuid.UUID | None = None,
    only_from: Sequence[JobStatus] = (JobStatus.QUEUED, JobStatus.RUNNING),
) -> bool:
    values: dict[str, Any] = {
        "status": status.value,
        "finished_at": now,
        "error": error[:2000] if error else None,
        "stage": status.value.lower(),
    }
    if status is JobStatus.SUCCEEDED:
        values.update(progress=1.0, result_id=result_id)
    result = await session.exec(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status).in_([s.value for s in only_from]))
        .values(**values)
    )
    if not result.rowcount:
        return False
    if status is JobStatus.SUCCEEDED:  # merged: the chunks' results are the run's now
        await session.exec(delete(Job).where(col(Job.parent_id) == job_id))
    else:  # the chunks end with their parent (a running one stops at its next check)
        await session.exec(
            update(Job)
            .where(col(Job.parent_id) == job_id, col(Job.status).in_(ACTIVE))
            .values(status=status.value, finished_at=now, stage=status.value.lower())
        )
    return True


async def stale_running(session: AsyncSession, *, older_than: datetime) -> list[Job]:
    statement = select(Job).where(
        Job.status == JobStatus.RUNNING.value, col(Job.heartbeat_at) < older_than
    )
    return list((await session.exec(statement)).all())


async def unfinished_of_runner(session: AsyncSession, *, runner_prefix: str) -> list[Job]:
    statement = select(Job).where(
        col(Job.status).in_([JobStatus.RUNNING.value]), col(Job.runner).startswith(runner_prefix)
    )
    return list((await session.exec(statement)).all())


async def queued(
    session: AsyncSession,
    *,
    older_than: datetime | None = None,
    max_running_per_owner: int | None = None,
) -> list[Job]:
    """QUEUED jobs and chunks, oldest first; with `older_than`, only those created before it;
    with `max_running_per_owner`, only those that may start now (chunks, and jobs whose owner
    runs fewer)."""
    statement = select(Job).where(Job.status == JobStatus.QUEUED.value)
    if older_than is not None:
        statement = statement.where(col(Job.created_at) < older_than)
    if max_running_per_owner is not None:
        statement = statement.where(_may_start(max_running_per_owner))
    return list((await session.exec(statement.order_by(col(Job.created_at)))).all())
