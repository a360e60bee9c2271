"""Redis or this process, for everything that can be either, chosen once from the settings
(as broadcaster chooses its backend from a URL): the broadcast hub, the job queue, the
throttles and leader election.

With COINQL_REDIS_URL set, replicas share them through Redis; without it, one process keeps
them in memory. Everything
else asks `Backends` for them instead of looking at `redis_url` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from coinql.realtime.hub import Hub
from coinql.realtime.jobs import JobQueue
from coinql.realtime.leader import (
    ACCOUNT_SYNC_LOCK_KEY,
    BOTS_LOCK_KEY,
    DatabaseLeader,
    Leader,
    LocalLeader,
    RedisLeader,
    redis_key,
)
from coinql.settings import Settings
from coinql.store.jobs import JobStatus
from coinql.store.throttle import FallbackThrottle, MemoryThrottle, RedisThrottle, Throttle

Role = Literal["feed", "risk", "ingestion", "account-sync", "bots"]


@dataclass(frozen=True, slots=True)
class Backends:
    """The deployment's choice: Redis at `redis_url`, or local (None)."""

    redis_url: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Backends:
        return cls(settings.redis_url)

    @property
    def kind(self) -> Literal["redis", "memory"]:
        return "redis" if self.redis_url else "memory"

    def hub(self, *, on_reconnect: Callable[[], None] | None = None) -> Hub:
        """The broadcast: Redis pub/sub across replicas, or broadcaster's memory backend."""
        return Hub(self.redis_url, on_reconnect=on_reconnect)

    def job_queue(
        self,
        settings: Settings,
        *,
        on_end: Callable[[str, JobStatus, float], None] = lambda kind, status, seconds: None,
    ) -> JobQueue:
        """Jobs handed to `coinql worker`s through arq, or run in this process's pool."""
        return JobQueue(
            self.redis_url,
            slots=settings.effective_job_slots,
            max_running_per_user=settings.max_running_jobs_per_user,
            stale_seconds=settings.job_stale_seconds,
            sweep_seconds=settings.job_sweep_seconds,
            on_end=on_end,
        )

    def throttle(self) -> Throttle:
        """Windows shared in Redis (falling back to memory while Redis is away), or in memory."""
        return (
            FallbackThrottle(RedisThrottle(self.redis_url)) if self.redis_url else MemoryThrottle()
        )

    def leader(self, role: Role, *, engine: AsyncEngine) -> Leader:
        """Who runs `role` in the deployment.

        Ingestion, account sync and bots write the shared database (and call exchanges), so the
        database elects them (an advisory lock, or a lock file beside SQLite), with or without
        Redis. The feed and the risk monitor
        broadcast: with Redis, one replica leads on a Redis lease and every replica hears it;
        without Redis a broadcast stays in its process, so each process leads its own.
        """
        if role == "ingestion":
            return DatabaseLeader(engine)
        if role == "account-sync":
            return DatabaseLeader(engine, key=ACCOUNT_SYNC_LOCK_KEY)
        if role == "bots":
            return DatabaseLeader(engine, key=BOTS_LOCK_KEY)
        if self.redis_url:
            return RedisLeader(self.redis_url, key=redis_key(role))
        return LocalLeader()
