"""Directives per field: a document repeating directives on a field (known or not) is refused
while it is validated, before the other rules produce an error per directive."""

from __future__ import annotations

from typing import Any

from graphql import ASTValidationRule, FieldNode, GraphQLError, ValidationContext


def max_directives_per_field(limit: int) -> type[ASTValidationRule]:
    class MaxDirectivesPerField(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)

        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            count = len(node.directives or ())
            if count > limit:
                self.report_error(
                    GraphQLError(
                        f"field '{node.name.value}' has {count} directives, more than the "
                        f"maximum of {limit} (COINQL_MAX_DIRECTIVES_PER_FIELD)",
                        node,
                    )
                )

    return MaxDirectivesPerField
