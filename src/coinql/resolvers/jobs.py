"""Jobs: submitted within the owner's quota, followed, listed and cancelled. Every read is
scoped to the caller."""

from __future__ import annotations

import uuid

from coinql.domain.errors import InvalidInput, QuotaExceeded
from coinql.domain.runs import BacktestJob, SimulationJob, StudyJob
from coinql.resolvers.auth import require_user
from coinql.resolvers.context import Context
from coinql.resolvers.owned import owned
from coinql.store import jobs as job_store
from coinql.store.jobs import Job, JobKind, JobStatus


async def submit(
    context: Context, owner: uuid.UUID, kind: JobKind, job: BacktestJob | StudyJob | SimulationJob
) -> Job:
    """Store a QUEUED job within the owner's quota and hand it to the queue (the process pool
    or arq workers). The count and the insert hold the owner's lock together, so concurrent
    submissions (a batch, aliases, parallel requests, several replicas) cannot pass it."""
    settings = context.services.settings
    async with context.services.transaction() as session:
        await job_store.lock_owner(session, owner_id=owner)
        counts = await job_store.count_active(session, owner_id=owner)
        if counts.active >= settings.max_jobs_per_user:
            raise QuotaExceeded(
                f"you have {counts.active} jobs queued or running, the most a user may have"
                f" (COINQL_MAX_JOBS_PER_USER={settings.max_jobs_per_user}); wait for one to"
                " end or cancel one",
                max_jobs=settings.max_jobs_per_user,
                max_running=settings.max_running_jobs_per_user,
                queued=counts.queued,
                running=counts.running,
            )
        added = await job_store.add_job(
            session, owner_id=owner, kind=kind, job_input=job.to_json(), now=context.services.now()
        )
    context.services.metrics.jobs.labels(kind.value, JobStatus.QUEUED.value).inc()
    await context.services.jobs.enqueue(added.id)
    return added


async def get_job(context: Context, *, job_id: uuid.UUID) -> Job | None:
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await job_store.get_job(session, job_id=job_id, owner_id=owner)


async def list_jobs(context: Context, *, status: JobStatus | None, first: int) -> list[Job]:
    if not 0 < first <= 500:
        raise InvalidInput("first", "first must be between 1 and 500")
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await job_store.list_jobs(session, owner_id=owner, status=status, limit=first)


async def cancel_job(context: Context, *, job_id: uuid.UUID) -> Job:
    """Cancel a queued or running job; a finished one is returned as it is."""
    owner = (await require_user(context)).id
    async with context.services.transaction() as session:
        owned(await job_store.get_job(session, job_id=job_id, owner_id=owner), f"no job {job_id}")
        await job_store.finish(
            session, job_id=job_id, status=JobStatus.CANCELLED, now=context.services.now()
        )
    async with context.services.reader() as session:
        found = await job_store.get_job(session, job_id=job_id, owner_id=owner)
    assert found is not None
    return found
