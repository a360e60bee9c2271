"""Permission classes. They raise domain errors, so a mutation whose result union lists
`NotAuthenticated` or `Forbidden` returns them as data; elsewhere they reach `errors`.

They raise from `has_permission` itself rather than keep state for `on_unauthorized`: one
instance serves concurrent requests.
"""

from __future__ import annotations

from typing import Any

from graphql import OperationType
from strawberry.permission import BasePermission
from strawberry.types import Info

from coinql.domain.auth import ApiScope
from coinql.domain.errors import Forbidden
from coinql.resolvers.auth import require_admin, require_user
from coinql.resolvers.context import Context

# What a READ-scoped API key may change: research of its own, nothing that moves money or
# touches credentials. Every other mutation needs a session or a TRADE key, so a mutation
# added later is closed to READ keys until it is listed here.
READ_SCOPE_MUTATIONS = frozenset(
    {
        "createStrategy",
        "deleteStrategy",
        "runBacktest",
        "runSweep",
        "runWalkForward",
        "runSimulation",
        "backtestFile",
        "cancelJob",
        "deleteBacktestRun",
        "createIndex",
        "deleteIndex",
    }
)


def check_scope(info: Info[Context, None]) -> None:
    """Refuse a mutation that a READ-scoped API key may not run (`Forbidden`)."""
    key = info.context.api_key
    if (
        key is not None
        and ApiScope.TRADE.value not in key.scopes
        and info.operation.operation is OperationType.MUTATION
        and info.path.prev is None
        and info.field_name not in READ_SCOPE_MUTATIONS
    ):
        raise Forbidden(f"this API key has the READ scope: {info.field_name} needs TRADE")


class IsAuthenticated(BasePermission):
    async def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        await require_user(info.context)
        check_scope(info)
        return True


class IsAdmin(BasePermission):
    async def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        await require_admin(info.context)
        check_scope(info)
        return True
