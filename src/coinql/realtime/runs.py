"""The bodies of the jobs: a backtest, a study (sweep or walk-forward), a simulation.

Each reads its typed input (`coinql.domain.runs`), loads what it needs, runs the CPU-heavy
step through the runner (`JobRunner.heavy`: in the process pool or a worker's thread, watched
for cancellation), stores its run and returns the run's id. A study or a simulation runs as
chunks (`coinql.domain.chunks`): its body plans and queues them (`plan_chunks`), each chunk's
body runs its part and keeps the result (`run_chunk`), and the last one to end merges them.
Where a job runs, and what happens around it (claims, heartbeats, the final status), is
`coinql.realtime.job_runner`'s.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import structlog

from coinql.domain import book, chunks, research, simulation
from coinql.domain.allocation import allocation_summary, run_allocation
from coinql.domain.candles import Candles, Interval
from coinql.domain.metrics import Benchmark, summarize
from coinql.domain.runs import BacktestJob, ChunkJob, SimulationJob, StudyJob
from coinql.domain.typing import IntArray
from coinql.store import chunks as chunk_store
from coinql.store import jobs as job_store
from coinql.store import market as market_store
from coinql.store import runs as run_store
from coinql.store.db import insert
from coinql.store.jobs import JobKind, JobStatus

if TYPE_CHECKING:
    from coinql.realtime.job_runner import JobRunner

log = structlog.get_logger("coinql.jobs")
BENCHMARK = "BTC"
CHUNKS_START, CHUNKS_END = 0.1, 0.9  # the share of a job's progress its chunks report


class Cancelled(Exception):
    """The job stopped being RUNNING (cancelled) while it worked."""


async def run_body(runner: JobRunner, job: job_store.Job) -> uuid.UUID | None:
    """Run the body of the job's kind; the id of the run it stored, None when the job goes on
    as chunks (a sweep, walk-forward or simulation once planned; a chunk once run)."""
    if job.kind == JobKind.BACKTEST.value:
        return await run_backtest(runner, job)
    if job.kind == JobKind.CHUNK.value:
        await run_chunk(runner, job)
    else:
        await plan_chunks(runner, job)
    return None


async def load_candles(
    runner: JobRunner,
    symbols: list[str],
    *,
    interval: Interval,
    start: int | None,
    end: int | None,
) -> dict[str, Candles]:
    """The symbols' candles; LookupError for a symbol no longer in the universe."""
    candles = {}
    async with runner.sessions() as session:
        for symbol in symbols:
            asset = await market_store.get_asset(session, symbol=symbol)
            if asset is None:
                raise LookupError(f"asset {symbol} is no longer in the universe")
            candles[symbol] = await market_store.load_candles(
                session, asset=asset, interval=interval, start=start, end=end
            )
    return candles


async def run_backtest(runner: JobRunner, job: job_store.Job) -> uuid.UUID:
    request = BacktestJob.from_json(job.input)
    spec, config = request.strategy, request.config
    await runner.progress(job.id, 0.05, "loading candles")
    candles = await load_candles(
        runner, request.symbols, interval=request.interval, start=request.start, end=request.end
    )
    if spec.family == "signal":
        found_book = await runner.heavy(
            job.id, 0.2, "simulating", book.run_book, spec, candles, config
        )
        metrics = book.summary(found_book, config.periods_per_year)
        timestamps, equity = found_book.timestamps, found_book.equity
        positions, trades = found_book.positions, book.trade_table(found_book)
    else:
        found = await runner.heavy(
            job.id,
            0.2,
            "rebalancing",
            partial(
                run_allocation,
                initial_capital=config.initial_capital,
                fee_bps=config.fee_bps,
                periods_per_year=config.periods_per_year,
                supply=request.supply,
            ),
            spec,
            candles,
        )
        metrics = allocation_summary(found, config.periods_per_year)
        timestamps, equity, positions, trades = found.timestamps, found.equity, found.weights, []
    benchmark = await _benchmark(runner, request, timestamps)
    return await _store(
        runner,
        job,
        partial(
            run_store.new_backtest_run,
            name=request.name,
            run_input=job.input,
            metrics=replace(metrics, benchmark=benchmark),
            timestamps=timestamps,
            equity=equity,
            positions=positions,
            trades=trades,
            code_version=runner.version,
        ),
    )


async def _benchmark(
    runner: JobRunner, request: BacktestJob, timestamps: IntArray
) -> Benchmark | None:
    """Buy and hold of the benchmark symbol (BTC) over the same bars, when it is stored."""
    try:
        candles = await load_candles(
            runner, [BENCHMARK], interval=request.interval, start=request.start, end=request.end
        )
    except LookupError:
        return None
    close_of = candles[BENCHMARK]
    common = np.intersect1d(close_of.timestamps, timestamps)
    if common.size < 2:
        return None
    close = close_of.close[np.searchsorted(close_of.timestamps, common)]
    returns = close[1:] / close[:-1] - 1
    return Benchmark(BENCHMARK, summarize(returns, request.config.periods_per_year))


async def plan_chunks(runner: JobRunner, job: job_store.Job) -> None:
    """Cut a sweep, walk-forward or simulation into chunks (`coinql.domain.chunks`), queue them
    and wake the runners; the job goes on RUNNING until the last chunk's runner merges."""
    await runner.progress(job.id, 0.05, "planning chunks")
    if job.kind == JobKind.SIMULATION.value:
        planned = chunks.simulation_chunks(SimulationJob.from_json(job.input).config.paths)
    else:
        request = StudyJob.from_json(job.input)
        if job.kind == JobKind.SWEEP.value:
            planned = chunks.sweep_chunks(len(research.combinations(request.kind, request.grid)))
        else:
            candles = await _study_candles(runner, request)
            windows = research.splits(
                len(candles), train=request.train_bars, test=request.test_bars, mode=request.mode
            )
            planned = chunks.walk_forward_chunks(len(windows))
    async with runner.sessions() as session, session.begin():
        # in the transaction that queues the chunks, so that a cancel waits and ends them too
        if not await job_store.set_progress(
            session,
            job_id=job.id,
            progress=CHUNKS_START,
            stage=f"0 of {len(planned)} chunks done",
            now=runner.now(),
        ):
            raise Cancelled
        queued = await chunk_store.add_chunks(
            session,
            parent=job,
            chunk_inputs=[chunk.to_json() for chunk in planned],
            now=runner.now(),
        )
    for chunk in queued:
        await runner.wake(chunk.id)


async def _study_candles(runner: JobRunner, request: StudyJob) -> Candles:
    found = await load_candles(
        runner, [request.symbol], interval=request.interval, start=request.start, end=request.end
    )
    return found[request.symbol]


# The candles of the last job whose chunks ran in this process: its next chunks here reuse
# them (a chunk's input is its job's, so they are the same candles).
_chunk_candles: dict[uuid.UUID, Candles] = {}


async def _candles_of_job(runner: JobRunner, job_id: uuid.UUID, request: StudyJob) -> Candles:
    found = _chunk_candles.get(job_id)
    if found is None:
        found = await _study_candles(runner, request)
        _chunk_candles.clear()
        _chunk_candles[job_id] = found
    return found


async def run_chunk(runner: JobRunner, chunk: job_store.Job) -> None:
    """Run one chunk of its parent's job and keep its result; the runner of the last chunk to
    end merges them all into the parent's run and ends the parent."""
    assert chunk.parent_id is not None
    async with runner.sessions() as session:
        parent = await job_store.get_job(session, job_id=chunk.parent_id)
    if parent is None or parent.status != JobStatus.RUNNING.value:
        raise Cancelled
    part = ChunkJob.from_json(chunk.input).part
    timestamps = None
    result: research.SweepResult | research.WalkForwardResult | simulation.PathStats
    if parent.kind == JobKind.SIMULATION.value:
        request = SimulationJob.from_json(parent.input)
        result = await runner.heavy(
            chunk.id,
            0.0,
            "simulating",
            partial(simulation.simulate_paths, first=part[0], count=part[1] - part[0]),
            request.returns,
            request.config,
            parent=parent.id,
        )
    else:
        study = StudyJob.from_json(parent.input)
        candles = await _candles_of_job(runner, parent.id, study)
        timestamps = candles.timestamps
        if parent.kind == JobKind.SWEEP.value:
            result = await runner.heavy(
                chunk.id,
                0.0,
                "sweeping",
                partial(research.sweep, part=part),
                study.kind,
                study.grid,
                candles,
                study.config,
                study.metric,
                parent=parent.id,
            )
        else:
            result = await runner.heavy(
                chunk.id,
                0.0,
                "walking forward",
                partial(
                    research.walk_forward,
                    train=study.train_bars,
                    test=study.test_bars,
                    mode=study.mode,
                    metric=study.metric,
                    part=part,
                ),
                study.kind,
                study.grid,
                candles,
                study.config,
                parent=parent.id,
            )
    async with runner.sessions() as session, session.begin():
        if not await chunk_store.finish_chunk(
            session, chunk_id=chunk.id, output=chunk_store.encode_output(result), now=runner.now()
        ):
            raise Cancelled  # cancelled, or handed to another runner meanwhile
    with contextlib.suppress(Cancelled):  # the parent may have been cancelled since
        await runner.progress(chunk.id, None, "succeeded", parent=parent.id)
    async with runner.sessions() as session, session.begin():
        merging = await chunk_store.take_merge(session, parent_id=parent.id, now=runner.now())
    if merging:
        _chunk_candles.pop(parent.id, None)
        await _merge(runner, parent, timestamps)


async def _merge(runner: JobRunner, parent: job_store.Job, timestamps: IntArray | None) -> None:
    """Merge the chunks' results into the parent's run, store it and end the parent."""
    try:
        async with runner.sessions() as session:
            found = await chunk_store.chunks_of(session, parent_id=parent.id)
        if parent.kind == JobKind.SIMULATION.value:
            run_id = await _store_simulation(
                runner,
                parent,
                simulation.summarize_paths(
                    [chunk_store.path_stats_output(chunk) for chunk in found],
                    SimulationJob.from_json(parent.input).config,
                ),
            )
        else:
            assert timestamps is not None
            merged: research.SweepResult | research.WalkForwardResult
            if parent.kind == JobKind.SWEEP.value:
                merged = chunks.merge_sweep([chunk_store.sweep_output(chunk) for chunk in found])
            else:
                merged = chunks.merge_walk_forward(
                    [chunk_store.walk_forward_output(chunk) for chunk in found]
                )
            run_id = await _store(
                runner,
                parent,
                partial(
                    run_store.new_study_run,
                    kind=parent.kind,
                    run_input=parent.input,
                    result=merged,
                    timestamps=timestamps,
                ),
            )
    except Cancelled:
        return
    except Exception as error:
        log.exception("merging a job's chunks failed", job_id=str(parent.id))
        await runner.end(parent.id, JobStatus.FAILED, f"{type(error).__name__}: {error}")
        return
    await runner.end(parent.id, JobStatus.SUCCEEDED, None, run_id)
    started = parent.started_at or runner.now()
    runner.on_end(parent.kind, JobStatus.SUCCEEDED, (runner.now() - started).total_seconds())


async def _store_simulation(
    runner: JobRunner, job: job_store.Job, found: simulation.SimulationResult
) -> uuid.UUID:
    request = SimulationJob.from_json(job.input)
    config = request.config
    stamps = (
        request.last_timestamp + np.arange(config.horizon + 1, dtype=np.int64) * request.step_ms
    )
    return await _store(
        runner,
        job,
        partial(
            run_store.new_simulation_run,
            run_input=request.to_json(with_returns=False),
            result=found,
            band_timestamps=stamps,
        ),
    )


async def _store(
    runner: JobRunner,
    job: job_store.Job,
    build: Callable[..., run_store.BacktestRun | run_store.StudyRun | run_store.SimulationRun],
) -> uuid.UUID:
    """Store the run that `build` makes for `job` (given its owner, its id and the time), in the
    job's "storing" stage; the run's id."""
    await runner.progress(job.id, 0.9, "storing")
    async with runner.sessions() as session, session.begin():
        run = await insert(
            session, build(owner_id=job.owner_id, job_id=job.id, created_at=runner.now())
        )
    return run.id
