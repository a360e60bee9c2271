"""The bodies of the jobs: a backtest, a study (sweep or walk-forward), a simulation.

Each reads its typed input (`coinql.domain.runs`), loads what it needs, runs the CPU-heavy
step through the runner (`JobRunner.heavy`: in the process pool or a worker's thread, watched
for cancellation), stores its run and returns the run's id. Where a job runs, and what happens
around it (claims, heartbeats, the final status), is `coinql.realtime.jobs`'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from coinql.domain import book, research, simulation
from coinql.domain.allocation import allocation_summary, run_allocation
from coinql.domain.candles import Candles, Interval
from coinql.domain.metrics import Benchmark, summarize
from coinql.domain.runs import BacktestJob, SimulationJob, StudyJob
from coinql.domain.typing import IntArray
from coinql.store import jobs as job_store
from coinql.store import market as market_store
from coinql.store import runs as run_store
from coinql.store.db import insert
from coinql.store.jobs import JobKind

if TYPE_CHECKING:
    from coinql.realtime.jobs import JobRunner

BENCHMARK = "BTC"


async def run_body(runner: JobRunner, job: job_store.Job) -> uuid.UUID:
    """Run the body of the job's kind; the id of the run it stored."""
    if job.kind == JobKind.BACKTEST.value:
        return await run_backtest(runner, job)
    if job.kind == JobKind.SIMULATION.value:
        return await run_simulation(runner, job)
    return await run_study(runner, job)


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


async def run_study(runner: JobRunner, job: job_store.Job) -> uuid.UUID:
    request = StudyJob.from_json(job.input)
    config, metric = request.config, request.metric
    await runner.progress(job.id, 0.05, "loading candles")
    candles = (
        await load_candles(
            runner,
            [request.symbol],
            interval=request.interval,
            start=request.start,
            end=request.end,
        )
    )[request.symbol]
    kind, grid = request.kind, request.grid
    if job.kind == JobKind.SWEEP.value:
        result: research.SweepResult | research.WalkForwardResult = await runner.heavy(
            job.id, 0.1, "sweeping", research.sweep, kind, grid, candles, config, metric
        )
    else:
        result = await runner.heavy(
            job.id,
            0.1,
            "walking forward",
            partial(
                research.walk_forward,
                train=request.train_bars,
                test=request.test_bars,
                mode=request.mode,
                metric=metric,
            ),
            kind,
            grid,
            candles,
            config,
        )
    return await _store(
        runner,
        job,
        partial(
            run_store.new_study_run,
            kind=job.kind,
            run_input=job.input,
            result=result,
            timestamps=candles.timestamps,
        ),
    )


async def run_simulation(runner: JobRunner, job: job_store.Job) -> uuid.UUID:
    request = SimulationJob.from_json(job.input)
    config = request.config
    await runner.progress(job.id, 0.05, "sampling paths")
    found = await runner.heavy(
        job.id, 0.1, "simulating", simulation.simulate, request.returns, config
    )
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
