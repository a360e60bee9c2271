"""What a document is held to before it runs, in one extension (`PreparedDocuments`): its
token count while it is parsed, the limits' validation rules, and caches of both steps (the
same documents arrive again and again: a dashboard's queries, 1,000 identical subscriptions).

Directives per field: a document repeating directives on a field (known or not) is refused
while it is validated, before the other rules produce an error per directive."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from graphql import ASTValidationRule, FieldNode, GraphQLError, ValidationContext, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document


def document_caches(maxsize: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """A parse and a validation cache, shared by every request of one schema."""
    return lru_cache(maxsize=maxsize)(parse), lru_cache(maxsize=maxsize)(validate_document)


class PreparedDocuments(SchemaExtension):
    """Parse with the token limit and validate with the limits' rules, each document once
    (what strawberry's MaxTokensLimiter, AddValidationRules, ParserCache and ValidationCache
    do, in one extension: each costs its hooks on every request). The rules must be built
    once: the validation cache is keyed by them."""

    def __init__(
        self,
        *,
        max_tokens: int,
        rules: Sequence[type[ASTValidationRule]],
        caches: tuple[Callable[..., Any], Callable[..., Any]],
    ) -> None:
        self.max_tokens = max_tokens
        self.rules = tuple(rules)
        self.parse, self.validate = caches

    def on_operation(self) -> Iterator[None]:
        execution = self.execution_context
        execution.parse_options["max_tokens"] = self.max_tokens
        execution.validation_rules = execution.validation_rules + self.rules
        yield

    def on_parse(self) -> Iterator[None]:
        execution = self.execution_context
        execution.graphql_document = self.parse(execution.query, **execution.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        execution.pre_execution_errors = self.validate(
            execution.schema._schema, execution.graphql_document, execution.validation_rules
        )
        yield


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
