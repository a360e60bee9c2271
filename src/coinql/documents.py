"""What is checked of a GraphQL document before anything runs, the same over HTTP and over
WebSocket: its size, its token count, which operation it asks for, and whether that operation
can run on the transport it came by (a subscription needs one that streams)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from graphql import GraphQLSyntaxError, OperationDefinitionNode, OperationType, parse

from coinql.settings import Settings


@dataclass(frozen=True, slots=True)
class DocumentProblem:
    """Why a document is refused, with the HTTP status that says so."""

    message: str
    status_code: int = 400


def document_too_large(size: int, limit: int) -> str:
    return f"the document is {size:,} bytes; the limit is {limit:,} (COINQL_MAX_DOCUMENT_BYTES)"


@dataclass(frozen=True, slots=True)
class _Outline:
    operations: tuple[tuple[str | None, OperationType], ...]
    too_many_tokens: bool = False


@lru_cache(maxsize=512)
def _outline(query: str, max_tokens: int) -> _Outline | None:
    """The document's operations (name and type); None for a syntax error, which the GraphQL
    layer reports itself with its location."""
    try:
        document = parse(query, max_tokens=max_tokens)
    except GraphQLSyntaxError as error:
        # Over the token limit, strawberry's stream raises instead of answering an error (a
        # socket's operation would end with a bare `complete`): refused here, by name.
        return _Outline((), too_many_tokens=True) if "tokens" in error.message else None
    return _Outline(
        tuple(
            (definition.name.value if definition.name else None, definition.operation)
            for definition in document.definitions
            if isinstance(definition, OperationDefinitionNode)
        )
    )


def document_problem(
    query: str, operation_name: str | None, *, settings: Settings, streams: bool
) -> DocumentProblem | None:
    """What is wrong with running `operation_name` of `query` here, or None."""
    size = len(query.encode())
    if size > settings.max_document_bytes:
        return DocumentProblem(document_too_large(size, settings.max_document_bytes), 413)
    outline = _outline(query, settings.max_tokens)
    if outline is None:
        return None
    if outline.too_many_tokens:
        if not streams:
            return None  # executed, the GraphQL layer answers its own syntax error
        return DocumentProblem(
            f"the document has more than {settings.max_tokens:,} tokens (COINQL_MAX_TOKENS)"
        )
    if operation_name is None and len(outline.operations) > 1:
        names = ", ".join(name or "(anonymous)" for name, _ in outline.operations)
        return DocumentProblem(
            f"the document holds {len(outline.operations)} operations ({names}): name the one"
            " to run in operationName"
        )
    chosen = [kind for name, kind in outline.operations if operation_name in (None, name)]
    if not streams and chosen == [OperationType.SUBSCRIPTION]:
        return DocumentProblem(
            "subscriptions need the WebSocket transport: open a graphql-transport-ws socket"
            " on /graphql and send the subscription there"
        )
    return None
