"""Scheduling and cancelling jobs, on the service's process pool (SQLite) and on a real
`coinql worker` through Redis (PostgreSQL): one user's many jobs take turns with another's,
never more than two of them run at once, and cancelled computations stop at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from coinql.settings import Settings
from tests.client import GraphQLClient
from tests.conftest import Backend, import_real_files, make_settings, worker_for
from tests.helpers import WINDOW, run_contract_backtest, wait_for

SIMULATE = (
    "mutation($r: ID!) { runSimulation(input: {source: {backtestRunId: $r}, paths: %d,"
    " horizon: %d, blockLength: 20}) { __typename ... on Job { id } ... on Error { message } } }"
)
MEDIUM = SIMULATE % (30_000, 1_000)  # seconds of work each
HUGE = SIMULATE % (100_000, 3_650)  # minutes of work each, as in the issue
JOBS = "{ jobs(first: 50) { id kind status startedAt finishedAt } }"


@pytest.fixture
def job_slots() -> int:
    return 3


@pytest.fixture
def settings(backend: Backend, tmp_path: Path, job_slots: int) -> Settings:
    return make_settings(
        backend, tmp_path, job_slots=job_slots, job_stale_seconds=5, job_sweep_seconds=0.5
    )


@pytest.fixture
def worker(backend: Backend, settings: Settings) -> Iterator[subprocess.Popen[bytes] | None]:
    """With Redis, jobs run in one `coinql worker` with as many slots as the pool would have."""
    with worker_for(settings, extra_env={"COINQL_JOB_SLOTS": str(settings.job_slots)}) as process:
        yield process


@pytest.fixture
async def ada(
    client: GraphQLClient,
    admin: str,
    worker: subprocess.Popen[bytes] | None,
) -> GraphQLClient:
    await import_real_files(client, admin)
    client.token = (await client.sign_up("ada@example.com"))["accessToken"]
    return client


async def batch(client: GraphQLClient, operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several operations in one HTTP request (a JSON array), each one's data."""
    response = await client.http.post(
        "/graphql", json=operations, headers={"Authorization": f"Bearer {client.token}"}
    )
    assert response.status_code == 200, response.text
    results = response.json()
    assert all(not result.get("errors") for result in results), results
    return [result["data"] for result in results]


async def submit_simulations(
    client: GraphQLClient, query: str, run_id: str, count: int
) -> list[str]:
    found = await batch(client, [{"query": query, "variables": {"r": run_id}}] * count)
    assert all(data["runSimulation"]["__typename"] == "Job" for data in found), found
    return [data["runSimulation"]["id"] for data in found]


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def most_at_once(jobs: list[dict[str, Any]]) -> int:
    """The largest number of these jobs that were running at the same time."""
    events = sorted(
        [(parse(job["startedAt"]), 1) for job in jobs]
        + [(parse(job["finishedAt"]), -1) for job in jobs],
        key=lambda event: (event[0], event[1]),  # an end before a start at the same instant
    )
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


async def test_one_users_many_jobs_take_turns_with_anothers(
    ada: GraphQLClient, settings: Settings
) -> None:
    """Ada queues eight simulations of a few seconds each at once, then Bob one backtest, with
    three slots: Bob's starts before most of Ada's (third, in the free slot, where the queue
    in submission order would start it last), and Ada never has more than two running."""
    source = (await run_contract_backtest(ada))["result"]["id"]
    bob = (await ada.sign_up("bob@example.com"))["accessToken"]
    adas = await submit_simulations(ada, MEDIUM, source, 8)
    queued = (await ada.contract("backtest", "RunBacktest", WINDOW, token=bob)).ok()
    bobs = queued["runBacktest"]["id"]
    for job_id in adas:
        assert (await wait_for(ada, job_id))["status"] == "SUCCEEDED"
    assert (await wait_for(ada, bobs, token=bob))["status"] == "SUCCEEDED"

    ada_jobs = [job for job in (await ada.execute(JOBS)).ok()["jobs"] if job["id"] in adas]
    (bob_job,) = (await ada.execute(JOBS, token=bob)).ok()["jobs"]
    bob_start = parse(bob_job["startedAt"])
    after_bob = [job for job in ada_jobs if parse(job["startedAt"]) > bob_start]
    assert len(after_bob) >= 5, "Bob's job waited behind most of Ada's"
    assert most_at_once(ada_jobs) == settings.max_running_jobs_per_user == 2
    assert most_at_once([*ada_jobs, bob_job]) <= settings.job_slots


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used so far (Linux /proc)."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue  # it has exited: nothing more to count
        fields = stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def cpu_use(pids: list[int], seconds: float = 0.5) -> float:
    """The share of one CPU the processes use over the next `seconds`."""
    before = cpu_seconds(pids)
    await asyncio.sleep(seconds)
    return (cpu_seconds(pids) - before) / seconds


def computing_processes(app: Starlette, worker: subprocess.Popen[bytes] | None) -> list[int]:
    """Where heavy steps run: the service's pool processes, or the worker."""
    if worker is not None:
        return [worker.pid]
    return list(app.state.services.jobs.pool._processes)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from /proc")
@pytest.mark.parametrize("job_slots", [2])
async def test_cancelled_simulations_stop_and_free_the_slots(
    app: Starlette, ada: GraphQLClient, worker: subprocess.Popen[bytes] | None
) -> None:
    """The issue's scenario, smaller: Ada queues eight simulations of 100,000 paths x 3,650
    steps (two run, filling both slots) and cancels them all; the computing stops within a
    few seconds (the target is 1 s), and Bob's small backtest then runs at once."""
    source = (await run_contract_backtest(ada))["result"]["id"]
    bob = (await ada.sign_up("bob@example.com"))["accessToken"]
    adas = await submit_simulations(ada, HUGE, source, 8)
    for _ in range(600):  # until both are in their heavy step, computing
        jobs = (await ada.execute(JOBS)).ok()["jobs"]
        if sum(job["status"] == "RUNNING" for job in jobs) >= 2:
            pids = computing_processes(app, worker)
            if pids and await cpu_use(pids) > 0.5:
                break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the simulations did not start computing")

    started, cancelled_at = time.monotonic(), datetime.now(UTC)
    cancels = [
        data["cancelJob"]
        for data in await batch(
            ada,
            [
                {
                    "query": "mutation($id: ID!) { cancelJob(id: $id)"
                    " { ... on Job { status startedAt finishedAt } } }",
                    "variables": {"id": job_id},
                }
                for job_id in adas
            ],
        )
    ]
    # A simulation may have finished between the look and the cancel (a loaded machine):
    # that one is answered as it ended, before the cancel; every other one is cancelled,
    # and at least one of those was computing.
    for job in cancels:
        assert job["status"] == "CANCELLED" or (
            job["status"] == "SUCCEEDED" and parse(job["finishedAt"]) <= cancelled_at
        ), job
    assert any(job["status"] == "CANCELLED" and job["startedAt"] for job in cancels)
    while await cpu_use(computing_processes(app, worker), 0.25) > 0.2:
        assert time.monotonic() - started < 5, "the cancelled simulations are still computing"
    submitted_at = datetime.now(UTC)
    queued = (await ada.contract("backtest", "RunBacktest", WINDOW, token=bob)).ok()
    job = await wait_for(ada, queued["runBacktest"]["id"], token=bob)
    assert job["status"] == "SUCCEEDED"
    (bob_job,) = (await ada.execute(JOBS, token=bob)).ok()["jobs"]
    assert (parse(bob_job["startedAt"]) - submitted_at).total_seconds() < 5  # a slot was free
    final = {job["id"]: job["status"] for job in (await ada.execute(JOBS)).ok()["jobs"]}
    assert [final[job_id] for job_id in adas] == [job["status"] for job in cancels]
