"""Leader election: which process of a deployment runs the feed, the risk monitor and ingestion.

Every role asks the same `Leader` whether it leads (`acquire`, called again to keep leading)
and gives it up on stop (`release`). `coinql.realtime.backends` picks one implementation per
deployment: with Redis, a lease (`RedisLeader`: a lock with an expiry, held while renewed and
taken over once it lapses, within 6 s when its holder dies); without Redis, a lock on the
database the processes share (`DatabaseLeader`: a PostgreSQL advisory lock held on a
connection of its own, or on SQLite an exclusive `flock` on a file beside the database).
`LocalLeader` always leads (one process, in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Protocol

import redis.asyncio as aioredis
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coinql.realtime.tasks import cancel

log = structlog.get_logger("coinql.leader")
LEADER_TTL_MS = 6_000
# An arbitrary constant: the PostgreSQL advisory lock id of the ingestion leader.
INGESTION_LOCK_KEY = 0x636F696E716C  # "coinql"
ACCOUNT_SYNC_LOCK_KEY = INGESTION_LOCK_KEY + 1
BOTS_LOCK_KEY = INGESTION_LOCK_KEY + 2


class Leader(Protocol):
    # How often `acquire` must be called to keep leading (None: held until released).
    renew_seconds: float | None

    async def acquire(self) -> bool:
        """Take or keep the leadership; False (standby) while another process holds it."""
        ...

    async def release(self) -> None: ...


def redis_key(role: str) -> str:
    """The Redis key of a role's lease ("feed" -> "coinql:feed:leader")."""
    return f"coinql:{role}:leader"


class LocalLeader:
    """One process: it always leads."""

    renew_seconds: float | None = None

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class RedisLeader:
    """A Redis lock with an expiry: held while renewed, taken over once it lapses."""

    RENEW = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then"
        " return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
    )
    RELEASE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1])"
        " else return 0 end"
    )

    def __init__(
        self, redis_url: str, *, key: str = redis_key("feed"), ttl_ms: int = LEADER_TTL_MS
    ) -> None:
        self.redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2)
        self.key, self.ttl_ms = key, ttl_ms
        self.renew_seconds: float | None = ttl_ms / 3000
        self.token = uuid.uuid4().hex
        self.held = False

    async def acquire(self) -> bool:
        """Take or renew the lock; False (standby) if another holds it or Redis is away."""
        try:
            if self.held:
                self.held = bool(
                    await self.redis.eval(self.RENEW, 1, self.key, self.token, self.ttl_ms)
                )
            if not self.held:
                self.held = bool(
                    await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms)
                )
        except (OSError, aioredis.RedisError) as error:
            log.warning("leader lock unavailable", key=self.key, error=str(error))
            self.held = False
        return self.held

    async def release(self) -> None:
        with contextlib.suppress(OSError, aioredis.RedisError):
            if self.held:
                await self.redis.eval(self.RELEASE, 1, self.key, self.token)
        self.held = False
        await self.redis.aclose()


class DatabaseLeader:
    """A non-blocking, process-wide lock: a PostgreSQL advisory lock held on a connection of
    its own, or on SQLite an exclusive `flock` on a file beside the database."""

    renew_seconds: float | None = None

    def __init__(self, engine: AsyncEngine, *, key: int = INGESTION_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._connection: AsyncConnection | None = None
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def _lock_path(self) -> Path:
        database = make_url(str(self.engine.url)).database or ""
        base = Path(database) if database and database != ":memory:" else Path(".coinql")
        return base.with_name(f"{base.name}.{self.key:x}.lock")

    async def acquire(self) -> bool:
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            connection = await self.engine.connect()
            acquired = (
                await connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                )
            ).scalar_one()
            if acquired:
                self._connection = connection
            else:
                await connection.close()
            return bool(acquired)
        handle = open(self._lock_path(), "ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._file = handle
        return True

    async def release(self) -> None:
        if self._connection is not None:
            try:
                await self._connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                )
            finally:
                await self._connection.close()
                self._connection = None
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@contextlib.asynccontextmanager
async def renewing(leader: Leader) -> AsyncIterator[None]:
    """Keep leading while the block runs: a lease lapses unless `acquire` is called again
    within its lifetime (work and waits longer than that renew it in the background)."""
    every = leader.renew_seconds
    if every is None:
        yield
        return

    async def renew() -> None:
        while True:
            await asyncio.sleep(every)
            await leader.acquire()

    task = asyncio.create_task(renew(), name="coinql-leader-renew")
    try:
        yield
    finally:
        await cancel(task)


async def take_turns(
    leader: Leader,
    *,
    work: Callable[[], Awaitable[object]],
    pause: Callable[[], Awaitable[object]],
    on_status: Callable[[str], None],
    running: Callable[[], bool],
) -> None:
    """While `running()`: `work` then `pause` while this process leads (reported "leader"),
    only `pause` while another does ("standby"), taking over once its leadership lapses."""
    while running():
        if await leader.acquire():
            on_status("leader")
            async with renewing(leader):  # a lease outlives the work and the pause
                await work()
                await pause()
        else:
            on_status("standby")
            await pause()


class LeadingLoop:
    """A background task that one process of the deployment runs: `run_once`, then a pause of
    `pause_seconds` (cut short by `stop`), over and over while this process leads."""

    task_name = "coinql-leading"

    def __init__(
        self,
        *,
        leader: Leader | None,
        pause_seconds: float,
        on_status: Callable[[str], None],
    ) -> None:
        self.leader = leader or LocalLeader()
        self.pause_seconds = pause_seconds
        self.on_status = on_status
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        self._stopping.set()
        await cancel(self._task)
        await self.leader.release()

    async def run_once(self) -> object:
        raise NotImplementedError

    async def _run(self) -> None:
        await take_turns(
            self.leader,
            work=self.run_once,
            pause=self._pause,
            on_status=self.on_status,
            running=lambda: not self.stopping,
        )

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.pause_seconds)
