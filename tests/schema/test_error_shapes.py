"""How expected failures reach `errors`: coinql's precise `code`, a `classification` generic
clients and tools understand (Spring for GraphQL's names), and the argument at fault."""

from __future__ import annotations

from starlette.applications import Starlette

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
