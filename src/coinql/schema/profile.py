"""The caller's profile, password, audit log and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from strawberry.types import Info

from coinql.domain.auth import ApiScope
from coinql.resolvers import accounts as account_resolvers
from coinql.resolvers import auth as auth_resolvers
from coinql.resolvers.context import Context
from coinql.schema.bounds import PageSizeArgument
from coinql.schema.errors import (
    EmailTaken,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    NotAuthenticated,
    RateLimited,
    WeakPassword,
)
from coinql.schema.nodes import (
    Connection,
    Deleted,
    DeleteResult,
    OwnedNode,
    decode_cursor,
    decode_id,
    global_id,
    keyset_page,
)
from coinql.schema.permissions import IsAuthenticated
from coinql.schema.server import AuthPayload, User
from coinql.store.api_keys import ApiKey as ApiKeyRow
from coinql.store.api_keys import AuditEntry as AuditRow

AUDIT_CURSOR = "audit"


@strawberry.type(description="One sensitive action, as the audit log keeps it (append-only).")
class AuditEntry:
    action: str = strawberry.field(description="LOGIN, LOGIN_FAILED, PASSWORD_CHANGED, ...")
    target: str | None = strawberry.field(description="What it acted on, where it says.")
    at: datetime
    address: str | None = strawberry.field(description="The client address it came from.")

    @classmethod
    def from_model(cls, entry: AuditRow) -> Self:
        return cls(action=entry.action, target=entry.target, at=entry.at, address=entry.address)


ChangePasswordResult = Annotated[
    AuthPayload | InvalidCredentials | WeakPassword | RateLimited | NotAuthenticated,
    strawberry.union("ChangePasswordResult"),
]


@strawberry.type
class ProfileQuery:
    @strawberry.field(
        description="The caller's audit log, newest first; admins may name a user, or see all.",
        permission_classes=[IsAuthenticated],
    )
    async def audit_log(
        self,
        info: Info[Context, None],
        first: PageSizeArgument = 50,
        after: str | None = None,
        user_id: strawberry.ID | None = None,
    ) -> Connection[AuditEntry] | None:
        entries = await account_resolvers.audit_log(
            info.context,
            first=first + 1,
            after=None if after is None else decode_cursor(after, AUDIT_CURSOR),
            user_id=None if user_id is None else decode_id(user_id, "User"),
        )
        return keyset_page(
            entries,
            AuditEntry.from_model,
            first=first,
            after=after,
            kind=AUDIT_CURSOR,
            key=lambda entry: entry.id or 0,
        )


ChangeEmailResult = Annotated[
    User | InvalidCredentials | EmailTaken | InvalidInput | RateLimited | NotAuthenticated,
    strawberry.union("ChangeEmailResult"),
]
DeleteAccountResult = Annotated[
    Deleted | InvalidCredentials | RateLimited | NotAuthenticated,
    strawberry.union("DeleteAccountResult"),
]


@strawberry.type
class ProfileMutation:
    @strawberry.mutation(
        description="Change the password: every session of the caller is revoked and its"
        " sockets closed; the answer is a new session.",
        permission_classes=[IsAuthenticated],
    )
    async def change_password(
        self, info: Info[Context, None], current_password: str, new_password: str
    ) -> ChangePasswordResult | None:
        issued = await auth_resolvers.change_password(
            info.context, current_password=current_password, new_password=new_password
        )
        return AuthPayload.from_model(issued)

    @strawberry.mutation(
        description="Move the account to another email, confirmed with the password.",
        permission_classes=[IsAuthenticated],
    )
    async def change_email(
        self, info: Info[Context, None], password: str, new_email: str
    ) -> ChangeEmailResult | None:
        user = await auth_resolvers.change_email(
            info.context, password=password, new_email=new_email
        )
        return User.from_model(user)

    @strawberry.mutation(
        description="Delete the account and everything it owns, confirmed with the password;"
        " its sockets close. The audit log keeps the deletion.",
        permission_classes=[IsAuthenticated],
    )
    async def delete_account(
        self, info: Info[Context, None], password: str
    ) -> DeleteAccountResult | None:
        user_id = await auth_resolvers.delete_account(info.context, password=password)
        return Deleted(id=global_id("User", user_id))


@strawberry.type(description="A key for scripts and notebooks: 'Authorization: ApiKey <key>'.")
class ApiKey(OwnedNode):
    name: str
    prefix: str = strawberry.field(description="The key's public part, to tell keys apart.")
    scopes: list[ApiScope]
    created_at: datetime
    last_used_at: datetime | None = strawberry.field(description="To the minute.")
    model: strawberry.Private[ApiKeyRow]

    @classmethod
    def from_model(cls, row: ApiKeyRow) -> Self:
        return cls(
            name=row.name,
            prefix=row.prefix,
            scopes=[ApiScope(scope) for scope in row.scopes],
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            model=row,
        )

    @staticmethod
    async def load_owned(context: Context, key_id: uuid.UUID) -> Any:
        keys = await account_resolvers.list_api_keys(context)
        return next((key for key in keys if key.id == key_id), None)


@strawberry.type(description="A new key, shown in this answer only; afterwards its prefix.")
class CreatedApiKey:
    key: str
    api_key: ApiKey


@strawberry.input
class CreateApiKeyInput:
    name: str
    scopes: list[ApiScope] = strawberry.field(
        description="READ: queries, subscriptions and research runs. TRADE: all a session may."
    )


CreateApiKeyResult = Annotated[
    CreatedApiKey | InvalidInput | Forbidden | NotAuthenticated,
    strawberry.union("CreateApiKeyResult"),
]


@strawberry.type
class ApiKeyQuery:
    @strawberry.field(
        description="The caller's live API keys, newest first.",
        permission_classes=[IsAuthenticated],
    )
    async def api_keys(self, info: Info[Context, None]) -> list[ApiKey]:
        return [
            ApiKey.from_model(row) for row in await account_resolvers.list_api_keys(info.context)
        ]


@strawberry.type
class ApiKeyMutation:
    @strawberry.mutation(
        description="Make an API key (with a session, not with another key).",
        permission_classes=[IsAuthenticated],
    )
    async def create_api_key(
        self, info: Info[Context, None], input: CreateApiKeyInput
    ) -> CreateApiKeyResult | None:
        created = await account_resolvers.create_api_key(
            info.context, name=input.name, scopes=input.scopes
        )
        return CreatedApiKey(key=created.key, api_key=ApiKey.from_model(created.row))

    @strawberry.mutation(
        description="Revoke an API key: it stops working at once, open sockets included.",
        permission_classes=[IsAuthenticated],
    )
    async def revoke_api_key(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeleteResult | None:
        await account_resolvers.revoke_api_key(info.context, key_id=decode_id(id, "ApiKey"))
        return Deleted(id=id)
