"""The GraphQL schema: root types merged from one class per area."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import strawberry
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from coinql.schema import backtest, market
from coinql.schema.analytics import AnalyticsQuery
from coinql.schema.backtest import BacktestMutation, BacktestQuery
from coinql.schema.errors import exception_handlers
from coinql.schema.extensions import OperationMetrics, UserErrorCodes, mask_unexpected_errors
from coinql.schema.market import MarketMutation, MarketQuery
from coinql.schema.portfolio import PortfolioMutation, PortfolioQuery
from coinql.schema.realtime import RealtimeMutation, RealtimeQuery, Subscription
from coinql.schema.scalars import SCALAR_MAP
from coinql.schema.server import AuthMutation, ServerQuery
from coinql.schema.strategies import StrategyMutation, StrategyQuery

Query = merge_types(
    "Query",
    (
        ServerQuery,
        MarketQuery,
        AnalyticsQuery,
        PortfolioQuery,
        StrategyQuery,
        BacktestQuery,
        RealtimeQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AuthMutation,
        MarketMutation,
        PortfolioMutation,
        StrategyMutation,
        BacktestMutation,
        RealtimeMutation,
    ),
)


@cache
def build_schema(*, production: bool = False) -> strawberry.Schema:
    """The schema, built once per mode and process."""
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        OperationMetrics,
        UserErrorCodes,
        # The same documents arrive again and again (a dashboard's queries, 1,000 identical
        # subscriptions): parse and validate each once.
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]
    if production:
        extensions.append(mask_unexpected_errors)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        exception_handlers=exception_handlers(market.ERROR_TYPES, backtest.ERROR_TYPES),
    )


def export_sdl() -> str:
    """The schema as SDL, as kept in `schema.graphql` at the repository root."""
    return build_schema().as_str() + "\n"


__all__ = ["build_schema", "export_sdl"]
