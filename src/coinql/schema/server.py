"""Server info and authentication: `serverInfo`, `me`, `register`, `login`, `refreshToken`,
`logout`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Self

import strawberry
from strawberry import relay
from strawberry.types import Info

from coinql.resolvers import auth as auth_resolvers
from coinql.resolvers import server as server_resolvers
from coinql.resolvers.context import Context
from coinql.schema.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidInput,
    InvalidToken,
    RateLimited,
    WeakPassword,
)
from coinql.store import auth as auth_store


@strawberry.type(description="Which parts this deployment runs on.")
class ServerInfo:
    version: str
    database: str = strawberry.field(description='"sqlite" or "postgresql".')
    broadcast: str = strawberry.field(description='"memory" or "redis".')
    job_queue: str = strawberry.field(description='"in-process" or "redis".')
    data_source: str = strawberry.field(
        description='Where market data comes from: "demo" (synthetic, not market prices), an'
        ' exchange id such as "binance", or "import" (only imported files).'
    )
    live_symbols: list[str] = strawberry.field(
        description="The coins the live feed publishes: what the `prices` and `candles`"
        " subscriptions accept. Empty when no feed runs."
    )

    @classmethod
    def from_model(cls, info: server_resolvers.ServerDescription) -> Self:
        return cls(
            version=info.version,
            database=info.database,
            broadcast=info.broadcast,
            job_queue=info.job_queue,
            data_source=info.data_source,
            live_symbols=info.live_symbols,
        )


@strawberry.type
class User(relay.Node):
    id: relay.NodeID[str]
    email: str
    is_admin: bool

    @classmethod
    def from_model(cls, user: auth_store.User) -> Self:
        return cls(id=str(user.id), email=user.email, is_admin=user.is_admin)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        """A user is visible to themself only; anyone else's id resolves to null."""
        me = await info.context.user()
        return [
            cls.from_model(me) if me and str(me.id) == node_id else None for node_id in node_ids
        ]


@strawberry.type(description="Tokens for a signed-in user.")
class AuthPayload:
    access_token: str = strawberry.field(description="A JWT to send as 'Bearer <token>'.")
    refresh_token: str = strawberry.field(description="Single use: `refreshToken` rotates it.")
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    user: User

    @classmethod
    def from_model(cls, issued: auth_resolvers.IssuedTokens) -> Self:
        return cls(
            access_token=issued.access_token,
            refresh_token=issued.refresh_token,
            expires_in=issued.expires_in,
            user=User.from_model(issued.user),
        )


RegisterResult = Annotated[
    AuthPayload | InvalidInput | WeakPassword | EmailTaken | RateLimited,
    strawberry.union("RegisterResult"),
]
LoginResult = Annotated[
    AuthPayload | InvalidCredentials | RateLimited, strawberry.union("LoginResult")
]
RefreshResult = Annotated[AuthPayload | InvalidToken, strawberry.union("RefreshResult")]


@strawberry.type
class ServerQuery:
    @strawberry.field(description="Version and the backends this deployment runs on.")
    def server_info(self, info: Info[Context, None]) -> ServerInfo:
        return ServerInfo.from_model(server_resolvers.describe(info.context))

    @strawberry.field(description="The signed-in user; null when anonymous.")
    async def me(self, info: Info[Context, None]) -> User | None:
        user = await info.context.user()
        return User.from_model(user) if user else None

    @strawberry.field(description="Fetch an entity by its global id; null if absent or not yours.")
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> relay.Node | None:
        try:
            node: relay.Node | None = await relay.GlobalID.from_id(id).resolve_node(
                info, required=False
            )
        except (ValueError, KeyError):  # not a global id, or one of a type that is not a Node
            return None
        return node


@strawberry.type
class AuthMutation:
    @strawberry.mutation(
        description="Create an account (password: at least 10 characters). Sign-ups are"
        " limited per client address (COINQL_REGISTRATIONS_PER_ADDRESS per login window)."
    )
    async def register(
        self, info: Info[Context, None], email: str, password: str
    ) -> RegisterResult | None:
        issued = await auth_resolvers.register(info.context, email=email, password=password)
        return AuthPayload.from_model(issued)

    @strawberry.mutation(description="Sign in with email and password.")
    async def login(
        self, info: Info[Context, None], email: str, password: str
    ) -> LoginResult | None:
        issued = await auth_resolvers.login(info.context, email=email, password=password)
        return AuthPayload.from_model(issued)

    @strawberry.mutation(description="Exchange a refresh token for new tokens (single use).")
    async def refresh_token(
        self, info: Info[Context, None], refresh_token: str
    ) -> RefreshResult | None:
        issued = await auth_resolvers.refresh(info.context, refresh_token=refresh_token)
        return AuthPayload.from_model(issued)

    @strawberry.mutation(
        description="End the login session of this refresh token; false if it was not live."
    )
    async def logout(self, info: Info[Context, None], refresh_token: str) -> bool | None:
        return await auth_resolvers.logout(info.context, refresh_token=refresh_token)
