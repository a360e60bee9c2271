"""Hostile documents are refused before execution, each limit named: just under passes, just
over fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from coinql.app import create_app
from coinql.store.secrets import generate_key
from tests.client import GraphQLClient
from tests.conftest import (
    CONTRACT_DIR,
    TEST_SECRET,
    Backend,
    built_contract_files,
    make_settings,
)


async def test_depth_limit(backend: Backend, tmp_path: Path) -> None:
    """The schema has no recursive type deeper than 10 (introspection's own recursion is capped
    by graphql-core), so the limit is shown with a setting of 3 (depth counts the nesting below
    the root field, as graphql-depth-limit does)."""
    app = create_app(make_settings(backend, tmp_path, max_query_depth=3))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            three = await client.execute("{ assets { edges { node { symbol } } } }")
            assert three.ok()
            four = await client.execute("{ assets { edges { node { candles { count } } } } }")
    assert four.body.get("data") is None
    assert "exceeds maximum operation depth of 3" in four.errors[0]["message"]


async def test_deeply_nested_introspection_is_refused(client: GraphQLClient) -> None:
    deep = '{ __type(name: "Query") { fields { type { fields { type { fields { name } } } } } } }'
    response = await client.execute(deep)
    assert response.errors[0]["message"] == "Maximum introspection depth exceeded"


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: serverInfo {{ version }}" for i in range(count)) + " }"


async def test_alias_limit(client: GraphQLClient) -> None:
    assert (await client.execute(aliases(15))).ok()
    over = await client.execute(aliases(16))
    assert "15" in over.errors[0]["message"] and "aliases" in over.errors[0]["message"].lower()


def tokens(count: int) -> str:
    """A valid document of exactly `count` tokens: a long list argument."""
    fixed = 19  # { assets ( first : 1 filter : { symbols : [ ] } ) { totalCount } }
    items = " ".join(f'"S{i}"' for i in range(count - fixed))
    return "{ assets(first: 1, filter: {symbols: [" + items + "]}) { totalCount } }"


async def test_token_limit(client: GraphQLClient) -> None:
    assert (await client.execute(tokens(2_000))).ok()
    over = await client.execute(tokens(2_001))
    assert over.errors[0]["message"] == (
        "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    )


async def test_document_size_limit(client: GraphQLClient) -> None:
    padding = "#" + "x" * 100 + "\n"
    under = "{ serverInfo { version } }\n" + padding * (19_000 // len(padding))
    assert (await client.execute(under)).ok()
    over = "{ serverInfo { version } }\n" + padding * (21_000 // len(padding))
    response = await client.execute(over)
    assert response.status_code == 413
    assert "limit is 20,000 (COINQL_MAX_DOCUMENT_BYTES)" in response.errors[0]["message"]


async def test_batch_limit(client: GraphQLClient) -> None:
    operation = {"query": "{ serverInfo { version } }"}
    ten = await client.http.post("/graphql", json=[operation] * 10)
    assert ten.status_code == 200 and len(ten.json()) == 10
    eleven = await client.http.post("/graphql", json=[operation] * 11)
    assert eleven.status_code == 400
    assert eleven.json()["errors"][0]["message"] == (
        "a batch holds at most 10 operations, this one 11 (COINQL_MAX_BATCH_OPERATIONS)"
    )


async def test_introspection_still_works(client: GraphQLClient) -> None:
    from graphql import get_introspection_query

    assert (await client.execute(get_introspection_query())).ok()["__schema"]["types"]


def test_limits_are_settings(tmp_path: Path) -> None:
    from coinql.settings import Settings

    settings = Settings(max_query_depth=4, max_aliases=2, secret_key_file=tmp_path / "s")
    assert settings.query_limits.max_depth == 4 and settings.query_limits.max_aliases == 2


async def test_production_masks_errors_hides_suggestions_and_introspection(
    backend: Backend, tmp_path: Path
) -> None:
    settings = make_settings(
        backend, tmp_path, env="production", secret_key=TEST_SECRET, encryption_key=generate_key()
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            typo = await client.execute("{ serverInfo { versio } }")
            typos = [
                await client.execute(document, variables) for document, variables in SUGGESTION_BAIT
            ]
            introspect = await client.execute("{ __schema { types { name } } }")
            graphiql = await http.get("/graphql", headers={"accept": "text/html"})
    assert "Did you mean" not in typo.errors[0]["message"]
    for answer in typos:
        assert answer.errors, answer.body
        for error in answer.errors:
            assert "Did you mean" not in error["message"], error
            assert "'" in error["message"] or '"' in error["message"]  # still names the fault
    assert "introspection" in introspect.errors[0]["message"].lower()
    assert graphiql.status_code == 404
    # In development they help: suggestions and introspection are on.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=(dev := create_app(make_settings(backend, tmp_path)))),
        base_url="http://t",
    ) as http:
        async with dev.router.lifespan_context(dev):
            dev_client = GraphQLClient(http, CONTRACT_DIR)
            typo = await dev_client.execute("{ serverInfo { versio } }")
            typos = [await dev_client.execute(doc, values) for doc, values in SUGGESTION_BAIT]
    assert "Did you mean" in typo.errors[0]["message"]
    for answer in typos:
        assert any("Did you mean" in error["message"] for error in answer.errors), answer.body


# Each gets a "Did you mean" from graphql-core: an argument, an enum value (inline and in a
# variable), a type, an input field.
SUGGESTION_BAIT: list[tuple[str, dict[str, object] | None]] = [
    ("{ assets(frist: 2) { totalCount } }", None),
    ("{ assets(first: 2, orderBy: MARKET_CAP_DES) { totalCount } }", None),
    (
        "query($o: AssetOrder!) { assets(first: 2, orderBy: $o) { totalCount } }",
        {"o": "MARKET_CAP_DES"},
    ),
    ("query($n: Intt) { assets(first: $n) { totalCount } }", None),
    (
        'mutation { createPortfolio(input: { nam: "x" }) { __typename } }',
        None,
    ),
]


ASSETS_BY_VARIABLE = """
query Page($n: Int!) { assets(first: $n) { ...Symbols } }
fragment Symbols on AssetConnection { edges { node { symbol } } }
"""


async def test_query_cost_limit(backend: Backend, tmp_path: Path) -> None:
    """`assets(first: n) { edges { node { symbol } } }` costs 1 + n x 3: with a budget of 31,
    ten assets pass and eleven (34) are refused, also when n comes from a variable through a
    fragment; nothing executes."""
    app = create_app(make_settings(backend, tmp_path, max_query_cost=31))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            ten = await client.execute("{ assets(first: 10) { edges { node { symbol } } } }")
            eleven = await client.execute("{ assets(first: 11) { edges { node { symbol } } } }")
            by_variable = await client.execute(ASSETS_BY_VARIABLE, {"n": 11})
            under_by_variable = await client.execute(ASSETS_BY_VARIABLE, {"n": 10})
            bad_variable = await client.execute(ASSETS_BY_VARIABLE, {"n": "many"})
            metrics = set((await http.get("/metrics")).text.splitlines())
    assert "edges" in ten.ok()["assets"]  # executed; the cost counts what was asked for
    assert under_by_variable.ok() == ten.ok()
    for refused in (eleven, by_variable):
        assert refused.body.get("data") is None
        (error,) = refused.errors
        assert error["message"].startswith(
            "query cost 34 exceeds the maximum of 31 (COINQL_MAX_QUERY_COST)"
        )
        assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert "$n" in bad_variable.errors[0]["message"]  # the variable's own error, not a cost
    assert 'coinql_rejections_total{reason="query_cost"} 2.0' in metrics
    assert 'coinql_graphql_query_cost_sum{operation="Page"} 31.0' in metrics


def test_every_contract_operation_of_the_built_areas_validates() -> None:
    """Each built area's operations are valid against the schema as written (a conflict of
    field types across an interface's fragments shows here before any client runs them)."""
    from graphql import parse, validate

    from coinql.schema import build_schema

    schema = build_schema()._schema
    problems = {
        path.name: [error.message for error in validate(schema, parse(path.read_text()))]
        for path in built_contract_files()
    }
    assert {name: found for name, found in problems.items() if found} == {}


async def test_every_contract_operation_is_within_the_default_cost() -> None:
    from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

    from coinql.schema import build_schema
    from coinql.schema.cost import operation_cost
    from coinql.settings import QueryLimits

    schema = build_schema()._schema
    costs = {}
    for path in built_contract_files():
        document = parse(path.read_text())
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        for operation in document.definitions:
            if (
                isinstance(operation, OperationDefinitionNode)
                and not operation.variable_definitions
            ):
                assert operation.name is not None
                costs[operation.name.value] = operation_cost(schema, operation, fragments, {})
    assert costs["Universe"] > 50  # a page of assets is counted per asset
    assert max(costs.values()) <= QueryLimits().max_cost


async def test_directives_per_field_limit(backend: Backend, tmp_path: Path) -> None:
    app = create_app(make_settings(backend, tmp_path, max_directives_per_field=2))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            two = await client.execute(
                "{ serverInfo @include(if: true) @skip(if: false) { version } }"
            )
            three = await client.execute(
                "{ serverInfo @include(if: true) @skip(if: false) @a { version } }"
            )
    assert two.ok()["serverInfo"]["version"]
    assert three.body.get("data") is None
    messages = [error["message"] for error in three.errors]
    assert (
        "field 'serverInfo' has 3 directives, more than the maximum of 2 "
        "(COINQL_MAX_DIRECTIVES_PER_FIELD)"
    ) in messages


async def test_circular_fragments_and_field_duplication_are_refused(client: GraphQLClient) -> None:
    circular = await client.execute(
        "{ serverInfo { ...A } } fragment A on ServerInfo { version ...B } "
        "fragment B on ServerInfo { ...A }"
    )
    assert circular.body.get("data") is None
    assert any("Cannot spread fragment 'A' within itself" in e["message"] for e in circular.errors)
    # Duplicated fields merge, so a few run; thousands cannot get past the token limit.
    few = await client.execute("{ serverInfo { " + "version " * 100 + "} }")
    assert few.ok()["serverInfo"]["version"]
    many = await client.execute("{ serverInfo { " + "version " * 2_000 + "} }")
    assert many.body.get("data") is None
    assert many.errors[0]["message"] == (
        "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    )


async def test_request_timeout_is_a_504_naming_the_setting(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coinql.resolvers.context import Context

    async def slow_user(self: Context) -> None:
        await asyncio.sleep(5)

    app = create_app(make_settings(backend, tmp_path, request_timeout_seconds=0.2))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            assert (await client.contract("server", "Me")).ok() == {"me": None}
            monkeypatch.setattr(Context, "user", slow_user)
            slow = await client.contract("server", "Me")
            monkeypatch.undo()
            after = await client.contract("server", "ServerInfo")
    assert slow.status_code == 504
    assert slow.errors == [
        {
            "message": "the request took longer than 0.2 s (COINQL_REQUEST_TIMEOUT_SECONDS)",
            "extensions": {"code": "TIMEOUT"},
        }
    ]
    assert after.ok()["serverInfo"]  # the server goes on


async def test_series_length_cap_names_the_setting(backend: Backend, tmp_path: Path) -> None:
    from tests.conftest import COINS_DIR, make_user, upload

    app = create_app(make_settings(backend, tmp_path, max_series_points=366))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            admin = await make_user(app, client, "root@example.com", admin=True)
            await upload(client, (COINS_DIR / "coin_Bitcoin.csv").read_bytes(), token=admin)
            year = {"symbol": "BTC", "start": "2020-01-01T00:00:00Z", "end": "2020-12-31T00:00:00Z"}
            in_2020 = await client.contract("market", "Candles", year)
            longer = {**year, "start": "2019-12-31T00:00:00Z"}
            over = await client.contract("market", "Candles", longer)
    assert in_2020.ok()["asset"]["candles"]["count"] == 366
    (error,) = over.errors
    assert error["message"] == (
        "BTC has 367 D1 candles between start and end; a request reads at most 366"
        " (COINQL_MAX_SERIES_POINTS): narrow start and end, or use a larger interval"
    )
    assert error["extensions"]["field"] == "start"


def test_every_list_a_client_can_size_is_costed_by_its_size() -> None:
    """Each field returning a list or a connection that takes arguments is declared: sized by
    one of them (which must exist), or bounded by the data. A new one cannot be forgotten."""
    from graphql import (
        GraphQLObjectType,
        get_named_type,
        get_nullable_type,
        is_list_type,
    )

    from coinql.schema import build_schema
    from coinql.schema.cost import LIST_SIZES, UNSIZED_LISTS

    schema = build_schema()._schema
    found = set()
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            listed = is_list_type(get_nullable_type(field.type)) or get_named_type(
                field.type
            ).name.endswith("Connection")
            if listed and field.args:
                found.add(f"{type_.name}.{name}")
    assert found == set(LIST_SIZES) | UNSIZED_LISTS
    for key, argument in LIST_SIZES.items():
        type_name, field_name = key.split(".")
        field = schema.type_map[type_name].fields[field_name]  # type: ignore[attr-defined]
        assert argument in field.args, key


async def test_universe_top_costs_what_the_same_assets_cost(client: GraphQLClient) -> None:
    from graphql import parse

    from coinql.schema import build_schema
    from coinql.schema.cost import operation_cost

    schema = build_schema()._schema

    def cost(document: str) -> int:
        (operation,) = parse(document).definitions
        return operation_cost(schema, operation, {}, {})  # type: ignore[arg-type]

    selection = "symbol name marketCap rank lastPrice"
    universe = cost(f"{{ universe(top: 500) {{ {selection} }} }}")
    page = cost(f"{{ assets(first: 500) {{ edges {{ node {{ {selection} }} }} }} }}")
    assert universe == 1 + 500 * 5 and page == 1 + 500 * 7
    ids = cost('{ compareBacktests(ids: ["a", "b", "c"]) { id } }')
    assert ids == 1 + 3 * 1
