"""graphql-transport-ws with shared public streams.

A subscription whose root fields are all public live streams (`prices`, `candles`) joins the
process's `SharedStream` for its (document, variables, operation name): the selection runs once
per event for all of them and each subscriber receives the same serialized payload under its own
operation id. Everything that is per subscriber stays per subscriber: the per-connection and
per-user limits, the subscription gauge, the token re-check that closes the socket with 4403,
a conflating mailbox and a sender of its own. Other subscriptions, and queries or mutations
sent over the socket, run as strawberry runs them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from functools import lru_cache

import orjson
from graphql import FieldNode, GraphQLSyntaxError, OperationType, get_operation_ast, parse
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import NextMessage
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from coinql.domain.errors import InvalidToken, UserError
from coinql.realtime.fanout import Message
from coinql.resolvers.context import Context
from coinql.resolvers.realtime import SHARED, TOKEN_CHECK_SECONDS, guard_token, tracked

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


class FanOutHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def run_operation(self, operation: Operation[Context, None]) -> None:
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


def _text(encoded: str | bytes) -> str:
    return encoded if isinstance(encoded, str) else encoded.decode()
