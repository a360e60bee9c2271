"""Schema extensions: operation metrics and logs and, in production, masking of unexpected
errors."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import structlog
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from coinql.domain.errors import (
    Forbidden,
    InvalidInput,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    UserError,
)
from coinql.schema.errors import REFUSED

log = structlog.get_logger("coinql.operations")


class OperationMetrics(SchemaExtension):
    """Count each operation by name, type and outcome, time it, and log it with the user and
    its cost; operations slower than COINQL_SLOW_OPERATION_SECONDS are logged as warnings."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        execution = self.execution_context
        result = execution.result
        context = execution.context
        outcome = outcome_of(result.errors if result is not None else None, context)
        try:
            operation_type = execution.operation_type.value
        except RuntimeError:  # the document did not parse, so it has no operation type
            operation_type = "unknown"
        seconds = time.perf_counter() - started
        cost = context.cache.get("query_cost")
        context.services.metrics.observe_operation(
            execution.operation_name, operation_type, outcome, seconds, cost=cost
        )
        slow = seconds >= context.services.settings.slow_operation_seconds
        (log.warning if slow else log.info)(
            "slow operation" if slow else "operation",
            operation=execution.operation_name,
            type=operation_type,
            outcome=outcome,
            refused=context.cache.get(REFUSED),
            duration_ms=round(seconds * 1000, 2),
            cost=cost,
            user_id=str(context.known_user_id) if context.known_user_id else None,
        )


def outcome_of(errors: list[GraphQLError] | None, context: Any) -> str:
    """`error` when `errors` has entries, `refused` when a field answered with an error type
    (a mutation's InvalidInput, say), else `success`."""
    if errors:
        return "error"
    return "refused" if context.cache.get(REFUSED) else "success"


def log_errors(errors: list[GraphQLError]) -> None:
    """A client's mistakes (an unknown field, sign in first, an unknown symbol) at info, with
    their code; only unexpected errors, bugs, at error level with their traceback."""
    for error in errors:
        if is_unexpected(error):
            log.error(
                "unexpected error",
                message=error.message,
                path=error.path,
                exc_info=error.original_error,
            )
        else:
            original = error.original_error
            log.info(
                "client error",
                message=error.message,
                path=error.path,
                code=type(original).__name__ if isinstance(original, UserError) else None,
            )


# Spring for GraphQL's ErrorType names, which generic clients and tools (schemathesis among
# them) read as `extensions.classification`; coinql's own `code` stays the precise one.
CLASSIFICATIONS: dict[type[UserError], str] = {
    InvalidInput: "BAD_REQUEST",
    NotAuthenticated: "UNAUTHORIZED",
    InvalidToken: "UNAUTHORIZED",
    Forbidden: "FORBIDDEN",
    NotFound: "NOT_FOUND",
}
INTERNAL_ERROR = "INTERNAL_ERROR"


def classification(error: UserError) -> str | None:
    for kind, name in CLASSIFICATIONS.items():
        if isinstance(error, kind):
            return name
    return None


class UserErrorCodes(SchemaExtension):
    """Give expected failures that reach `errors` (in queries) a typed code: the domain error's
    class name, its classification, and the field or constraint it names, in `extensions`."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        result.errors = [_with_code(error) for error in result.errors]


def _with_code(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    extensions: dict[str, object]
    if is_unexpected(error):
        extensions = {"classification": INTERNAL_ERROR}
    elif isinstance(original, UserError):
        extensions = {"code": type(original).__name__}
        if (kind := classification(original)) is not None:
            extensions["classification"] = kind
    else:
        return error
    for attribute in ("field", "constraint"):
        if hasattr(original, attribute):
            extensions[attribute] = getattr(original, attribute)
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=original,
        extensions={**(error.extensions or {}), **extensions},
    )


def is_unexpected(error: GraphQLError) -> bool:
    """True for errors raised by bugs; validation errors and `UserError`s are the client's."""
    original = error.original_error
    return original is not None and not isinstance(original, UserError | GraphQLError)


def mask_unexpected_errors() -> MaskErrors:
    return MaskErrors(
        should_mask_error=is_unexpected,
        error_message="Internal server error; the request id in the X-Request-ID header names it.",
    )


SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class HideSuggestions(SchemaExtension):
    """Production answers name what is wrong without proposing what exists: graphql-core's
    "Did you mean ...?" for arguments, enum values, types and input fields (field names are
    left out by `disable_field_suggestions`) would map the schema for a client who may not
    introspect it."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        for error in result.errors:
            error.message = SUGGESTION.sub("", error.message)
