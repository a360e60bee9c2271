"""What every resolver gets: the app's services and, per request, the caller."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from coinql import __version__
from coinql.domain.auth import (
    API_KEY_NEVER_EXPIRES,
    AccessClaims,
    api_key_prefix,
    read_access_token,
)
from coinql.domain.errors import InvalidToken, Unavailable
from coinql.exchanges.accounts import create_account_client
from coinql.exchanges.ccxt import ExchangeAdapter
from coinql.observability import Metrics
from coinql.realtime.accounts import AccountSync
from coinql.realtime.backends import Backends
from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.fanout import FanOut
from coinql.realtime.feed import FeedService
from coinql.realtime.hub import Hub
from coinql.realtime.jobs import JobQueue
from coinql.realtime.orders import BotEngine
from coinql.realtime.prices import LatestPrices
from coinql.realtime.series_cache import SeriesCache
from coinql.realtime.sessions import LiveSessions
from coinql.resolvers.loaders import Loaders
from coinql.settings import Settings
from coinql.store import api_keys as key_store
from coinql.store import auth as auth_store
from coinql.store import db as store_db
from coinql.store.db import is_connection_loss
from coinql.store.throttle import MemoryThrottle, Throttle

_HAS_TURN: ContextVar[bool] = ContextVar("coinql_has_write_turn", default=False)


@dataclass
class Services:
    """The long-lived parts of one app, created and closed by its lifespan."""

    settings: Settings
    backends: Backends
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hub: Hub
    jobs: JobQueue
    metrics: Metrics
    secret_key: str
    live_sessions: LiveSessions
    prices: LatestPrices
    throttle: Throttle = field(default_factory=MemoryThrottle)
    series: SeriesCache = field(default_factory=lambda: SeriesCache(max_bytes=0))
    exchange: ExchangeAdapter | None = None
    feed: FeedService | None = None
    fanout: FanOut = field(default_factory=FanOut)
    subscriptions_by_user: dict[uuid.UUID, int] = field(default_factory=dict)
    # Sockets not (yet) signed in, by (stage, client address): capped (coinql.transport).
    sockets_by_address: dict[tuple[str, str], int] = field(default_factory=dict)
    version: str = __version__
    background: dict[str, str] = field(default_factory=dict)
    # SQLite takes one writer at a time, and its busy handler polls without order: with many
    # of this process's transactions waiting, one can poll past its busy timeout while the
    # others take turns. They queue here instead, in order (None on PostgreSQL).
    writer: asyncio.Lock | None = None
    # Account sync, for the mutation and the scheduler; its `clients` builds an exchange
    # account's ccxt client from the credentials (tests give a fake).
    accounts: AccountSync = field(init=False)
    bots: BotEngine = field(init=False)  # the order path of every bot
    market_clock: Clock | None = None  # an accelerated demo's (coinql.realtime.clock)

    def __post_init__(self) -> None:
        if self.writer is None and self.engine.dialect.name == "sqlite":
            self.writer = asyncio.Lock()
        self.accounts = AccountSync(
            sessions=self.sessions,
            prices=self.prices,
            settings=self.settings,
            clients=create_account_client,
            clock=lambda: self.now(),
        )
        self.bots = BotEngine(
            sessions=self.sessions,
            hub=self.hub,
            prices=self.prices,
            clock=lambda: self.market_now(),
            clients=self.accounts.trading_client,
            live_trading=lambda: self.settings.live_trading,
        )

    def market_now(self) -> datetime:
        """The market's time: `now`, except in an accelerated demo (COINQL_DEMO_SPEED)."""
        return self.market_clock() if self.market_clock is not None else self.now()

    def now(self) -> datetime:
        """The clock of the business's "now" (what the app hands the feed, risk and ingestion)."""
        return utc_now()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any error.

        What a failure says is what is known: before COMMIT (the writes flushed first, so that
        a locked database or a constraint shows here) nothing was changed; a connection lost
        during COMMIT may or may not have committed, and the error says so. On SQLite the
        process's transactions take turns (`writer`): keep slow work (hashing) outside.
        """
        async with self._turn(), self.sessions() as session:
            with _faults_as_unavailable():
                yield session
                await session.flush()
            with _faults_as_unavailable(committing=True):
                await session.commit()

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """This task's turn at writing (SQLite), waited for as long as SQLite's busy timeout;
        a transaction inside another's (the same task) already has it."""
        if self.writer is None or _HAS_TURN.get():
            yield
            return
        try:
            await asyncio.wait_for(self.writer.acquire(), store_db.SQLITE_BUSY_TIMEOUT_MS / 1000)
        except TimeoutError:
            raise Unavailable(
                "the database is busy with other writes; nothing was changed, try again"
            ) from None
        token = _HAS_TURN.set(True)
        try:
            yield
        finally:
            _HAS_TURN.reset(token)
            self.writer.release()

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        with _faults_as_unavailable():
            async with self.sessions() as session:
                yield session


@contextmanager
def _faults_as_unavailable(*, committing: bool = False) -> Iterator[None]:
    """SQLite locked by another process past the busy timeout, or the database connection
    lost (PostgreSQL restarting): clear, typed errors. A transaction cut off this way was
    rolled back by the database (SQLite refuses a COMMIT it cannot make with "database is
    locked" and keeps the transaction, which is then rolled back), unless the connection was
    lost during its COMMIT: then nobody knows, and the error says so."""
    try:
        yield
    except OperationalError as error:
        if "database is locked" not in str(error.orig):
            if is_connection_loss(error):
                raise _connection_lost(committing) from error
            raise
        raise Unavailable(
            "the database is locked by another process; nothing was changed, try again"
        ) from error
    except Exception as error:
        if is_connection_loss(error):
            raise _connection_lost(committing) from error
        raise


def _connection_lost(committing: bool) -> Unavailable:
    if committing:
        return Unavailable(
            "the database connection was lost while committing: the change may or may not"
            " have been saved; look before trying again"
        )
    return Unavailable("the database connection was lost; try again", retryable=True)


@dataclass
class Context:
    """Per request (or per WebSocket connection): the caller and the services."""

    services: Services
    request: Request | WebSocket
    response: Response | WebSocket | None = None
    connection_params: dict[str, Any] | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    # The verified access token's claims, once `user()` has read one.
    claims: AccessClaims | None = None
    # The API key the request came with (`Authorization: ApiKey ...`), once `user()` read it.
    api_key: key_store.ApiKey | None = None
    # An HTTP request reads through one session (`reader`); a socket's context lives as long
    # as the socket, so it opens one per read instead.
    shares_session: bool = False
    _user: auth_store.User | None = None
    _user_loaded: bool = False
    _session: AsyncSession | None = None
    _session_lock: asyncio.Lock | None = None
    _retired: list[AsyncSession] = field(default_factory=list)

    @property
    def loaders(self) -> Loaders:
        """Per request. A WebSocket connection's context lives as long as the connection:
        there each use gets fresh loaders, so that nothing one operation loaded is answered
        to the next (subscriptions read through the store)."""
        if not self.shares_session:
            return Loaders(self.reader, self.services.prices, self.services.series)
        found = self.__dict__.get("_loaders")
        if found is None:
            found = self.__dict__["_loaders"] = Loaders(
                self.reader, self.services.prices, self.services.series
            )
        return found

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """The request's read session: one for every read of an HTTP request, opened on first
        use and closed with the request (`close`), used by one reader at a time. Never nest
        two `reader()` blocks (or a DataLoader's load inside one): the second would wait for
        the first."""
        if not self.shares_session:
            async with self.services.reader() as session:
                yield session
            return
        if self._session_lock is None:
            self._session_lock = asyncio.Lock()
        async with self._session_lock:
            if self._session is None:
                self._session = self.services.sessions()
            with _faults_as_unavailable():
                yield self._session

    async def close(self) -> None:
        """End the request's read session (its transaction rolls back: it wrote nothing)."""
        sessions = [*self._retired, *([self._session] if self._session is not None else [])]
        self._session, self._retired = None, []
        for session in sessions:
            with contextlib.suppress(Exception):  # a lost connection has nothing to close
                await session.close()

    @classmethod
    def anonymous(cls, services: Services, request: Request | WebSocket) -> Context:
        """A context acting for nobody, whatever `request` carries (a shared stream's)."""
        return cls(services=services, request=request, _user_loaded=True)

    def prepare_retry(self) -> None:
        """Before the same operation runs again: fresh DataLoaders (they may hold the failure),
        and the request budgets already charged once."""
        self.__dict__.pop("_loaders", None)
        if self._session is not None:  # its connection was lost: the retry takes a new one
            self._retired.append(self._session)
            self._session = None
        self.cache["retry"] = True

    def credentials(self) -> tuple[str, str] | None:
        """The scheme ("bearer" or "apikey") and credential of the Authorization header, or of
        connection_init's payload; None when there is none."""
        header = self.request.headers.get("authorization")
        if header is None and self.connection_params:
            value = self.connection_params.get("Authorization") or self.connection_params.get(
                "authorization"
            )
            header = value if isinstance(value, str) else None
        if header is None:
            return None
        scheme, _, credential = header.partition(" ")
        if scheme.lower() not in ("bearer", "apikey") or not credential.strip():
            raise InvalidToken(
                "the Authorization header must be 'Bearer <access token>' or 'ApiKey <key>'"
            )
        return scheme.lower(), credential.strip()

    def bearer_token(self) -> str | None:
        """The access token sent, if the credential is one."""
        found = self.credentials()
        return found[1] if found is not None and found[0] == "bearer" else None

    @property
    def known_user_id(self) -> uuid.UUID | None:
        """The signed-in user's id if this request has already looked the user up."""
        return self._user.id if self._user_loaded and self._user is not None else None

    def client_address(self) -> str:
        """The peer's address as the server sees it (uvicorn applies trusted proxy headers)."""
        client = self.request.client
        return client.host if client is not None else "unknown"

    def set_retry_after(self, seconds: int, *, status_code: int | None = None) -> None:
        """Tell an HTTP client when to try again; WebSocket messages carry no headers."""
        if isinstance(self.response, Response):
            self.response.headers["Retry-After"] = str(seconds)
            if status_code is not None:
                self.response.status_code = status_code

    def reset_user(self) -> None:
        """Forget the loaded user, so that the next `user()` checks the token again."""
        self._user, self._user_loaded = None, False

    async def _api_key_user(self, key: str) -> auth_store.User:
        """The owner of a live API key; its id stands as the socket session, so revoking the
        key closes the sockets opened with it."""
        prefix = api_key_prefix(key)
        now = self.services.now()
        async with self.services.transaction() as session:
            row = await key_store.find_api_key(session, prefix=prefix, key=key)
            user = None if row is None else await auth_store.get_user(session, user_id=row.owner_id)
            if row is not None:
                await key_store.touch_api_key(session, key_id=row.id, now=now)
        if row is None or user is None:
            raise InvalidToken("API key is invalid or revoked")
        self.api_key = row
        self.claims = AccessClaims(
            user_id=user.id, session_id=row.id, expires_at=API_KEY_NEVER_EXPIRES
        )
        return user

    async def user(self) -> auth_store.User | None:
        """The signed-in user, or None when anonymous; `InvalidToken` for a bad token.

        A token stays valid only while its login session has not been logged out or revoked.
        """
        if self._user_loaded:
            return self._user
        found = self.credentials()
        user = None
        if found is not None and found[0] == "apikey":
            user = await self._api_key_user(found[1])
        elif found is not None:
            claims = read_access_token(self.services.secret_key, found[1], now=self.services.now())
            async with self.services.reader() as session:
                user = await auth_store.get_user(session, user_id=claims.user_id)
                active = await auth_store.is_family_active(session, family_id=claims.session_id)
            if user is None or not active:
                raise InvalidToken("access token is invalid or expired")
            self.claims = claims
        self._user, self._user_loaded = user, True
        return user
