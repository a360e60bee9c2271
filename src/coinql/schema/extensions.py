"""Schema extensions: operation metrics and, in production, masking of unexpected errors."""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

from coinql.domain.errors import UserError


class OperationMetrics(SchemaExtension):
    """Count each operation by name, type and outcome, and time it."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        execution = self.execution_context
        result = execution.result
        outcome = "success" if result is not None and not result.errors else "error"
        try:
            operation_type = execution.operation_type.value
        except RuntimeError:  # the document did not parse, so it has no operation type
            operation_type = "unknown"
        execution.context.services.metrics.observe_operation(
            execution.operation_name, operation_type, outcome, time.perf_counter() - started
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
