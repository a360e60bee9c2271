"""The read path: what a repeated document costs, statements per request, the series cache."""

from __future__ import annotations

import pytest
import strawberry.schema.schema as strawberry_schema

from tests.client import GraphQLClient


async def test_a_repeated_document_is_validated_once(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    validate = strawberry_schema.validate

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return validate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(strawberry_schema, "validate", counting)
    document = "query ValidatedOnce { serverInfo { version validatedOnce: database } }"
    for _ in range(3):
        assert (await client.execute(document)).ok()["serverInfo"]["validatedOnce"] == "sqlite"
    assert len(calls) == 1
