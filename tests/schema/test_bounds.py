"""Declared bounds of every number a client sends (coinql.schema.bounds): the schema has no
Int, Float or Decimal input without one, and each is refused, typed and naming its path,
before anything runs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from starlette.applications import Starlette

from coinql.domain.bounds import Bounds, decimal_places
from coinql.schema import build_schema
from coinql.schema.bounds import BOUNDS
from tests.client import GraphQLClient
from tests.conftest import make_user

NUMBER_SCALARS = {"Int", "Float", "Decimal"}


def _declared(item: GraphQLInputField | GraphQLArgument) -> Bounds | None:
    definition = (item.extensions or {}).get("strawberry-definition")
    found = getattr(definition, "metadata", {}).get(BOUNDS)
    return found if isinstance(found, Bounds) else None


def _is_number(type_: GraphQLInputType) -> bool:
    named = get_named_type(type_)
    return isinstance(named, GraphQLScalarType) and named.name in NUMBER_SCALARS


def numeric_inputs() -> list[tuple[str, GraphQLInputField | GraphQLArgument]]:
    """Every numeric field of every input type and every numeric argument of every field,
    named `Type.field` and `Type.field(argument)`."""
    found: list[tuple[str, GraphQLInputField | GraphQLArgument]] = []
    for name, type_ in build_schema()._schema.type_map.items():
        if name.startswith("__"):
            continue
        if isinstance(type_, GraphQLInputObjectType):
            found += [
                (f"{name}.{field_name}", field)
                for field_name, field in type_.fields.items()
                if _is_number(field.type)
            ]
        elif isinstance(type_, GraphQLObjectType):
            found += [
                (f"{name}.{field_name}({argument_name})", argument)
                for field_name, field in type_.fields.items()
                for argument_name, argument in field.args.items()
                if _is_number(argument.type)
            ]
    return found


def test_the_walk_finds_the_inputs_it_should() -> None:
    names = {name for name, _ in numeric_inputs()}
    expected = {
        "SimulationInput.seed",
        "TransactionInput.quantity",
        "Query.rebalance(feeBps)",
        "Asset.performance(riskFreeRate)",
        "GridParameter.values",
    }
    assert expected <= names
    assert len(names) > 80


def test_every_numeric_input_declares_bounds_and_shows_them() -> None:
    unbounded = [name for name, item in numeric_inputs() if _declared(item) is None]
    assert not unbounded, f"numeric inputs without declared bounds: {unbounded}"
    undescribed = [
        name
        for name, item in numeric_inputs()
        if (bounds := _declared(item)) is not None
        and bounds.describe() not in (item.description or "").lower()
    ]
    assert not undescribed, f"bounds missing from the description: {undescribed}"


def test_subscriptions_take_no_numbers() -> None:
    """`CheckBounds` does not wrap subscription fields: a numeric argument there would need
    its own check."""
    assert not [name for name, _ in numeric_inputs() if name.startswith("Subscription.")]


def test_declared_bounds_fit_their_type() -> None:
    """Decimal fields bound their places; Int fields have integer ends; defaults lie within."""
    problems = []
    for name, item in numeric_inputs():
        bounds = _declared(item)
        assert bounds is not None
        scalar = get_named_type(item.type).name
        if scalar == "Decimal" and bounds.places is None:
            problems.append(f"{name}: a Decimal needs places")
        if scalar == "Int" and not all(
            float(end).is_integer() for end in (bounds.low, bounds.high)
        ):
            problems.append(f"{name}: an Int needs integer ends")
        default = item.default_value
        if isinstance(default, int | float | str) and not isinstance(default, bool):
            value: Any = Decimal(default) if scalar == "Decimal" else default
            if bounds.problem(value) is not None:
                problems.append(f"{name}: the default {default} is out of bounds")
    assert not problems, problems


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1e999999999", "must be more than 0 and at most 1,000,000,000,000,000"),
        ("1E+999999", "must be more than 0"),
        ("NaN", "must be a finite number"),
        ("sNaN", "must be a finite number"),
        ("-Infinity", "must be a finite number"),
        ("0.0000000000000000001", "with at most 18 decimal places"),
        ("0", "must be more than 0"),
    ],
)
def test_decimal_bounds_are_exact_and_never_trap(value: str, problem: str) -> None:
    found = Bounds(0, 10**15, low_open=True, places=18).problem(Decimal(value))
    assert found is not None and problem in found


@pytest.mark.parametrize(
    ("value", "places"), [("1.50", 1), ("1.000", 0), ("0.000", 0), ("12E+3", 0), ("1e-20", 20)]
)
def test_decimal_places_ignore_trailing_zeros(value: str, places: int) -> None:
    assert decimal_places(Decimal(value)) == places


async def _portfolio(client: GraphQLClient, token: str) -> str:
    created = await client.execute(
        'mutation { createPortfolio(input: {name: "p"}) { ... on Portfolio { id } } }', token=token
    )
    return str(created.ok()["createPortfolio"]["id"])


ADD = (
    "mutation($p: ID!, $t: [TransactionInput!]!) { addTransactions(portfolioId: $p,"
    " transactions: $t) { __typename ... on InvalidInput { field message } } }"
)
DEPOSIT = {"kind": "DEPOSIT", "asset": "USDT", "quantity": "100", "time": "2020-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": "1e999999999"}, "transactions[1].quantity"),
        ({"quantity": "1E+999999"}, "transactions[1].quantity"),
        ({"quantity": "NaN"}, "transactions[1].quantity"),
        ({"quantity": "sNaN"}, "transactions[1].quantity"),
        ({"quantity": "Infinity"}, "transactions[1].quantity"),
        ({"quantity": "0.1234567890123456789"}, "transactions[1].quantity"),
        ({"fee": "-0.5"}, "transactions[1].fee"),
        ({"kind": "BUY", "asset": "BTC", "price": "1e16"}, "transactions[1].price"),
    ],
)
async def test_an_out_of_bounds_decimal_is_invalid_input_naming_it_and_changes_nothing(
    app: Starlette, client: GraphQLClient, change: dict[str, str], field: str
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    portfolio_id = await _portfolio(client, token)
    bad = {**DEPOSIT, **change}
    response = await client.execute(ADD, {"p": portfolio_id, "t": [DEPOSIT, bad]}, token=token)
    result = response.ok()["addTransactions"]
    assert result["__typename"] == "InvalidInput" and result["field"] == field, result
    assert result["message"].startswith(f"{field} must be"), result
    ledger = await client.execute(
        "query($p: ID!) { portfolio(id: $p) { transactions { kind } } }",
        {"p": portfolio_id},
        token=token,
    )
    assert ledger.ok()["portfolio"]["transactions"] == []


async def test_a_decimal_literal_is_checked_like_a_variable(
    app: Starlette, client: GraphQLClient
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    portfolio_id = await _portfolio(client, token)
    response = await client.execute(
        "mutation($p: ID!) { addTransactions(portfolioId: $p, transactions: [{kind: DEPOSIT,"
        ' asset: "USDT", quantity: "NaN", time: "2020-01-01T00:00:00Z"}])'
        " { __typename ... on InvalidInput { field } } }",
        {"p": portfolio_id},
        token=token,
    )
    assert response.ok()["addTransactions"] == {
        "__typename": "InvalidInput",
        "field": "transactions[0].quantity",
    }


@pytest.mark.parametrize(
    ("argument", "field", "bound"),
    [
        ("seed: -1", "seed", "at least 0 and at most 2,147,483,647"),
        ("ruinThreshold: 2", "ruinThreshold", "more than 0 and less than 1"),
        ("shockDuration: 1000000000", "shockDuration", "at least 1 and at most 3,650"),
        ("shockSlippageBps: 1e308", "shockSlippageBps", "at least 0 and at most 10,000"),
        ("paths: 0", "paths", "at least 1 and at most 100,000"),
    ],
)
async def test_a_simulation_out_of_bounds_is_refused_before_a_job_is_queued(
    app: Starlette, client: GraphQLClient, argument: str, field: str, bound: str
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    portfolio_id = await _portfolio(client, token)
    response = await client.execute(
        f'mutation {{ runSimulation(input: {{source: {{portfolioId: "{portfolio_id}"}},'
        f" {argument}}}) {{ __typename ... on InvalidInput {{ field message }} }} }}",
        token=token,
    )
    result = response.ok()["runSimulation"]
    assert result["__typename"] == "InvalidInput" and result["field"] == field, result
    assert bound in result["message"]
    jobs = await client.execute("{ jobs { id } }", token=token)
    assert jobs.ok()["jobs"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("{ universe(top: 501) { symbol } }", "top"),
        (
            '{ riskReport(symbols: ["BTC", "ETH"], weights: [0.5, 1e9]) { volatility } }',
            "weights[1]",
        ),
        ('{ pca(symbols: ["BTC", "ETH"], components: 0) { symbols } }', "components"),
        (
            '{ efficientFrontier(input: {symbols: ["BTC", "ETH"], ewmaDecay: 1}) { volatility } }',
            "ewmaDecay",
        ),
        (
            '{ optimize(input: {symbols: ["BTC", "ETH"], constraints: {groups: [{name: "g",'
            ' symbols: ["BTC"], maxWeight: 2}]}}) { volatility } }',
            "constraints.groups[0].maxWeight",
        ),
    ],
)
async def test_query_arguments_out_of_bounds_reach_errors_naming_them(
    client: GraphQLClient, query: str, field: str
) -> None:
    response = await client.execute(query)
    (error,) = response.errors
    assert error["extensions"]["code"] == "InvalidInput"
    assert error["extensions"]["field"] == field


async def test_nested_and_one_of_inputs_are_named_by_their_path(
    app: Starlette, client: GraphQLClient
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    response = await client.execute(
        'mutation { createStrategy(input: {name: "x", kind: {smaCross: {fast: 0, slow: 20}}})'
        " { __typename ... on InvalidInput { field message } } }",
        token=token,
    )
    assert response.ok()["createStrategy"] == {
        "__typename": "InvalidInput",
        "field": "kind.fast",
        "message": "kind.fast must be at least 1 and at most 1,000, not 0",
    }
    response = await client.execute(
        'mutation { runSweep(input: {symbol: "BTC", strategy: "smaCross",'
        ' grid: [{name: "fast", values: [5]}, {name: "slow", values: [20, 1e12]}]})'
        " { __typename ... on InvalidInput { field } } }",
        token=token,
    )
    assert response.ok()["runSweep"] == {"__typename": "InvalidInput", "field": "grid[1].values[1]"}


async def test_bounds_are_checked_after_the_permission(client: GraphQLClient) -> None:
    response = await client.execute(
        'mutation { runSimulation(input: {source: {portfolioId: "x"}, seed: -1}) { __typename } }'
    )
    assert response.ok()["runSimulation"] == {"__typename": "NotAuthenticated"}
