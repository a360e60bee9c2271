"""Open sockets by login session: each is closed (4403) when its access token expires and
within a moment of its session being revoked, on every replica.

A revocation (logout, a reused refresh token, and later a password change or a revoked API key)
is published on the broadcast; every process listens on one channel and closes its own sockets
of that session or user. Revocations published while Redis is away are not delivered, so the
token is also checked again when each operation starts and every few seconds while a stream
flows (coinql.resolvers.realtime.guard_token): the store stays the authority.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from redis.exceptions import RedisError

from coinql.realtime import channels
from coinql.realtime.hub import Hub
from coinql.realtime.tasks import cancel

log = structlog.get_logger("coinql.sessions")
Close = Callable[[str], Awaitable[None]]


@dataclass(eq=False)
class LiveSocket:
    """One open socket acting for a user: how to close it, and its expiry timer."""

    user_id: uuid.UUID
    session_id: uuid.UUID | None
    close: Close
    timer: asyncio.TimerHandle | None = None
    closing: asyncio.Task[None] | None = field(default=None, repr=False)

    def shut(self, reason: str) -> None:
        if self.closing is None:
            self.closing = asyncio.create_task(self._close(reason))

    async def _close(self, reason: str) -> None:
        with contextlib.suppress(Exception):  # the socket may already be gone
            await self.close(reason)


class LiveSessions:
    """This process's sockets, by login session and by user."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._sockets: set[LiveSocket] = set()
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="coinql-revocations")
        await self._hub.listening([channels.revocations()])

    async def stop(self) -> None:
        await cancel(self._listener)
        for socket in list(self._sockets):
            self.discard(socket)

    def __len__(self) -> int:
        return len(self._sockets)

    def open(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID | None,
        expires_at: datetime | None,
        now: datetime,
        close: Close,
    ) -> LiveSocket:
        """Track a socket until `discard`; at `expires_at` it is closed."""
        socket = LiveSocket(user_id=user_id, session_id=session_id, close=close)
        if expires_at is not None:
            delay = max(0.0, (expires_at - now).total_seconds())
            socket.timer = asyncio.get_running_loop().call_later(
                delay, socket.shut, "access token expired"
            )
        self._sockets.add(socket)
        return socket

    def discard(self, socket: LiveSocket) -> None:
        if socket.timer is not None:
            socket.timer.cancel()
        self._sockets.discard(socket)

    async def revoke(
        self, *, session_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None
    ) -> None:
        """Close every socket of a login session, or of a user, in every process."""
        payload = {
            "sessionId": str(session_id) if session_id else None,
            "userId": str(user_id) if user_id else None,
        }
        try:
            await self._hub.publish(channels.revocations(), payload)
        except (OSError, ConnectionError, RedisError) as error:
            # Other processes find out at their next token check; this one closes now.
            log.warning("revocation not broadcast", error=str(error))
            self._close_matching(payload)

    async def _listen(self) -> None:
        async for message in self._hub.subscribe([channels.revocations()], conflate=False):
            self._close_matching(message)

    def _close_matching(self, message: dict[str, str | None]) -> None:
        session_id, user_id = message.get("sessionId"), message.get("userId")
        for socket in list(self._sockets):
            if (session_id and str(socket.session_id) == session_id) or (
                user_id and str(socket.user_id) == user_id
            ):
                self.discard(socket)
                socket.shut("session revoked")
