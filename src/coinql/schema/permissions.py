"""Permission classes. They raise domain errors, so a mutation whose result union lists
`NotAuthenticated` or `Forbidden` returns them as data; elsewhere they reach `errors`.

They raise from `has_permission` itself rather than keep state for `on_unauthorized`: one
instance serves concurrent requests.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from coinql.resolvers.auth import require_admin, require_user
from coinql.resolvers.context import Context


class IsAuthenticated(BasePermission):
    async def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        await require_user(info.context)
        return True


class IsAdmin(BasePermission):
    async def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        await require_admin(info.context)
        return True
