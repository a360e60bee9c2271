"""The query cost limit: list sizes multiplied through the selection, checked before execution.

Every selected field costs 1. A field whose argument asks for many things multiplies the cost of
everything selected below it by that number, so `assets(first: 50) { edges { node { candles {
count } } } }` costs 1 + 50 x 4. Which argument sizes which list is declared once, in
`LIST_SIZES` (an integer like `first`, `top` or `points`, or a list like `ids` whose length
it is); a test walks the schema so that no list field with an argument goes undeclared.
Defaults count as given, fragments are expanded, and every branch of a union counts
(the estimate is an upper bound). Strawberry has no cost analysis, and the sizes can come from
variables, so this runs as an extension after validation instead of as a validation rule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from coinql.domain.errors import RateLimited
from coinql.resolvers import budget

# "Type.field": the argument that sizes the list the field returns.
LIST_SIZES: dict[str, str] = {
    "Query.assets": "first",
    "Query.universe": "top",
    "Query.portfolios": "first",
    "Query.efficientFrontier": "points",
    "Query.strategies": "first",
    "Query.indices": "first",
    "Query.jobs": "first",
    "Query.backtestRuns": "first",
    "Query.compareBacktests": "ids",
    "Query.alerts": "first",
    "Query.auditLog": "first",
    "Performance.drawdowns": "top",
    "BacktestRun.trades": "first",
    "Query.bots": "first",
    "Bot.orders": "first",
    "Bot.fills": "first",
}
# List fields whose arguments filter rather than size (bounded by the data behind them).
UNSIZED_LISTS = frozenset({"Query.dataGaps", "Portfolio.positions"})


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    """The cost of `operation` with the client's raw `variables`; a GraphQLError when they do
    not coerce to the operation's variable definitions."""
    root = schema.get_root_type(operation.operation)
    coerced = get_variable_values(schema, operation.variable_definitions or (), dict(variables))
    if isinstance(coerced, list):
        raise coerced[0]
    if root is None:
        return 0
    return _selection_cost(schema, root, operation.selection_set, fragments, coerced, ())


def _selection_cost(
    schema: GraphQLSchema,
    parent: GraphQLNamedType,
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: VariableValues,
    spreading: tuple[str, ...],
) -> int:
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            fields = (
                parent.fields
                if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
                else {}
            )
            definition = fields.get(selection.name.value)
            if definition is None:  # __typename and introspection
                total += 1
                continue
            sized_by = LIST_SIZES.get(f"{parent.name}.{selection.name.value}")
            size = (
                _requested_size(get_argument_values(definition, selection, variables), sized_by)
                if sized_by
                else 1
            )
            below = 0
            if selection.selection_set is not None:
                below = _selection_cost(
                    schema,
                    get_named_type(definition.type),
                    selection.selection_set,
                    fragments,
                    variables,
                    spreading,
                )
            total += 1 + size * below
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            target = schema.get_type(condition.name.value) if condition else parent
            if target is not None:
                total += _selection_cost(
                    schema, target, selection.selection_set, fragments, variables, spreading
                )
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in spreading:  # validation refuses cycles already
                continue
            target = schema.get_type(fragment.type_condition.name.value)
            if target is not None:
                total += _selection_cost(
                    schema,
                    target,
                    fragment.selection_set,
                    fragments,
                    variables,
                    (*spreading, name),
                )
    return total


def _requested_size(arguments: Mapping[str, Any], sized_by: str) -> int:
    """How many items the argument `sized_by` asks for: its value, or its length for a list.
    Sizes inside input objects (a simulation's `paths`, a sweep's grid) are a job's parameters,
    not the response's size; the job queue bounds those."""
    value = arguments.get(sized_by)
    if isinstance(value, list):
        return max(1, len(value))
    return value if isinstance(value, int) and value > 1 else 1


class QueryCostLimiter(SchemaExtension):
    """Refuse an operation whose cost is over `max_cost`, naming the setting and counting the
    rejection; otherwise spend the cost from the caller's request budgets (429 and
    `Retry-After` when spent) and keep it in the context's `cache["query_cost"]` for metrics."""

    def __init__(self, *, max_cost: int) -> None:
        self.max_cost = max_cost

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        cost = _cost_of(execution)
        if cost is None:
            pass  # nothing to measure, or a bad variable that execution reports by name
        elif cost > self.max_cost:
            execution.context.services.metrics.rejections.labels("query_cost").inc()
            execution.result = _refused(
                f"query cost {cost} exceeds the maximum of {self.max_cost} "
                "(COINQL_MAX_QUERY_COST); ask for fewer items with `first`, `points` or `paths`",
                code="QUERY_TOO_COSTLY",
                cost=cost,
            )
        elif execution.context.cache.get("retry"):
            pass  # a query run again after a lost connection was charged the first time
        else:
            execution.context.cache["query_cost"] = cost
            try:
                await budget.spend(execution.context, cost)
            except RateLimited as error:
                execution.result = _refused(
                    error.message, code="RATE_LIMITED", retryAfterSeconds=error.retry_after
                )
        yield


# Costs of recent (document, operation, variables): a cached document (the parse cache hands
# back the same object) asked again with the same variables costs what it cost before.
_COSTS: dict[tuple[int, str | None, bytes], tuple[DocumentNode, int | None]] = {}
MAX_COSTS = 512
MAX_KEYED_VARIABLES = 2_000  # bytes of JSON; larger variables are measured every time


def _cost_of(execution: ExecutionContext) -> int | None:
    document = execution.graphql_document
    if document is None:
        return None
    try:
        variables = orjson.dumps(execution.variables or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON (an upload): measured, not kept
        variables = b""
    key = (id(document), execution.operation_name, variables)
    kept = _COSTS.get(key) if variables and len(variables) <= MAX_KEYED_VARIABLES else None
    if kept is not None and kept[0] is document:
        return kept[1]
    cost = _measure(execution, document)
    if variables and len(variables) <= MAX_KEYED_VARIABLES:
        if len(_COSTS) >= MAX_COSTS:
            _COSTS.clear()
        _COSTS[key] = (document, cost)
    return cost


def _measure(execution: ExecutionContext, document: DocumentNode) -> int | None:
    operation = get_operation_ast(document, execution.operation_name)
    if operation is None:
        return None
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    try:
        return operation_cost(
            execution.schema._schema, operation, fragments, execution.variables or {}
        )
    except GraphQLError:
        return None


def _refused(message: str, **extensions: Any) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions=extensions)])
