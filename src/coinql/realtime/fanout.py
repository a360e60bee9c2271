"""Shared streams: one upstream per key, its messages fanned out to every member's mailbox.

The public live subscriptions (prices, candles) are the same for everyone who sends the same
document and variables. Executing that selection over each event once per subscriber is what
dominates fan-out to many clients, so `coinql.transport` runs it once per key in a
`SharedStream` and hands each member the serialized text. Each member has a conflating mailbox
of its own (a slow client gets the latest messages, not a backlog) and its own sender, so one
slow socket does not hold the others up. The upstream stops when its last member leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import aclosing

from coinql.realtime.hub import DEFAULT_CAPACITY, Mailbox
from coinql.realtime.tasks import cancel

# (kind, text): "next" or "error" with the serialized payload, then ("complete", "").
Message = tuple[str, str]
COMPLETE: Message = ("complete", "")


class SharedStream:
    """One upstream's messages, delivered to every member until the upstream ends."""

    def __init__(self, fanout: FanOut, key: Hashable, upstream: AsyncIterator[Message]) -> None:
        self.fanout = fanout
        self.key = key
        self.members: set[Mailbox[Message]] = set()
        self.task = asyncio.create_task(self._pump(upstream), name="coinql-shared-stream")

    async def _pump(self, upstream: AsyncIterator[Message]) -> None:
        try:
            async with aclosing(upstream):  # type: ignore[type-var]
                async for message in upstream:
                    for member in self.members:
                        member.put(message)
                    if message[0] == "error":
                        break
        finally:
            self.fanout.forget(self)
            for member in self.members:
                member.put(COMPLETE)  # the newest item: conflation never drops it


class FanOut:
    """The shared streams of one process, by key."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.streams: dict[Hashable, SharedStream] = {}

    def join(
        self, key: Hashable, start: Callable[[], AsyncIterator[Message]]
    ) -> tuple[SharedStream, Mailbox[Message]]:
        """A new member of the stream of `key`, started with `start()` if there is none."""
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = SharedStream(self, key, start())
        mailbox: Mailbox[Message] = Mailbox(conflate=True, capacity=self.capacity)
        stream.members.add(mailbox)
        return stream, mailbox

    async def leave(self, stream: SharedStream, mailbox: Mailbox[Message]) -> None:
        """Remove a member; the last one out stops the upstream."""
        stream.members.discard(mailbox)
        if stream.members:
            return
        self.forget(stream)
        await cancel(stream.task)

    def forget(self, stream: SharedStream) -> None:
        if self.streams.get(stream.key) is stream:
            del self.streams[stream.key]

    @property
    def member_count(self) -> int:
        return sum(len(stream.members) for stream in self.streams.values())
