"""Request budgets: each operation spends its query cost from the caller's budget per user and
per client address (COINQL_RATE_LIMIT_*); over either, it is refused with `RateLimited`."""

from __future__ import annotations

import math
from typing import NoReturn

from coinql.domain.errors import RateLimited, UserError
from coinql.resolvers.context import Context


async def spend(context: Context, cost: int) -> None:
    services = context.services
    settings = services.settings
    budgets = {
        f"address:{context.client_address()}": (settings.rate_limit_cost_per_address, "address")
    }
    try:
        user = await context.user()
    except UserError:  # a bad token: execution reports it; the address still pays
        user = None
    if user is not None:
        budgets[f"user:{user.id}"] = (settings.rate_limit_cost_per_user, "user")
    if context.api_key is not None:
        budgets[f"key:{context.api_key.id}"] = (settings.rate_limit_cost_per_key, "key")
    window = settings.rate_limit_window_seconds
    refused = await services.throttle.spend(
        [(key, limit) for key, (limit, _) in budgets.items()], max(cost, 1), window=window
    )
    if refused is not None:  # and nothing was spent from either budget
        key, wait = refused
        limit, per = budgets[key]
        refuse(
            context,
            wait,
            reason=f"rate_limit_{per}",
            message=f"the request budget per {per} ({limit:,} cost per {window:g} s,"
            f" COINQL_RATE_LIMIT_COST_PER_{per.upper()}) is spent",
            status_code=429,
        )


def refuse(
    context: Context, wait: float, *, reason: str, message: str, status_code: int | None = None
) -> NoReturn:
    """Raise `RateLimited` for `wait` seconds (whole, at least 1), with `Retry-After` on HTTP,
    counted under `reason` in the rejections metric."""
    seconds = max(1, math.ceil(wait))
    context.set_retry_after(seconds, status_code=status_code)
    context.services.metrics.rejections.labels(reason).inc()
    raise RateLimited(f"{message}; try again in {seconds} s", retry_after=seconds)
