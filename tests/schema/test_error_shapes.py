"""How expected failures reach `errors`: coinql's precise `code`, a `classification` generic
clients and tools understand (Spring for GraphQL's names), and the argument at fault."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import is_non_null_type
from starlette.applications import Starlette

from coinql.domain.errors import Unavailable
from coinql.schema import build_schema
from coinql.store import portfolio as portfolio_store
from tests.client import GraphQLClient
from tests.conftest import make_user


async def test_a_bad_argument_is_classified_as_the_callers_mistake(
    client: GraphQLClient,
) -> None:
    response = await client.execute("{ universe(top: 0) { symbol } }")
    assert response.errors[0]["extensions"] == {
        "code": "InvalidInput",
        "classification": "BAD_REQUEST",
        "field": "top",
    }


async def test_an_anonymous_call_to_a_protected_field_is_unauthorized(
    client: GraphQLClient,
) -> None:
    response = await client.execute("{ portfolios { totalCount } }")
    assert response.errors[0]["extensions"] == {
        "code": "NotAuthenticated",
        "classification": "UNAUTHORIZED",
    }


async def test_a_query_naming_a_missing_portfolio_names_the_argument(
    app: Starlette, client: GraphQLClient
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    for query in (
        '{ riskLimits(portfolioId: "UG9ydGZvbGlvOjE=") { breached } }',
        '{ alerts(portfolioId: "not an id") { limit } }',
    ):
        response = await client.execute(query, token=token)
        assert response.errors[0]["extensions"] == {
            "code": "InvalidInput",
            "classification": "BAD_REQUEST",
            "field": "portfolioId",
        }, query


async def test_a_malformed_global_id_finds_no_node(client: GraphQLClient) -> None:
    response = await client.execute('{ node(id: "") { id } }')
    assert response.ok() == {"node": None}


async def test_a_string_where_a_file_upload_belongs_is_refused_naming_file(
    app: Starlette, client: GraphQLClient
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    created = await client.execute(
        'mutation { createPortfolio(input: {name: "p"}) { ... on Portfolio { id } } }', token=token
    )
    portfolio_id = created.ok()["createPortfolio"]["id"]
    response = await client.execute(
        'mutation($p: ID!) { importTransactions(portfolioId: $p, file: "kind,asset")'
        " { __typename ... on InvalidInput { field message } } }",
        {"p": portfolio_id},
        token=token,
    )
    assert response.ok()["importTransactions"] == {
        "__typename": "InvalidInput",
        "field": "file",
        "message": "send the file as a multipart upload (GraphQL multipart request spec)",
    }


def test_every_mutation_field_may_be_null_alone() -> None:
    """A mutation field that fails outside its union (a bug, a lost database) is null by
    itself: were it non-null, the null would spread to `data` and hide what the document's
    other fields did, their committed writes among them."""
    mutation = build_schema()._schema.mutation_type
    assert mutation is not None
    non_null = [name for name, field in mutation.fields.items() if is_non_null_type(field.type)]
    assert not non_null


def test_every_field_that_takes_arguments_may_be_null_alone() -> None:
    """A field's arguments can be wrong (an unknown benchmark, a window out of range): its
    error nulls it alone, at its path, and never climbs to its parent and siblings."""
    from graphql import GraphQLObjectType

    schema = build_schema()._schema
    non_null = [
        f"{type_.name}.{name}"
        for type_ in schema.type_map.values()
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__")
        for name, field in type_.fields.items()
        if field.args and is_non_null_type(field.type) and type_ is not schema.subscription_type
    ]
    assert not non_null


ALIASES = (
    "mutation($p: ID!, $good: [TransactionInput!]!, $bad: [TransactionInput!]!) {"
    " first: addTransactions(portfolioId: $p, transactions: $good)"
    " { __typename ... on InvalidInput { field } }"
    " second: addTransactions(portfolioId: $p, transactions: $bad)"
    " { __typename ... on InvalidInput { field } } }"
)
DEPOSIT = {"kind": "DEPOSIT", "asset": "USDT", "quantity": "5", "time": "2020-01-01T00:00:00Z"}


async def _ledger(client: GraphQLClient, portfolio_id: str, token: str) -> list[dict[str, Any]]:
    found = await client.execute(
        "query($p: ID!) { portfolio(id: $p) { transactions { quantity } } }",
        {"p": portfolio_id},
        token=token,
    )
    return list(found.ok()["portfolio"]["transactions"])


async def test_each_alias_answers_its_own_outcome(app: Starlette, client: GraphQLClient) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    portfolio_id = await _new_portfolio(client, token)
    bad = [{**DEPOSIT, "quantity": "1e999999999"}]
    response = await client.execute(
        ALIASES, {"p": portfolio_id, "good": [DEPOSIT], "bad": bad}, token=token
    )
    assert response.ok() == {
        "first": {"__typename": "Portfolio"},
        "second": {"__typename": "InvalidInput", "field": "transactions[0].quantity"},
    }
    assert await _ledger(client, portfolio_id, token) == [{"quantity": "5"}]


async def test_an_alias_failing_outside_its_union_hides_no_other_write(
    app: Starlette, client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    portfolio_id = await _new_portfolio(client, token)
    add_entries = portfolio_store.add_entries
    calls = 0

    async def locked_the_second_time(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Unavailable("the database is locked by another process; nothing was changed")
        await add_entries(*args, **kwargs)

    monkeypatch.setattr(portfolio_store, "add_entries", locked_the_second_time)
    response = await client.execute(
        ALIASES, {"p": portfolio_id, "good": [DEPOSIT], "bad": [DEPOSIT]}, token=token
    )
    assert response.body["data"] == {"first": {"__typename": "Portfolio"}, "second": None}
    (error,) = response.errors
    assert error["path"] == ["second"] and error["extensions"]["code"] == "Unavailable"
    assert await _ledger(client, portfolio_id, token) == [{"quantity": "5"}]


async def _new_portfolio(client: GraphQLClient, token: str) -> str:
    created = await client.execute(
        'mutation { createPortfolio(input: {name: "p"}) { ... on Portfolio { id } } }', token=token
    )
    return str(created.ok()["createPortfolio"]["id"])
