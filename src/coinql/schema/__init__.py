"""The GraphQL schema: root types merged from one class per area."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import strawberry
import structlog
from graphql import GraphQLError, get_operation_ast, parse
from graphql import OperationType as GraphQLOperationType
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from coinql.domain.errors import Unavailable
from coinql.resolvers.context import Context
from coinql.schema import accounts, backtest, orders
from coinql.schema.accounts import AccountsMutation, AccountsQuery
from coinql.schema.backtest import BacktestMutation, BacktestQuery
from coinql.schema.bots import BotMutation, BotQuery
from coinql.schema.bounds import CheckedSchema
from coinql.schema.cost import QueryCostLimiter
from coinql.schema.errors import exception_handlers
from coinql.schema.extensions import (
    HideSuggestions,
    OperationMetrics,
    UserErrorCodes,
    log_errors,
    mask_unexpected_errors,
)
from coinql.schema.indices import IndexMutation, IndexQuery
from coinql.schema.ingestion import IngestionMutation, IngestionQuery
from coinql.schema.limits import PreparedDocuments, document_caches, max_directives_per_field
from coinql.schema.market import MarketQuery
from coinql.schema.optimize import OptimizeQuery
from coinql.schema.orders import OrderMutation
from coinql.schema.portfolio import PortfolioMutation, PortfolioQuery
from coinql.schema.profile import ApiKeyMutation, ApiKeyQuery, ProfileMutation, ProfileQuery
from coinql.schema.realtime import (
    BOT_EVENT_TYPES,
    RealtimeMutation,
    RealtimeQuery,
    Subscription,
)
from coinql.schema.risk import RiskQuery
from coinql.schema.scalars import SCALAR_MAP
from coinql.schema.server import AuthMutation, ServerQuery
from coinql.schema.strategies import StrategyMutation, StrategyQuery
from coinql.settings import QueryLimits

log = structlog.get_logger("coinql.schema")

Query = merge_types(
    "Query",
    (
        ServerQuery,
        MarketQuery,
        IngestionQuery,
        RiskQuery,
        PortfolioQuery,
        OptimizeQuery,
        StrategyQuery,
        BacktestQuery,
        RealtimeQuery,
        AccountsQuery,
        ProfileQuery,
        ApiKeyQuery,
        BotQuery,
        IndexQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AuthMutation,
        IngestionMutation,
        PortfolioMutation,
        StrategyMutation,
        BacktestMutation,
        RealtimeMutation,
        AccountsMutation,
        ProfileMutation,
        ApiKeyMutation,
        BotMutation,
        OrderMutation,
        IndexMutation,
    ),
)


DEFAULT_LIMITS = QueryLimits()


def _not_introspection_nesting(context: IgnoreContext) -> bool:
    """Introspection's `ofType` chains are as deep as the type system, not as the client."""
    return context.field_name == "ofType"


@cache
def build_schema(
    *,
    production: bool = False,
    limits: QueryLimits = DEFAULT_LIMITS,
    introspection: bool = True,
) -> strawberry.Schema:
    """The schema, built once per mode, limits and process. In production unexpected errors
    are masked and field suggestions ("did you mean ...?") are off."""
    # The limits' validation rules, built once: strawberry's limiters make a new rule class
    # per instance, and the validation cache is keyed by the rules, so limiters built per
    # request (as extension factories are) would miss it every time.
    rules = [
        *QueryDepthLimiter(
            max_depth=limits.max_depth, should_ignore=_not_introspection_nesting
        ).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
        max_directives_per_field(limits.max_directives_per_field),
    ]
    caches = document_caches(256)
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        OperationMetrics,
        UserErrorCodes,
        # Refused before execution, each naming its limit (see docs and README); each
        # document parsed and validated once.
        lambda: PreparedDocuments(max_tokens=limits.max_tokens, rules=rules, caches=caches),
        lambda: QueryCostLimiter(max_cost=limits.max_cost),
    ]
    if production:
        extensions += [mask_unexpected_errors, HideSuggestions]
    if not introspection:
        extensions.append(DisableIntrospection)
    return RetryingSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=BOT_EVENT_TYPES,
        extensions=extensions,
        config=StrawberryConfig(
            scalar_map=SCALAR_MAP,
            batching_config={"max_operations": limits.max_batch_operations},
            disable_field_suggestions=production,
        ),
        exception_handlers=exception_handlers(
            orders.ERROR_TYPES, backtest.ERROR_TYPES, accounts.ERROR_TYPES
        ),
    )


class RetryingSchema(CheckedSchema):
    """A query cut off by a lost database connection (PostgreSQL restarting; the pool reconnects
    on the next checkout) runs once more, with fresh DataLoaders and without charging the
    request budgets again. Mutations are not re-run: they answer `Unavailable`."""

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        arguments = (
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        result = await super().execute(*arguments)
        if not (
            isinstance(context_value, Context)
            and _lost_connection(result)
            and _is_query(query, operation_name)
        ):
            return result
        context_value.prepare_retry()
        context_value.services.metrics.read_retries.inc()
        log.info("query retried after a lost database connection", operation=operation_name)
        return await super().execute(*arguments)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors)


def _lost_connection(result: ExecutionResult) -> bool:
    return any(
        isinstance(error.original_error, Unavailable) and error.original_error.retryable
        for error in result.errors or ()
    )


def _is_query(query: str | None, operation_name: str | None) -> bool:
    if query is None:
        return False
    operation = get_operation_ast(parse(query), operation_name)
    return operation is not None and operation.operation is GraphQLOperationType.QUERY


def export_sdl() -> str:
    """The schema as SDL, as kept in `schema.graphql` at the repository root."""
    return build_schema().as_str() + "\n"


__all__ = ["build_schema", "export_sdl"]
