"""A chunked job's chunks: added with the parent's plan, their progress aggregated, finished
with their output, handed on when their runner died, merged once all are done. Nothing here
commits.

A chunk keeps its result in `output` (encoded here: arrays as base64 of float64) until the
parent's result is merged from them all; then the chunks go. Cancelling or failing the parent
ends its chunks with it (`coinql.store.jobs.finish`)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, case, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.metrics import Metrics
from coinql.domain.research import Split, SweepResult, SweepRow, WalkForwardResult, WalkForwardSplit
from coinql.domain.simulation import PathStats
from coinql.domain.typing import FloatArray
from coinql.store.jobs import ACTIVE, MERGING, Job, JobKind, JobStatus, set_progress


def _running_unmerged(parent_id: uuid.UUID) -> tuple[ColumnElement[bool], ...]:
    """The parent while it RUNs and its merge is not taken: the only state in which its
    chunks report progress or one of them takes the merge."""
    return (
        col(Job.id) == parent_id,
        col(Job.status) == JobStatus.RUNNING.value,
        col(Job.stage) != MERGING,
    )


async def add_chunks(
    session: AsyncSession,
    *,
    parent: Job,
    chunk_inputs: Sequence[dict[str, Any]],
    now: datetime,
) -> list[Job]:
    """Queue the chunks of a RUNNING parent, one per input, for any runner to claim."""
    chunks = [
        Job(
            owner_id=parent.owner_id,
            kind=JobKind.CHUNK.value,
            status=JobStatus.QUEUED.value,
            input=chunk_input,
            parent_id=parent.id,
            created_at=now,
        )
        for chunk_input in chunk_inputs
    ]
    session.add_all(chunks)
    await session.flush()
    return chunks


async def chunks_of(session: AsyncSession, *, parent_id: uuid.UUID) -> list[Job]:
    """The parent's chunks, in their order."""
    statement = select(Job).where(col(Job.parent_id) == parent_id).order_by(col(Job.created_at))
    found = list((await session.exec(statement)).all())
    return sorted(found, key=lambda chunk: int(chunk.input["index"]))


async def chunk_progress(
    session: AsyncSession,
    *,
    chunk_id: uuid.UUID,
    parent_id: uuid.UUID,
    progress: float | None,
    stage: str,
    now: datetime,
    start: float,
    end: float,
) -> float | None:
    """Record a RUNNING chunk's progress (None: `chunk_id` is not recorded, it has ended),
    and its parent's: `start` plus the chunks' mean progress (a finished chunk's is 1) scaled
    to `end`, never lower than the parent's already (a chunk run again starts from 0). The
    parent heartbeats with its chunks. None if the chunk or the parent no longer runs
    (cancelled), or the parent is merging."""
    if progress is not None and not await set_progress(
        session, job_id=chunk_id, progress=progress, stage=stage, now=now
    ):
        return None
    rows = await session.exec(
        select(Job.status, Job.progress).where(col(Job.parent_id) == parent_id)
    )
    shares = [1.0 if status == JobStatus.SUCCEEDED.value else done for status, done in rows.all()]
    finished = sum(share == 1.0 for share in shares)
    value = start + (end - start) * min(1.0, sum(shares) / max(1, len(shares)))
    result = await session.exec(
        update(Job)
        .where(*_running_unmerged(parent_id))
        .values(
            heartbeat_at=now,
            # raised, never lowered, in one statement: two chunks reporting at once cannot
            # lower it, nor a chunk run again from 0
            progress=case((col(Job.progress) < value, value), else_=col(Job.progress)),
            stage=f"{finished} of {len(shares)} chunks done",
        )
    )
    if not result.rowcount:
        return None
    current = (await session.exec(select(Job.progress).where(Job.id == parent_id))).one()
    return float(current)


async def finish_chunk(
    session: AsyncSession, *, chunk_id: uuid.UUID, output: dict[str, Any], now: datetime
) -> bool:
    """Keep a RUNNING chunk's result and mark it SUCCEEDED; False if it no longer runs."""
    result = await session.exec(
        update(Job)
        .where(col(Job.id) == chunk_id, col(Job.status) == JobStatus.RUNNING.value)
        .values(
            status=JobStatus.SUCCEEDED.value,
            progress=1.0,
            stage="succeeded",
            output=output,
            finished_at=now,
        )
    )
    return bool(result.rowcount)


async def take_merge(session: AsyncSession, *, parent_id: uuid.UUID, now: datetime) -> bool:
    """Claim the merge of a RUNNING parent whose chunks have all SUCCEEDED; one caller wins
    (the parent's stage becomes `MERGING`), the others and any caller before the last chunk
    ended get False. Call it after the chunk's end is committed, so that of two chunks
    ending at once the later one sees both."""
    unfinished = aliased(Job)
    pending = (
        select(unfinished.id)
        .where(
            unfinished.parent_id == Job.id,
            unfinished.status != JobStatus.SUCCEEDED.value,
        )
        .correlate(Job)
        .exists()
    )
    result = await session.exec(
        update(Job)
        .where(*_running_unmerged(parent_id), ~pending)
        .values(stage=MERGING, heartbeat_at=now)
    )
    return bool(result.rowcount)


async def requeue_chunk(
    session: AsyncSession, *, chunk: Job, now: datetime, count_attempt: bool = True
) -> bool:
    """Hand a chunk whose runner stopped to the next runner (QUEUED again, from 0), counting
    the run as one of its attempts unless `count_attempt` is False (the runner shut down in
    order); False if it was not RUNNING any more."""
    result = await session.exec(
        update(Job)
        .where(col(Job.id) == chunk.id, col(Job.status) == JobStatus.RUNNING.value)
        .values(
            status=JobStatus.QUEUED.value,
            runner=None,
            progress=0.0,
            stage="queued again",
            heartbeat_at=None,
            started_at=None,
            attempts=chunk.attempts + int(count_attempt),
        )
    )
    return bool(result.rowcount)


async def has_unfinished_chunks(session: AsyncSession, *, parent_id: uuid.UUID) -> bool:
    statement = select(Job.id).where(col(Job.parent_id) == parent_id, col(Job.status).in_(ACTIVE))
    return (await session.exec(statement.limit(1))).first() is not None


def _array(values: FloatArray) -> str:
    return base64.b64encode(np.ascontiguousarray(values, dtype=np.float64).tobytes()).decode()


def _floats(encoded: str) -> FloatArray:
    return np.frombuffer(base64.b64decode(encoded), dtype=np.float64).copy()


def encode_output(result: SweepResult | WalkForwardResult | PathStats) -> dict[str, Any]:
    """A chunk's result as its `output` (exact: metrics as JSON floats, arrays as bytes)."""
    if isinstance(result, SweepResult):
        return {
            "metric": result.metric,
            "rows": [{"params": r.params, "metrics": r.metrics.to_json()} for r in result.rows],
        }
    if isinstance(result, WalkForwardResult):
        return {
            "metric": result.metric,
            "splits": [
                {
                    "train": list(s.split.train),
                    "test": list(s.split.test),
                    "params": s.params,
                    "in_sample": s.in_sample.to_json(),
                    "out_of_sample": s.out_of_sample.to_json(),
                }
                for s in result.splits
            ],
        }
    return {
        "first": result.first,
        "max_drawdowns": _array(result.max_drawdowns),
        "under_water": _array(result.under_water),
        "finals": _array(result.finals),
        "ruined": result.ruined,
        "liquidated": result.liquidated,
        "bands": None if result.bands is None else _array(result.bands.ravel()),
        "band_steps": None if result.bands is None else int(result.bands.shape[1]),
    }


def sweep_output(chunk: Job) -> SweepResult:
    """The rows a sweep's chunk found (its best row is left to the merge)."""
    assert chunk.output is not None
    rows = [
        SweepRow(row["params"], Metrics.from_json(row["metrics"])) for row in chunk.output["rows"]
    ]
    return SweepResult(chunk.output["metric"], rows, None)


def walk_forward_output(chunk: Job) -> WalkForwardResult:
    """The windows a walk-forward's chunk tested."""
    assert chunk.output is not None
    return WalkForwardResult(
        chunk.output["metric"],
        [
            WalkForwardSplit(
                Split(
                    (int(item["train"][0]), int(item["train"][1])),
                    (int(item["test"][0]), int(item["test"][1])),
                ),
                item["params"],
                Metrics.from_json(item["in_sample"]),
                Metrics.from_json(item["out_of_sample"]),
            )
            for item in chunk.output["splits"]
        ],
    )


def path_stats_output(chunk: Job) -> PathStats:
    """The path statistics a simulation's chunk drew."""
    data = chunk.output
    assert data is not None
    bands = None
    if data["bands"] is not None:
        bands = _floats(data["bands"]).reshape(-1, int(data["band_steps"]))
    return PathStats(
        first=int(data["first"]),
        max_drawdowns=_floats(data["max_drawdowns"]),
        under_water=_floats(data["under_water"]),
        finals=_floats(data["finals"]),
        ruined=int(data["ruined"]),
        liquidated=int(data["liquidated"]),
        bands=bands,
    )
