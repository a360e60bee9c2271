"""Research jobs run as chunks, on the service's pool (SQLite) and on two real `coinql worker`
processes through Redis (PostgreSQL): their results are the single-process runs', their
progress rises from the chunks to 100 %, a cancel stops the chunks, and a chunk whose worker
died is run again by another, the result unchanged."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette

from coinql.domain import research, simulation
from coinql.domain.candles import Candles
from coinql.domain.runs import SimulationJob, StudyJob
from coinql.realtime import channels
from coinql.realtime.clock import utc_now
from coinql.realtime.compute import run_in_thread
from coinql.realtime.job_runner import JobRunner
from coinql.realtime.jobs import sweep_stale
from coinql.resolvers.auth import create_user
from coinql.settings import Settings
from coinql.store import chunks as chunk_store
from coinql.store import jobs as job_store
from coinql.store import market as market_store
from coinql.store import runs as run_store
from coinql.store.db import create_engine, create_session_factory
from coinql.store.jobs import JobKind, JobStatus
from tests.client import GraphQLClient
from tests.conftest import Backend, import_real_files, make_settings, start_worker
from tests.helpers import run_contract_backtest, wait_for

GRID = (
    '[{name: "fast", values: [5, 8, 10, 15, 20, 25]},'
    ' {name: "slow", values: [30, 40, 50, 60, 80, 100, 120, 150, 200]}]'
)  # 54 combinations: two chunks
SWEEP = (
    f'mutation {{ runSweep(input: {{symbol: "BTC", strategy: "smaCross", grid: {GRID},'
    ' feeBps: 10, fillPrice: CLOSE, metric: "sortino"}) { ... on Job { id } } }'
)
WALK_FORWARD = (
    f'mutation {{ runWalkForward(input: {{symbol: "BTC", strategy: "smaCross", grid: {GRID},'
    " trainBars: 365, testBars: 180, mode: ROLLING}) { ... on Job { id } } }"
)  # seven windows: seven chunks
SIMULATE = (
    "mutation($r: ID!) { runSimulation(input: {source: {backtestRunId: $r}, paths: %d,"
    " horizon: %d, blockLength: 20, seed: 4}) { ... on Job { id } } }"
)
CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { ... on Job { status } } }"


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, job_slots=2, job_stale_seconds=4, job_sweep_seconds=0.5)


@pytest.fixture
def workers(backend: Backend, settings: Settings) -> Iterator[list[subprocess.Popen[bytes]]]:
    """With Redis, two `coinql worker` processes of one slot each; without, none (the
    service's pool runs the chunks)."""
    if settings.redis_url is None:
        yield []
        return
    started = [start_worker(settings, extra_env={"COINQL_JOB_SLOTS": "1"}) for _ in range(2)]
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=20)


@pytest.fixture
async def ada(
    client: GraphQLClient, admin: str, workers: list[subprocess.Popen[bytes]]
) -> GraphQLClient:
    await import_real_files(client, admin)
    client.token = (await client.sign_up("ada@example.com"))["accessToken"]
    return client


def job_uuid(global_id: str) -> uuid.UUID:
    """The job's id in the store, from its GraphQL id ("Job:<uuid>", base64)."""
    return uuid.UUID(base64.b64decode(global_id).decode().split(":", 1)[1])


async def submit(client: GraphQLClient, mutation: str, **variables: Any) -> str:
    found = (await client.execute(mutation, variables or None)).ok()
    (job,) = found.values()
    return str(job["id"])


def sessions_of(app: Starlette) -> async_sessionmaker[AsyncSession]:
    return app.state.services.jobs.runner.sessions  # type: ignore[no-any-return]


async def candles_of(sessions: async_sessionmaker[AsyncSession], request: StudyJob) -> Candles:
    async with sessions() as session:
        asset = await market_store.get_asset(session, symbol=request.symbol)
        assert asset is not None
        return await market_store.load_candles(
            session, asset=asset, interval=request.interval, start=request.start, end=request.end
        )


async def stored_job(sessions: async_sessionmaker[AsyncSession], job_id: uuid.UUID) -> Any:
    async with sessions() as session:
        return await job_store.get_job(session, job_id=job_id)


async def test_chunked_runs_are_the_single_process_runs(app: Starlette, ada: GraphQLClient) -> None:
    """A sweep, a walk-forward and a Monte Carlo run, each cut into chunks, store exactly
    what the domain computes in one call on the same input."""
    sessions = sessions_of(app)
    source = (await run_contract_backtest(ada))["result"]["id"]
    ids = {
        JobKind.SWEEP: await submit(ada, SWEEP),
        JobKind.WALK_FORWARD: await submit(ada, WALK_FORWARD),
        JobKind.SIMULATION: await submit(ada, SIMULATE % (5_000, 200), r=source),
    }
    for kind, global_id in ids.items():
        assert (await wait_for(ada, global_id))["status"] == "SUCCEEDED", kind
        job = await stored_job(sessions, job_uuid(global_id))
        async with sessions() as session:
            chunks_left = await chunk_store.chunks_of(session, parent_id=job.id)
        assert chunks_left == []  # merged: the chunks' results are the run's
        keys = {"owner_id": job.owner_id, "job_id": job.id, "created_at": utc_now()}
        if kind is JobKind.SIMULATION:
            request = SimulationJob.from_json(job.input)
            async with sessions() as session:
                run = await run_store.get_simulation_run(
                    session, run_id=job.result_id, owner_id=job.owner_id
                )
            assert run is not None
            expected = run_store.new_simulation_run(
                **keys,
                run_input={},
                result=simulation.simulate(request.returns, request.config),
                band_timestamps=np.zeros(201, dtype=np.int64),
            )
            found, wanted = (
                run_store.simulation_result_of(run),
                run_store.simulation_result_of(expected),
            )
            np.testing.assert_array_equal(found.bands, wanted.bands)
            assert run.statistics == expected.statistics
            continue
        study = StudyJob.from_json(job.input)
        candles = await candles_of(sessions, study)
        if kind is JobKind.SWEEP:
            assert len(research.combinations(study.kind, study.grid)) == 54
            result: research.SweepResult | research.WalkForwardResult = research.sweep(
                study.kind, study.grid, candles, study.config, study.metric
            )
        else:
            result = research.walk_forward(
                study.kind,
                study.grid,
                candles,
                study.config,
                train=study.train_bars,
                test=study.test_bars,
                mode=study.mode,
                metric=study.metric,
            )
            assert len(result.splits) == 7
        async with sessions() as session:
            stored = await run_store.get_study_run(
                session, run_id=job.result_id, owner_id=job.owner_id
            )
        assert stored is not None
        expected_run = run_store.new_study_run(
            **keys, kind=kind.value, run_input={}, result=result, timestamps=candles.timestamps
        )
        assert stored.result == expected_run.result


async def test_progress_rises_from_the_chunks_to_one(app: Starlette, ada: GraphQLClient) -> None:
    """What jobProgress hears of a walk-forward in seven chunks: the chunks' progress, never
    falling, up to 1 with SUCCEEDED."""
    hub = app.state.services.hub
    heard: list[dict[str, Any]] = []
    subscribed = asyncio.Event()

    async def listen(channel: str) -> None:
        updates = hub.subscribe([channel], conflate=False)
        first = asyncio.ensure_future(updates.__anext__())
        await hub.listening([channel])
        subscribed.set()
        message = await first
        while True:
            heard.append(message)
            if JobStatus(message["status"]).final:
                return
            message = await updates.__anext__()

    global_id = await submit(ada, WALK_FORWARD)
    job_id = job_uuid(global_id)
    listener = asyncio.create_task(listen(channels.job(job_id)))
    await asyncio.wait_for(subscribed.wait(), 10)
    await asyncio.wait_for(listener, 120)
    values = [message["progress"] for message in heard]
    assert values == sorted(values), values
    assert heard[-1]["status"] == "SUCCEEDED" and values[-1] == 1.0
    partial = {value for value in values if 0.1 < value < 0.9}
    assert len(partial) >= 3, values  # the chunks' share, chunk by chunk
    assert any("chunks done" in message["stage"] for message in heard), heard


async def test_cancelling_a_job_stops_its_chunks(app: Starlette, ada: GraphQLClient) -> None:
    sessions = sessions_of(app)
    source = (await run_contract_backtest(ada))["result"]["id"]
    global_id = await submit(ada, SIMULATE % (60_000, 1_000), r=source)
    job_id = job_uuid(global_id)
    for _ in range(600):  # until chunks compute
        async with sessions() as session:
            found = await chunk_store.chunks_of(session, parent_id=job_id)
        if any(chunk.status == JobStatus.RUNNING.value for chunk in found):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("no chunk started")
    assert len(found) > 2
    cancelled = (await ada.execute(CANCEL, {"id": global_id})).ok()["cancelJob"]
    assert cancelled["status"] == "CANCELLED"
    async with sessions() as session:
        statuses = {
            chunk.status for chunk in await chunk_store.chunks_of(session, parent_id=job_id)
        }
    assert statuses <= {JobStatus.SUCCEEDED.value, JobStatus.CANCELLED.value}, statuses
    await asyncio.sleep(3)  # a running chunk stops at its next check; none is claimed again
    async with sessions() as session:
        after = await chunk_store.chunks_of(session, parent_id=job_id)
    done_before = sum(chunk.status == JobStatus.SUCCEEDED.value for chunk in found)
    assert {chunk.status for chunk in after} <= {"SUCCEEDED", "CANCELLED"}
    assert sum(chunk.status == "SUCCEEDED" for chunk in after) <= done_before + 2
    assert (await wait_for(ada, global_id))["status"] == "CANCELLED"
    async with sessions() as session:
        running = await job_store.stale_running(session, older_than=utc_now() + timedelta(1))
    assert running == []


class Heard:
    """A hub that keeps what the runners publish."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, channel: str, payload: dict[str, Any]) -> None:
        self.messages.append((channel, payload))


async def no_wake(job_id: Any) -> bool:
    return True


@pytest.fixture
async def store(backend: Backend) -> Any:
    engine = create_engine(backend.database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def queue_simulation(
    sessions: async_sessionmaker[AsyncSession], config: simulation.SimulationConfig
) -> tuple[uuid.UUID, SimulationJob]:
    returns = np.random.default_rng(0).normal(0.0005, 0.03, 800)
    request = SimulationJob.of(
        source={"portfolio_id": str(uuid.uuid4())},
        config=config,
        returns=returns,
        timestamps=np.arange(800, dtype=np.int64) * 86_400_000,
        step_ms=86_400_000,
    )
    async with sessions() as session, session.begin():
        user = await create_user(
            session,
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            password="a long password",
            is_admin=False,
            now=utc_now(),
        )
        job = await job_store.add_job(
            session,
            owner_id=user.id,
            kind=JobKind.SIMULATION,
            job_input=request.to_json(),
            now=utc_now(),
        )
    return job.id, request


def runner_of(sessions: async_sessionmaker[AsyncSession], name: str, hub: Heard) -> JobRunner:
    return JobRunner(
        sessions=sessions,
        hub=hub,  # type: ignore[arg-type]
        compute=run_in_thread,
        runner=f"arq:{name}:1",
        max_running_per_user=2,
        wake=no_wake,
    )


async def claim_and_die(
    sessions: async_sessionmaker[AsyncSession], kind: JobKind = JobKind.CHUNK
) -> job_store.Job:
    """What a worker killed mid-job leaves: a job (a chunk) claimed, RUNNING, never
    heartbeating."""
    async with sessions() as session, session.begin():
        claimed = await job_store.claim_next(
            session, runner="arq:killed:1", clock=utc_now, max_running_per_owner=2
        )
    assert claimed is not None and claimed.kind == kind.value
    return claimed


async def test_a_chunk_whose_worker_died_is_run_again_by_another(store: Any) -> None:
    """A worker claims a chunk and dies; another runs the rest, the sweeper hands the dead
    chunk over, the other runs it too and merges: the run is the single-process run."""
    config = simulation.SimulationConfig(paths=5_000, horizon=150, seed=9)
    job_id, request = await queue_simulation(store, config)
    hub = Heard()
    planner, survivor = runner_of(store, "planner", hub), runner_of(store, "survivor", hub)
    assert await planner.run_next()  # plans the chunks, and leaves the job RUNNING
    dead = await claim_and_die(store)
    while await survivor.run_next():
        pass
    parent = await stored_job(store, job_id)
    assert parent.status == "RUNNING" and parent.result_id is None  # waits for the dead chunk
    woken: list[Any] = []

    async def wake(chunk_id: Any) -> bool:
        woken.append(chunk_id)
        return True

    later = utc_now() + timedelta(seconds=10)  # past the heartbeats
    assert await sweep_stale(store, stale_seconds=5, now=later, wake=wake) == 1
    assert woken == [dead.id]
    again = await stored_job(store, dead.id)
    assert (again.status, again.attempts, again.runner) == ("QUEUED", 1, None)
    assert await survivor.run_next()
    parent = await stored_job(store, job_id)
    assert parent.status == "SUCCEEDED"
    async with store() as session:
        run = await run_store.get_simulation_run(
            session, run_id=parent.result_id, owner_id=parent.owner_id
        )
    assert run is not None
    found = run_store.simulation_result_of(run)
    expected = simulation.simulate(request.returns, config)
    np.testing.assert_array_equal(found.bands, expected.bands)
    assert found.max_drawdown_percentiles == expected.max_drawdown_percentiles
    assert found.final_return_percentiles == expected.final_return_percentiles
    assert found.expected_shortfall_99 == expected.expected_shortfall_99
    values = [m["progress"] for channel, m in hub.messages if channel == channels.job(job_id)]
    assert values == sorted(values) and values[-1] == 1.0


async def test_a_job_whose_worker_died_before_it_planned_chunks_is_failed(store: Any) -> None:
    """No chunk to hand over: the sweeper fails the job itself, naming the silent runner."""
    job_id, _ = await queue_simulation(store, simulation.SimulationConfig(paths=1_000))
    dead = await claim_and_die(store, kind=JobKind.SIMULATION)
    assert dead.id == job_id
    later = utc_now() + timedelta(seconds=10)
    assert await sweep_stale(store, stale_seconds=5, now=later, wake=no_wake) == 1
    failed = await stored_job(store, job_id)
    assert failed.status == "FAILED"
    assert failed.error == "the worker stopped: no heartbeat for 5 s (runner arq:killed:1)"


async def test_a_chunk_that_keeps_losing_its_worker_fails_the_job(store: Any) -> None:
    job_id, _ = await queue_simulation(store, simulation.SimulationConfig(paths=1_000))
    assert await runner_of(store, "planner", Heard()).run_next()
    for attempt in range(job_store.MAX_CHUNK_ATTEMPTS):
        await claim_and_die(store)
        later = utc_now() + timedelta(seconds=10)
        await sweep_stale(store, stale_seconds=5, now=later, wake=no_wake)
        status = (await stored_job(store, job_id)).status
        assert status == ("FAILED" if attempt == job_store.MAX_CHUNK_ATTEMPTS - 1 else "RUNNING")
    parent = await stored_job(store, job_id)
    assert "a chunk's worker stopped 3 times" in parent.error


async def test_a_killed_worker_loses_nothing(
    app: Starlette,
    ada: GraphQLClient,
    backend: Backend,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    """Two real workers share a Monte Carlo run's chunks; one is killed (SIGKILL) while it
    computes one: another worker runs that chunk again, and the run is the single one's."""
    if backend.redis_url is None:
        return  # in process there is no other worker: a stopped service interrupts its jobs
    sessions = sessions_of(app)
    source = (await run_contract_backtest(ada))["result"]["id"]
    global_id = await submit(ada, SIMULATE % (40_000, 800), r=source)
    job_id = job_uuid(global_id)
    victim = workers[0]
    killed: job_store.Job | None = None
    for _ in range(1_200):
        async with sessions() as session:
            found = await chunk_store.chunks_of(session, parent_id=job_id)
        mine = [
            chunk
            for chunk in found
            if chunk.status == "RUNNING" and str(victim.pid) in (chunk.runner or "")
        ]
        if mine:
            killed = mine[0]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            break
        await asyncio.sleep(0.05)
    assert killed is not None, "the first worker ran no chunk"
    job = await wait_for(ada, global_id)
    assert job["status"] == "SUCCEEDED", job
    parent = await stored_job(sessions, job_id)
    request = SimulationJob.from_json(parent.input)
    async with sessions() as session:
        run = await run_store.get_simulation_run(
            session, run_id=parent.result_id, owner_id=parent.owner_id
        )
    assert run is not None
    expected = simulation.simulate(request.returns, request.config)
    np.testing.assert_array_equal(run_store.simulation_result_of(run).bands, expected.bands)
    assert run_store.simulation_result_of(run).final_return_percentiles == (
        expected.final_return_percentiles
    )
