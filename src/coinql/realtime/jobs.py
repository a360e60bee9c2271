"""Where heavy jobs run: a process pool in this process, or arq workers through Redis."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings


class JobQueue:
    """The job backend of one process; `kind` is `in-process` or `redis`.

    The process pool is created on first use, so that a server that never runs a job never pays
    for starting worker processes. Workers are spawned, not forked: a fork of a process running
    an event loop and database connections is unsafe.
    """

    def __init__(self, redis_url: str | None, *, max_workers: int | None = None) -> None:
        self.redis_url = redis_url
        self.kind = "redis" if redis_url else "in-process"
        self.max_workers = max_workers or max(1, (os.cpu_count() or 2) - 1)
        self._pool: ProcessPoolExecutor | None = None
        self.arq: ArqRedis | None = None

    async def start(self) -> None:
        if self.redis_url:
            self.arq = await create_pool(RedisSettings.from_dsn(self.redis_url))

    async def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self.arq is not None:
            await self.arq.aclose()
            self.arq = None

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.max_workers, mp_context=get_context("spawn")
            )
        return self._pool
