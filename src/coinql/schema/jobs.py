"""Jobs: work queued and running in the background, the run each produced, and the quota."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from strawberry.types import Info

from coinql.domain import errors
from coinql.resolvers import backtest as backtest_resolvers
from coinql.resolvers import jobs as jobs_resolvers
from coinql.resolvers import simulation as simulation_resolvers
from coinql.resolvers.context import Context
from coinql.schema.backtest_runs import BacktestRun
from coinql.schema.enums import JobKind, JobStatus
from coinql.schema.errors import Error
from coinql.schema.nodes import OwnedNode
from coinql.schema.research import SweepRun, WalkForwardRun
from coinql.schema.simulation import SimulationRun
from coinql.store import jobs as job_store


@strawberry.type(
    description="As many jobs queued or running as a user may have: one must end (or be"
    " cancelled) before another is accepted."
)
class QuotaExceeded(Error):
    max_jobs: int = strawberry.field(
        description="Jobs a user may have queued or running (COINQL_MAX_JOBS_PER_USER)."
    )
    active_jobs: int = strawberry.field(description="The caller's jobs queued or running now.")
    queued_jobs: int
    running_jobs: int
    max_running_jobs: int = strawberry.field(
        description="Of those, how many run at once (COINQL_MAX_RUNNING_JOBS_PER_USER); the"
        " others wait QUEUED."
    )

    @classmethod
    def from_exception(cls, error: errors.QuotaExceeded) -> Self:
        return cls(
            message=error.message,
            max_jobs=error.max_jobs,
            active_jobs=error.queued + error.running,
            queued_jobs=error.queued,
            running_jobs=error.running,
            max_running_jobs=error.max_running,
        )


JobResult = Annotated[
    BacktestRun | SimulationRun | SweepRun | WalkForwardRun, strawberry.union("JobResult")
]


@strawberry.type(description="Work running in the background. Progress is also a subscription.")
class Job(OwnedNode):
    kind: JobKind
    status: JobStatus
    progress: float = strawberry.field(description="0..1")
    stage: str
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    model: strawberry.Private[job_store.Job]

    @classmethod
    def from_model(cls, job: job_store.Job) -> Self:
        return cls(
            kind=JobKind(job.kind),
            status=JobStatus(job.status),
            progress=job.progress,
            stage=job.stage,
            error=job.error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            model=job,
        )

    @staticmethod
    async def load_owned(context: Context, job_id: uuid.UUID) -> Any:
        return await jobs_resolvers.get_job(context, job_id=job_id)

    @strawberry.field(description="The run it produced, once SUCCEEDED.")
    async def result(self, info: Info[Context, None]) -> JobResult | None:
        result_id = self.model.result_id
        if result_id is None:
            return None
        kind = job_store.JobKind(self.model.kind)
        if kind is job_store.JobKind.BACKTEST:
            run = await backtest_resolvers.get_backtest_run(info.context, run_id=result_id)
            return BacktestRun.from_model(run)
        if kind is job_store.JobKind.SIMULATION:
            simulated = await simulation_resolvers.get_simulation_run(
                info.context, run_id=result_id
            )
            return SimulationRun.from_model(simulated) if simulated else None
        study = await backtest_resolvers.get_study_run(info.context, run_id=result_id)
        if study is None:
            return None
        if kind is job_store.JobKind.SWEEP:
            return SweepRun.from_model(study)
        return WalkForwardRun.from_model(study)
