"""GraphQL over WebSocket: every operation authorized when it starts, bounded messages, and
shared public streams.

Both protocols (graphql-transport-ws and the legacy graphql-ws) check the connection's token
again before each operation: a socket whose login was revoked or whose token expired is closed
with 4403 instead of acting for its user (coinql.realtime.sessions closes it even sooner). A
`subscribe` payload is held to the same document-size limit as an HTTP request, and a payload
without a string query gets an error message.

A subscription whose root fields are all public live streams (`prices`, `candles`) joins the
process's `SharedStream` for its (document, variables, operation name): the selection runs once
per event for all of them and each subscriber receives the same serialized payload under its own
operation id. Everything that is per subscriber stays per subscriber: the per-connection and
per-user limits, the subscription gauge, the token re-check that closes the socket with 4403,
a conflating mailbox and a sender of its own. Other subscriptions, and queries or mutations
sent over the socket, run as strawberry runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from functools import lru_cache

import orjson
from graphql import FieldNode, GraphQLSyntaxError, OperationType, get_operation_ast, parse
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    NextMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws import types as legacy
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from coinql.documents import document_problem
from coinql.domain.errors import InvalidToken, UserError
from coinql.realtime.fanout import Message
from coinql.realtime.sessions import LiveSocket
from coinql.resolvers.context import Context, Services
from coinql.resolvers.realtime import SHARED, TOKEN_CHECK_SECONDS, guard_token, tracked
from coinql.settings import Settings

SHAREABLE_FIELDS = frozenset({"prices", "candles"})


@lru_cache(maxsize=256)
def shareable(query: str, operation_name: str | None) -> bool:
    """True for a subscription that selects only public live streams at its root."""
    try:
        operation = get_operation_ast(parse(query), operation_name)
    except GraphQLSyntaxError:
        return False
    return (
        operation is not None
        and operation.operation is OperationType.SUBSCRIPTION
        and all(
            isinstance(selection, FieldNode) and selection.name.value in SHAREABLE_FIELDS
            for selection in operation.selection_set.selections
        )
    )


SOCKET_STATE = "coinql.socket"


class SocketState:
    """One socket's standing, kept in its ASGI scope from the handshake to its end: PENDING
    until connection_init, then ANONYMOUS or signed in (with its LiveSocket). Pending and
    anonymous sockets are counted per client address, each capped at
    COINQL_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS."""

    PENDING, ANONYMOUS, SIGNED_IN = "pending", "anonymous", "signed-in"

    def __init__(self, address: str) -> None:
        self.address = address
        self.stage = ""
        self.live: LiveSocket | None = None

    def enter(self, services: Services, stage: str) -> bool:
        """Move to `stage`; False (staying where it is) when that stage is full here."""
        counts = services.sockets_by_address
        if stage != self.SIGNED_IN:
            cap = services.settings.max_anonymous_sockets_per_address
            if counts.get((stage, self.address), 0) >= cap:
                return False
            counts[(stage, self.address)] = counts.get((stage, self.address), 0) + 1
        self.leave(services)
        self.stage = stage
        return True

    def leave(self, services: Services) -> None:
        key = (self.stage, self.address)
        if self.stage and self.stage != self.SIGNED_IN:
            left = services.sockets_by_address.get(key, 1) - 1
            if left > 0:
                services.sockets_by_address[key] = left
            else:
                services.sockets_by_address.pop(key, None)
        self.stage = ""
        if self.live is not None:
            services.live_sessions.discard(self.live)
            self.live = None


def too_many_sockets(settings: Settings) -> str:
    return (
        f"at most {settings.max_anonymous_sockets_per_address} sockets per address before"
        " signing in (COINQL_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS)"
    )


async def admitted(context: Context, payload: object) -> bool:
    """At connection_init: a socket that brings no token takes an anonymous place, if its
    address has one left; else it is closed with 4429."""
    state: SocketState | None = context.request.scope.get(SOCKET_STATE)
    if state is None or (isinstance(payload, dict) and _brings_token(payload)):
        return True
    if state.enter(context.services, SocketState.ANONYMOUS):
        return True
    websocket = context.request
    assert isinstance(websocket, WebSocket)
    await websocket.close(code=4429, reason=too_many_sockets(context.services.settings))
    return False


def _brings_token(payload: dict[str, object]) -> bool:
    return any(payload.get(name) for name in ("Authorization", "authorization"))


def payload_problem(payload: object, settings: Settings) -> str | None:
    """What is wrong with a subscribe/start payload, or None: a query that is not a string, or
    a document refused as it would be over HTTP (size, tokens, which operation)."""
    query = payload.get("query") if isinstance(payload, dict) else None
    if not isinstance(query, str):
        return "the payload's query must be a string holding a GraphQL document"
    name = payload.get("operationName") if isinstance(payload, dict) else None
    problem = document_problem(
        query, name if isinstance(name, str) else None, settings=settings, streams=True
    )
    return problem.message if problem is not None else None


async def authorized(context: Context) -> bool:
    """The connection's token checked again as an operation starts; False (and the socket
    closed with 4403) once it has expired or its session was revoked."""
    try:
        await guard_token(context)
    except InvalidToken:
        return False
    return True


class FanOutHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if not self.connection_init_received and not await admitted(
            self.context, message.get("payload")
        ):
            return
        await super().handle_connection_init(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        problem = payload_problem(message.get("payload"), self.context.services.settings)
        if problem is not None and self.connection_acknowledged and "id" in message:
            error: ErrorMessage = {
                "id": message["id"],
                "type": "error",
                "payload": [{"message": problem}],
            }
            await self.send_message(error)
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        if not await authorized(self.context):
            return
        settings = self.context.services.settings
        if not (
            settings.shared_subscriptions and shareable(operation.query, operation.operation_name)
        ):
            await super().run_operation(operation)
            return
        try:
            await self._run_shared(operation)
        except (WebSocketDisconnect, WebSocketDisconnected, InvalidToken):
            return  # the client went, or its token did (the socket is closed with 4403)

    async def _run_shared(self, operation: Operation[Context, None]) -> None:
        context = self.context
        try:
            user = await context.user()
            async with tracked(context, user.id if user else None):
                await self._relay(operation)
        except UserError as error:  # over the per-user limit
            refused: NextMessage = {
                "id": operation.id,
                "type": "next",
                "payload": {"data": None, "errors": [{"message": error.message}]},
            }
            await operation.send_operation_message(refused)
        await operation.send_operation_message({"id": operation.id, "type": "complete"})

    async def _relay(self, operation: Operation[Context, None]) -> None:
        """The shared stream's messages, under this operation's id, until it completes."""
        assert isinstance(self.websocket, ASGIWebSocketAdapter)
        socket = self.websocket.ws
        key = (
            operation.query,
            orjson.dumps(operation.variables, option=orjson.OPT_SORT_KEYS),
            operation.operation_name,
        )
        fanout = self.context.services.fanout
        stream, mailbox = fanout.join(key, lambda: self._upstream(operation))
        head = '{"id":' + orjson.dumps(operation.id).decode() + ',"type":"'
        checked = time.monotonic()
        try:
            while True:
                kind, payload = await mailbox.get()
                if kind == "complete":
                    return
                if time.monotonic() - checked > TOKEN_CHECK_SECONDS:
                    await guard_token(self.context)
                    checked = time.monotonic()
                if kind == "error":
                    operation.completed = True
                    self.forget_id(operation.id)
                await socket.send_text(f'{head}{kind}","payload":{payload}}}')
                if kind == "error":
                    return
        finally:
            await fanout.leave(stream, mailbox)

    async def _upstream(self, operation: Operation[Context, None]) -> AsyncIterator[Message]:
        """Run the operation once for every member: as nobody in particular (the streams are
        public), each result serialized once."""
        context = Context.anonymous(self.context.services, self.context.request)
        context.cache[SHARED] = True
        results = await self.schema.stream(
            operation.query,
            variable_values=operation.variables,
            context_value=context,
            operation_name=operation.operation_name,
        )
        async with aclosing(results):
            async for result in results:
                if isinstance(result, PreExecutionError):
                    errors = [error.formatted for error in result.errors or ()]
                    yield "error", _text(self.view.encode_json(errors))
                    return
                assert isinstance(result, ExecutionResult)
                payload: dict[str, object] = {"data": result.data}
                if result.errors:
                    payload["errors"] = [error.formatted for error in result.errors]
                if result.extensions:
                    payload["extensions"] = result.extensions
                yield "next", _text(self.view.encode_json(payload))


class LegacyHandler(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol, held to the same rules: a connection_init within
    COINQL_WS_INIT_TIMEOUT_SECONDS (else 4408), a bounded string query, and the token checked
    again as each subscription starts."""

    async def handle(self) -> None:
        timeout = self.context.services.settings.ws_init_timeout_seconds
        watchdog = asyncio.create_task(self._close_unless_initialised(timeout))
        try:
            await super().handle()
        finally:
            watchdog.cancel()

    async def _close_unless_initialised(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        if not self.connection_acknowledged:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_connection_init(self, message: legacy.ConnectionInitMessage) -> None:
        if not self.connection_acknowledged and not await admitted(
            self.context, message.get("payload")
        ):
            return
        await super().handle_connection_init(message)

    async def handle_start(self, message: legacy.StartMessage) -> None:
        problem = payload_problem(message.get("payload"), self.context.services.settings)
        if problem is not None and self.connection_acknowledged:
            error: legacy.ErrorMessage = {
                "type": "error",
                "id": message.get("id", ""),
                "payload": {"message": problem},
            }
            await self.send_message(error)
            return
        if self.connection_acknowledged and not await authorized(self.context):
            return
        await super().handle_start(message)


def _text(encoded: str | bytes) -> str:
    return encoded if isinstance(encoded, str) else encoded.decode()
