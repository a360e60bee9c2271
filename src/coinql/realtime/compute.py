"""Where a job's CPU-heavy step runs, and how it is stopped between its chunks.

A heavy step is a domain function that takes a `progress` callback and calls it between
chunks (`coinql.domain.typing.Progress`). Here that callback checks a stop flag and raises
`Stopped` once it is raised, so a cancelled job's computation ends within a chunk instead of
running to its end:

- In the service (`ProcessPool`): the flags live in memory shared with the pool's spawned
  processes, one per step in flight; the parent raises a step's flag, the child reads it.
- In a `coinql worker` (`run_in_thread`): the step runs in a thread of the worker (whose loop
  keeps heartbeating), and its flag is a `threading.Event`.

Either way the flag is raised when the caller's `stop` event is set, and also when the caller
stops waiting (cancelled: the service or worker stopping), so no step outlives its job.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, TypeVar

from coinql.domain.typing import Progress

T = TypeVar("T")


class Stopped(Exception):
    """The step saw its stop flag at a checkpoint and ended there."""


def checkpoint(stopped: Callable[[], bool]) -> Progress:
    """The `progress` callback of a step: raises `Stopped` once `stopped()` is true."""

    def check(_done: float) -> None:
        if stopped():
            raise Stopped

    return check


async def _raise_when(stop: asyncio.Event, raise_flag: Callable[[], None]) -> None:
    await stop.wait()
    raise_flag()


class StopFlags:
    """One flag per step in flight, in memory shared with the pool's processes (passed to each
    when it is spawned). A flag is taken for a step and given back once the step has ended in
    its process, never before, so that a later step cannot inherit a raised flag or lower one
    that an earlier step has not yet seen."""

    def __init__(self, size: int) -> None:
        self.values = get_context("spawn").RawArray("b", size)
        self._free = list(range(size))
        self._lock = threading.Lock()  # given back from the executor's thread

    def take(self) -> int:
        with self._lock:
            if not self._free:
                raise RuntimeError("every stop flag is in use: more steps than the pool runs")
            slot = self._free.pop()
        self.values[slot] = 0
        return slot

    def give_back(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)


# In a pool process: the flags of its parent, set when the process starts.
_stop_flags: Any = None


def _adopt_stop_flags(flags: Any) -> None:
    global _stop_flags
    _stop_flags = flags


def _run_in_pool_process(slot: int, function: Callable[..., T], args: tuple[Any, ...]) -> T:
    flags = _stop_flags
    return function(*args, progress=checkpoint(lambda: bool(flags[slot])))


class ProcessPool:
    """Spawned processes (not forked: a fork of a process with a running event loop and open
    connections is unsafe), created on first use; a broken pool (a process killed, out of
    memory) fails its steps and is replaced for the next ones."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        # A step holds its flag until it ends: at most one per process, plus those of callers
        # that stopped waiting while their step finished its chunk.
        self.flags = StopFlags(2 * max_workers + 8)
        self._executor: ProcessPoolExecutor | None = None

    @property
    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.max_workers,
                mp_context=get_context("spawn"),
                initializer=_adopt_stop_flags,
                initargs=(self.flags.values,),
            )
        return self._executor

    async def run(
        self, function: Callable[..., T], *args: Any, stop: asyncio.Event | None = None
    ) -> T:
        """`function(*args, progress=...)` in a pool process; `Stopped` once `stop` is set."""
        slot = self.flags.take()
        submitted: Future[T] | None = None
        relay = None
        if stop is not None:
            relay = asyncio.create_task(_raise_when(stop, lambda: self._raise(slot)))
        try:
            submitted = self.executor.submit(_run_in_pool_process, slot, function, args)
            return await asyncio.wrap_future(submitted)
        except BrokenProcessPool:
            self._replace()
            raise
        finally:
            if relay is not None:
                relay.cancel()
            if submitted is None:
                self.flags.give_back(slot)
            else:
                if not submitted.done():  # the caller stopped waiting: the step stops as well
                    self._raise(slot)
                submitted.add_done_callback(lambda _: self.flags.give_back(slot))

    def _raise(self, slot: int) -> None:
        self.flags.values[slot] = 1

    def _replace(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def shutdown(self) -> None:
        """Stop every step at its next checkpoint, and the processes once they are idle."""
        for slot in range(len(self.flags.values)):
            self._raise(slot)
        self._replace()


async def run_in_thread(
    function: Callable[..., T], *args: Any, stop: asyncio.Event | None = None
) -> T:
    """`function(*args, progress=...)` in a thread; `Stopped` once `stop` is set. A worker
    process is already apart from the API: a thread keeps its own loop free to heartbeat."""
    flag = threading.Event()
    relay = asyncio.create_task(_raise_when(stop, flag.set)) if stop is not None else None
    try:
        return await asyncio.to_thread(function, *args, progress=checkpoint(flag.is_set))
    finally:
        flag.set()  # a thread cannot be cancelled: if the caller stopped waiting, it stops here
        if relay is not None:
            relay.cancel()


Compute = Callable[..., Awaitable[Any]]
"""`ProcessPool.run` or `run_in_thread`: `await compute(function, *args, stop=event)`."""
