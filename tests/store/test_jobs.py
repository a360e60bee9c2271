"""The job queue in the store: fair claims that respect each owner's running limit, even when
several runners claim at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store import auth as auth_store
from coinql.store import jobs as job_store
from coinql.store.db import create_engine, create_session_factory
from coinql.store.jobs import JobKind, JobStatus
from tests.conftest import Backend

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def sessions(backend: Backend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(backend.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


class Queue:
    """Jobs queued by owners one second apart, claimed and finished through the store."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.clock = START
        self.names: dict[uuid.UUID, str] = {}

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    async def owner(self, email: str) -> uuid.UUID:
        async with self.sessions() as session, session.begin():
            user = await auth_store.add_user(
                session, email=email, password_hash="x", is_admin=False, now=START
            )
        return user.id

    async def submit(self, owner: uuid.UUID, name: str) -> None:
        async with self.sessions() as session, session.begin():
            job = await job_store.add_job(
                session, owner_id=owner, kind=JobKind.BACKTEST, job_input={}, now=self.tick()
            )
        self.names[job.id] = name

    async def claim(self, max_running: int = 2) -> str | None:
        async with self.sessions() as session, session.begin():
            job = await job_store.claim_next(
                session, runner="test", clock=self.tick, max_running_per_owner=max_running
            )
        return None if job is None else self.names[job.id]

    async def finish(self, name: str) -> None:
        (job_id,) = [job_id for job_id, known in self.names.items() if known == name]
        async with self.sessions() as session, session.begin():
            await job_store.finish(
                session, job_id=job_id, status=JobStatus.SUCCEEDED, now=self.tick()
            )


async def test_claims_take_turns_across_owners(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = Queue(sessions)
    ada, bob = await queue.owner("ada@example.com"), await queue.owner("bob@example.com")
    for index in range(1, 9):
        await queue.submit(ada, f"ada{index}")
    await queue.submit(bob, "bob1")
    # Fewest running first: Ada's first job, then Bob's (none running) before Ada's second.
    assert [await queue.claim() for _ in range(4)] == ["ada1", "bob1", "ada2", None]
    await queue.finish("ada1")  # Ada runs one again: her next job may start
    assert [await queue.claim(), await queue.claim()] == ["ada3", None]


async def test_with_one_slot_owners_alternate(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Each time the slot frees, the owner served least recently goes next."""
    queue = Queue(sessions)
    ada, bob = await queue.owner("ada@example.com"), await queue.owner("bob@example.com")
    for index in range(1, 5):
        await queue.submit(ada, f"ada{index}")
    for index in range(1, 3):
        await queue.submit(bob, f"bob{index}")
    order = []
    while (name := await queue.claim(max_running=1)) is not None:
        order.append(name)
        await queue.finish(name)
    assert order == ["ada1", "bob1", "ada2", "bob2", "ada3", "ada4"]


async def test_runners_claiming_at_once_never_pass_the_running_limit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    queue = Queue(sessions)
    ada = await queue.owner("ada@example.com")
    for index in range(8):
        await queue.submit(ada, f"ada{index}")
    claimed = await asyncio.gather(*(queue.claim(max_running=2) for _ in range(8)))
    assert sorted(name for name in claimed if name) == ["ada0", "ada1"]
    async with sessions() as session:
        counts = await job_store.count_active(session, owner_id=ada)
    assert (counts.running, counts.queued) == (2, 6)
