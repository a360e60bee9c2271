"""The GraphQL endpoint: strawberry's ASGI view with coinql's context, orjson encoding, and one
set of limits for every transport.

Over HTTP, JSON and multipart bodies alike: a body is bounded before it is read (anonymous
requests by COINQL_MAX_ANONYMOUS_BODY_BYTES, signed-in ones by COINQL_IMPORT_MAX_BYTES), then
each operation's document by COINQL_MAX_DOCUMENT_BYTES and a batch by
COINQL_MAX_BATCH_OPERATIONS, and the whole request by COINQL_REQUEST_TIMEOUT_SECONDS. A body that
is not a GraphQL request (JSON `null`, a number, nested arrays, a file map pointing nowhere) is a
400 that says what is wrong. A multipart request must carry a header a browser cannot send
cross-site without a preflight (`Apollo-Require-Preflight` or `X-Requested-With`).

Over WebSocket (coinql.transport): the same document limit for each payload, anonymous sockets
capped per client address, and each socket acting for a user tracked by coinql.realtime.sessions,
which closes it at the token's expiry or when its session is revoked.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter
from cross_web import HTTPException as StrawberryHTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from coinql.documents import document_problem
from coinql.domain.auth import read_access_token
from coinql.domain.errors import InvalidToken
from coinql.resolvers.context import Context, Services
from coinql.settings import Settings
from coinql.transport import (
    SOCKET_STATE,
    FanOutHandler,
    LegacyHandler,
    SocketState,
    too_many_sockets,
)
from coinql.web import WebBuild

ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-requested-with")
DEADLINE = "coinql.deadline"  # the request's asyncio.Timeout, in its scope
CONTEXT = "coinql.context"  # the request's Context, in its scope


class BodyTooLarge(Exception):
    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(f"the request body is over {limit:,} bytes ({setting})")


def error_response(status_code: int, message: str, *, code: str | None = None) -> JSONResponse:
    error: dict[str, object] = {"message": message}
    if code is not None:
        error["extensions"] = {"code": code}
    return JSONResponse({"errors": [error]}, status_code=status_code)


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class CoinqlGraphQL(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = FanOutHandler
    graphql_ws_handler_class = LegacyHandler

    def __init__(self, schema: Any, settings: Settings, **options: Any) -> None:
        super().__init__(
            schema,
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
            **options,
        )
        self.settings = settings

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the dashboard's build, never strawberry's page (it loads from a CDN)."""
        return WebBuild.of(self.settings).page("graphiql.html", "GraphiQL page")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services: Services = scope["app"].state.services
        if scope["type"] == "websocket":
            await self._serve_socket(services, scope, receive, send)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        settings = services.settings
        limit, setting = self._body_limit(services, scope)
        request = Request(scope, receive=_bounded(receive, limit, setting))
        timeout = settings.request_timeout_seconds
        try:
            if _declared_length(request) > limit:
                raise BodyTooLarge(limit, setting)
            async with asyncio.timeout(timeout) as deadline:
                scope[DEADLINE] = deadline
                response = await self.run(request)
        except StrawberryHTTPException as error:
            response = error_response(error.status_code, error.reason)
        except BodyTooLarge as error:
            response = error_response(413, str(error))
        except TimeoutError:  # cancelled at its next await: open transactions roll back
            response = error_response(
                504,
                f"the request took longer than {timeout:g} s (COINQL_REQUEST_TIMEOUT_SECONDS)",
                code="TIMEOUT",
            )
        finally:
            context: Context | None = scope.pop(CONTEXT, None)
            if context is not None:
                await context.close()
            await request.close()  # uploaded files, even those no resolver read
        await response(scope, receive, send)

    @staticmethod
    def _body_limit(services: Services, scope: Scope) -> tuple[int, str]:
        """A request whose bearer token verifies may send up to an import's size; any other
        only what a document and its variables need. (The token is checked in full later.)"""
        settings = services.settings
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode(
            "latin-1"
        )
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            try:
                read_access_token(services.secret_key, token.strip(), now=services.now())
            except InvalidToken:
                pass
            else:  # an import's file, with room for its document and the multipart framing
                limit = settings.import_max_bytes + settings.max_anonymous_body_bytes
                return limit, "COINQL_IMPORT_MAX_BYTES"
        return settings.max_anonymous_body_bytes, "COINQL_MAX_ANONYMOUS_BODY_BYTES"

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Strawberry's parsing, with every malformed body a 400 that says why, and each
        operation held to the document and batch limits before anything runs."""
        settings = self.settings
        content_type = (request.content_type or "").split(";")[0].strip()
        if content_type == "multipart/form-data" and not any(
            request.headers.get(name) for name in PREFLIGHT_HEADERS
        ):
            raise StrawberryHTTPException(
                400,
                "a multipart request needs an Apollo-Require-Preflight or X-Requested-With"
                " header (a browser cannot send either cross-site without a preflight)",
            )
        try:
            parsed = await super().parse_http_body(request)
        except (AttributeError, TypeError, IndexError) as error:
            raise StrawberryHTTPException(400, _shape_problem(error)) from None
        operations = parsed if isinstance(parsed, list) else [parsed]
        for operation in operations:
            if not isinstance(operation.query, str | None):
                raise StrawberryHTTPException(400, "each operation's query must be a string")
            problem = document_problem(
                operation.query or "",
                operation.operation_name,
                settings=settings,
                streams=operation.protocol != "http",  # multipart subscriptions stream
            )
            if problem is not None:
                raise StrawberryHTTPException(problem.status_code, problem.message)
        return parsed

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> Any:
        """A batch past the request timeout answers each operation truthfully: those that
        finished with their results (their writes are committed), the others cancelled with a
        TIMEOUT error each, instead of one 504 that hides what was done."""
        deadline: asyncio.Timeout | None = request.scope.get(DEADLINE)
        if not isinstance(request_data, list) or deadline is None:
            return await super().execute_operation(
                request, request_adapter, request_data, context, root_value, sub_response
            )
        when = deadline.when()
        deadline.reschedule(None)  # this batch keeps the time itself
        tasks = [
            asyncio.ensure_future(
                self.execute_single(
                    request=request,
                    request_adapter=request_adapter,
                    sub_response=sub_response,
                    context=context,
                    root_value=root_value,
                    request_data=data,
                )
            )
            for data in request_data
        ]
        loop = asyncio.get_running_loop()
        left = None if when is None else max(0.0, when - loop.time())
        _, pending = await asyncio.wait(tasks, timeout=left)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        timeout = self.settings.request_timeout_seconds
        return [
            task.result()
            if task not in pending
            else ExecutionResult(
                data=None,
                errors=[
                    GraphQLError(
                        f"this operation did not finish within {timeout:g} s"
                        " (COINQL_REQUEST_TIMEOUT_SECONDS) and was cancelled; what it had not"
                        " committed was rolled back",
                        extensions={"code": "TIMEOUT"},
                    )
                ],
            )
            for task in tasks
        ]

    def _validate_batch_request(self, request_data: list[Any], protocol: Any) -> None:
        limit = self.settings.max_batch_operations
        if len(request_data) > limit:
            raise StrawberryHTTPException(
                400,
                f"a batch holds at most {limit} operations, this one {len(request_data)}"
                " (COINQL_MAX_BATCH_OPERATIONS)",
            )
        super()._validate_batch_request(request_data, protocol)

    def parse_json(self, data: str | bytes) -> Any:
        value = orjson.loads(data)
        if isinstance(value, dict):
            return value
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            return value
        raise StrawberryHTTPException(
            400,
            "the body must be a GraphQL request: a JSON object with a query, or a non-empty"
            f" array of such objects (a batch), not {_json_kind(value)}",
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        context = Context(
            services=request.app.state.services,
            request=request,
            response=response,
            shares_session=isinstance(request, Request),
        )
        if isinstance(request, Request):  # its read session is closed with the request
            request.scope[CONTEXT] = context
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Check the token of connection_init's payload: a bad one closes the socket (4403).
        A signed-in socket no longer counts as anonymous, and is closed when its token
        expires or its session is revoked."""
        try:
            user = await context.user()
        except InvalidToken as error:
            raise ConnectionRejectionError({"message": error.message}) from None
        state: SocketState | None = context.request.scope.get(SOCKET_STATE)
        claims = context.claims
        if user is not None and state is not None:
            services = context.services
            state.enter(services, SocketState.SIGNED_IN)
            websocket = context.request
            assert isinstance(websocket, WebSocket)

            async def close(reason: str) -> None:
                await websocket.close(code=4403, reason=reason)

            state.live = services.live_sessions.open(
                user_id=user.id,
                session_id=claims.session_id if claims else None,
                expires_at=claims.expires_at if claims else None,
                now=services.now(),
                close=close,
            )
        unset: UnsetType = UNSET
        return unset

    async def _serve_socket(
        self, services: Services, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Until connection_init, a socket holds a pending place of its address: past the
        cap, it is accepted only to be closed with 4429 and the reason."""
        state = SocketState(_client_address(scope))
        if not state.enter(services, SocketState.PENDING):
            websocket = WebSocket(scope, receive, send)
            protocols = [p for p in websocket.scope.get("subprotocols", ()) if p]
            await websocket.accept(subprotocol=protocols[0] if protocols else None)
            await websocket.close(code=4429, reason=too_many_sockets(services.settings))
            return
        scope[SOCKET_STATE] = state
        try:
            await super().__call__(scope, receive, send)
        finally:
            state.leave(services)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: WebSocket clients expect text frames.
        return orjson.dumps(data, option=ORJSON_OPTIONS).decode()

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)


def _bounded(receive: Receive, limit: int, setting: str) -> Receive:
    """`receive`, refusing a body that grows past `limit` bytes as it arrives (a missing or
    false Content-Length changes nothing)."""
    received = 0

    async def bounded() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit, setting)
        return message

    return bounded


def _declared_length(request: Request) -> int:
    """The Content-Length the client declared (0 when none or not a number: the body is
    counted as it arrives either way)."""
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else 0


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an empty array" if not value else "an array holding something else than objects"
    return f"a JSON {type(value).__name__.replace('str', 'string').replace('int', 'number')}"


def _shape_problem(error: Exception) -> str:
    if isinstance(error, IndexError | TypeError):
        return "the multipart map points at a place the operations do not have"
    return "the body is not a GraphQL request (a JSON object with a query, or an array of them)"
