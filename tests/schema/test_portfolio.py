"""The operations of ../shared/contract/portfolio.graphql, authorization and SQL economy."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event
from starlette.applications import Starlette

from coinql.domain import mean_variance as mv
from coinql.domain.constraints import Constraints
from tests.client import GraphQLClient
from tests.conftest import import_real_files
from tests.domain.coins import aligned_returns, parsed
from tests.helpers import ewma_reference

TRANSACTIONS = [
    {"kind": "DEPOSIT", "asset": "USDT", "quantity": "10000", "time": "2020-01-01T00:00:00Z"},
    {
        "kind": "BUY",
        "asset": "BTC",
        "quantity": "0.5",
        "price": "7200",
        "fee": "3.6",
        "time": "2020-01-02T00:00:00Z",
    },
    {
        "kind": "SELL",
        "asset": "BTC",
        "quantity": "0.2",
        "price": "9000",
        "fee": "1.8",
        "time": "2020-02-10T00:00:00Z",
    },
]
WINDOW = {"start": "2019-01-01T00:00:00Z", "end": "2021-06-30T00:00:00Z"}


@pytest.fixture
async def market(client: GraphQLClient, admin: str) -> GraphQLClient:
    await import_real_files(client, admin)
    return client


async def new_portfolio(client: GraphQLClient, token: str) -> str:
    created = (await client.contract("portfolio", "CreatePortfolio", token=token)).ok()
    assert created["createPortfolio"]["__typename"] == "Portfolio", created
    return str(created["createPortfolio"]["id"])


async def test_contract_portfolio_flow(market: GraphQLClient) -> None:
    token = (await market.sign_up())["accessToken"]
    created = (await market.contract("portfolio", "CreatePortfolio", token=token)).ok()
    portfolio = created["createPortfolio"]
    assert portfolio["name"] == "Main" and portfolio["baseCurrency"] == "USDT"
    added = await market.contract(
        "portfolio",
        "AddTransactions",
        {"portfolioId": portfolio["id"], "transactions": TRANSACTIONS},
        token=token,
    )
    assert added.ok()["addTransactions"] == {"__typename": "Portfolio", "id": portfolio["id"]}

    view = (
        await market.contract(
            "portfolio", "PortfolioView", {"portfolioId": portfolio["id"]}, token=token
        )
    ).ok()["portfolio"]
    last = D(repr(float(parsed("BTC").candles.close[-1])))
    market_value = D("0.3") * last
    assert D(view["cash"]) == D("8194.6")
    assert D(view["realizedPnl"]) == D("356.76")  # 0.2 x 9,000 - 1.80 - 0.2 x 7,207.20
    assert D(view["unrealizedPnl"]) == market_value - D("2162.16")
    assert D(view["value"]) == D("8194.6") + market_value
    (btc,) = view["positions"]
    assert btc["symbol"] == "BTC" and D(btc["quantity"]) == D("0.3")
    assert D(btc["averageCost"]) == D("7207.2")
    assert D(btc["lastPrice"]) == last
    assert btc["weight"] == pytest.approx(float(market_value / D(view["value"])))
    history = view["valueHistory"]
    assert history["timestamps"][0] == 1577836800000  # 2020-01-01
    assert history["values"][0] == pytest.approx(10000.0)
    assert history["values"][-1] == pytest.approx(float(D(view["value"])))
    perf = view["performance"]
    closes = parsed("BTC").candles
    assert perf["totalReturn"] == pytest.approx(float(D(view["value"])) / 10000 - 1, rel=1e-9)
    assert perf["maxDrawdown"] > 0 and perf["volatility"] > 0
    assert closes.close[-1] > 0


async def test_optimize_and_frontier(market: GraphQLClient) -> None:
    found = (await market.contract("portfolio", "Optimize", WINDOW)).ok()["optimize"]
    weights = {w["symbol"]: w["weight"] for w in found["weights"]}
    assert set(weights) == {"BTC", "ETH", "BNB", "ADA", "DOGE", "LTC"}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert max(weights.values()) <= 0.5 + 1e-9 and min(weights.values()) >= -1e-9
    assert found["sharpe"] == pytest.approx(found["expectedReturn"] / found["volatility"])
    frontier = (await market.contract("portfolio", "Frontier", WINDOW)).ok()["efficientFrontier"]
    assert len(frontier) == 20
    assert [p["expectedReturn"] for p in frontier] == sorted(p["expectedReturn"] for p in frontier)
    assert frontier[0]["volatility"] <= min(p["volatility"] for p in frontier) + 1e-9


async def test_infeasible_constraints_are_a_typed_error(market: GraphQLClient) -> None:
    response = await market.execute(
        '{ optimize(input: {symbols: ["BTC", "ETH", "LTC"], objective: MIN_VOLATILITY,'
        " constraints: {maxWeight: 0.2}}) { volatility } }"
    )
    (error,) = response.errors
    assert error["message"] == "maxWeight 0.2 x 3 assets < 1: the weights cannot sum to 1"
    assert error["extensions"] == {"code": "Infeasible", "constraint": "maxWeight"}


OPTIMIZE_EWMA = """
query ($decay: Float!, $start: DateTime, $end: DateTime) {
  optimize(input: {symbols: ["BTC", "ETH", "LTC"], objective: MIN_VOLATILITY, start: $start,
                   end: $end, covariance: EWMA, ewmaDecay: $decay}) {
    weights { weight } volatility observations
  }
  efficientFrontier(input: {symbols: ["BTC", "ETH", "LTC"], start: $start, end: $end,
                            covariance: EWMA, ewmaDecay: $decay}, points: 3) {
    weights { weight } volatility
  }
}
"""


async def test_ewma_decay_reaches_optimize_and_frontier(market: GraphQLClient) -> None:
    """0.5 and 0.99 give different books, each the domain's on the RiskMetrics estimate."""
    timestamps, r = aligned_returns(["BTC", "ETH", "LTC"])
    start, end = 1546300800000, 1625011200000  # WINDOW in epoch ms
    r = r[(timestamps >= start + 86_400_000) & (timestamps <= end)]
    books = {}
    for decay in (0.5, 0.99):
        found = (await market.execute(OPTIMIZE_EWMA, {"decay": decay, **WINDOW})).ok()
        optimized = found["optimize"]
        assert optimized["observations"] == r.shape[0]
        cov = ewma_reference(r, decay) * 365
        expected = mv.min_volatility(cov, Constraints())
        weights = np.array([w["weight"] for w in optimized["weights"]])
        np.testing.assert_allclose(weights, expected, atol=1e-6)
        assert optimized["volatility"] == pytest.approx(np.sqrt(expected @ cov @ expected))
        lowest = found["efficientFrontier"][0]
        assert lowest["volatility"] == pytest.approx(optimized["volatility"], rel=1e-6)
        books[decay] = weights
    assert not np.allclose(books[0.5], books[0.99], atol=1e-2)
    bad = await market.execute(OPTIMIZE_EWMA, {"decay": 1.5, **WINDOW})
    assert bad.errors[0]["extensions"]["field"] == "ewmaDecay"


async def test_create_strategy(market: GraphQLClient) -> None:
    token = (await market.sign_up())["accessToken"]
    created = (await market.contract("portfolio", "CreateStrategy", token=token)).ok()
    assert created["createStrategy"]["__typename"] == "Strategy"
    assert created["createStrategy"]["name"] == "BTC trend"
    listed = await market.execute(
        "{ strategies { edges { node { name kind family definition } } } }", token=token
    )
    (strategy,) = [edge["node"] for edge in listed.ok()["strategies"]["edges"]]
    assert strategy["kind"] == "smaCross" and strategy["family"] == "signal"
    assert strategy["definition"]["params"] == {"fast": 20, "slow": 50}
    bad = await market.execute(
        'mutation { createStrategy(input: {name: "x", kind: {smaCross: {fast: 50, slow: 20}}})'
        " { __typename ... on InvalidInput { field message } } }",
        token=token,
    )
    assert bad.ok()["createStrategy"] == {
        "__typename": "InvalidInput",
        "field": "kind.fast",
        "message": "fast (50) must be shorter than slow (20)",
    }
    allocation = await market.execute(
        'mutation { createStrategy(input: {name: "top5", kind: {riskParity: {lookback: 60}},'
        " universeTop: 5, rebalance: MONTHLY, constraints: {maxWeight: 0.4}})"
        " { __typename ... on Strategy { family definition } } }",
        token=token,
    )
    result = allocation.ok()["createStrategy"]
    assert result["family"] == "allocation"
    assert result["definition"]["constraints"]["max_weight"] == 0.4


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"kind": "SELL", "asset": "BTC", "quantity": "1", "price": "9000"},
            "transactions[0].quantity",
        ),
        ({"kind": "WITHDRAW", "asset": "USDT", "quantity": "99999"}, "transactions[0].quantity"),
        ({"kind": "BUY", "asset": "NOPE", "quantity": "1", "price": "1"}, "transactions[0].asset"),
        (
            {"kind": "BUY", "asset": "BTC", "quantity": "-1", "price": "1"},
            "transactions[0].quantity",
        ),
        ({"kind": "BUY", "asset": "BTC", "quantity": "1", "price": "0"}, "transactions[0].price"),
        (
            {"kind": "DEPOSIT", "asset": "USDT", "quantity": "1", "time": "2999-01-01T00:00:00Z"},
            "transactions[0].time",
        ),
    ],
)
async def test_bad_transactions_change_nothing(
    market: GraphQLClient, change: dict[str, str], field: str
) -> None:
    token = (await market.sign_up())["accessToken"]
    portfolio_id = await new_portfolio(market, token)
    variables = {"portfolioId": portfolio_id, "transactions": TRANSACTIONS}
    assert (await market.contract("portfolio", "AddTransactions", variables, token=token)).ok()
    bad = {"time": "2021-01-01T00:00:00Z", **change}
    response = await market.execute(
        "mutation($p: ID!, $t: [TransactionInput!]!) { addTransactions(portfolioId: $p,"
        " transactions: $t) { __typename ... on InvalidInput { field message } } }",
        {"p": portfolio_id, "t": [bad]},
        token=token,
    )
    result = response.ok()["addTransactions"]
    assert result["__typename"] == "InvalidInput" and result["field"] == field, result
    count = await market.execute(
        "query($p: ID!) { portfolio(id: $p) { transactions { kind } } }",
        {"p": portfolio_id},
        token=token,
    )
    assert len(count.ok()["portfolio"]["transactions"]) == 3


async def test_import_transactions_csv(market: GraphQLClient) -> None:
    token = (await market.sign_up())["accessToken"]
    portfolio_id = await new_portfolio(market, token)
    content = (
        b"kind,asset,quantity,price,fee,time\n"
        b"DEPOSIT,USDT,1000,,,2020-01-01T00:00:00Z\n"
        b"BUY,ETH,2,130,0.26,2020-01-02T00:00:00Z\n"
        b"SELL,ETH,three,200,0,2020-06-01T00:00:00Z\n"
    )
    mutation = (
        "mutation($p: ID!, $f: Upload!) { importTransactions(portfolioId: $p, file: $f)"
        " { __typename ... on ImportRejected { problems { line message } }"
        " ... on Portfolio { cash } } }"
    )

    async def send(data: bytes) -> dict[str, Any]:
        response = await market.upload(
            mutation, {"f": ("tx.csv", data)}, {"p": portfolio_id}, token=token
        )
        return dict(response.json()["data"]["importTransactions"])

    rejected = await send(content)
    assert rejected == {
        "__typename": "ImportRejected",
        "problems": [{"line": 4, "message": "quantity 'three' is not a number"}],
    }
    accepted = await send(content.replace(b"three", b"1"))
    assert accepted["__typename"] == "Portfolio"
    assert D(accepted["cash"]) == D("1000") - D("260.26") + D("200")


async def test_two_users_cannot_see_or_touch_each_others_portfolios(market: GraphQLClient) -> None:
    ada = (await market.sign_up("ada@example.com"))["accessToken"]
    bob = (await market.sign_up("bob@example.com"))["accessToken"]
    ada_portfolio = await new_portfolio(market, ada)
    variables = {"portfolioId": ada_portfolio, "transactions": TRANSACTIONS}
    assert (await market.contract("portfolio", "AddTransactions", variables, token=ada)).ok()
    strategy = (await market.contract("portfolio", "CreateStrategy", token=ada)).ok()[
        "createStrategy"
    ]["id"]
    missing = "UG9ydGZvbGlvOjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA=="  # Portfolio:0...

    view = await market.contract(
        "portfolio", "PortfolioView", {"portfolioId": ada_portfolio}, token=bob
    )
    assert view.ok() == {"portfolio": None}
    assert (
        await market.contract("portfolio", "PortfolioView", {"portfolioId": missing}, token=bob)
    ).ok() == {"portfolio": None}  # someone else's looks exactly like a missing one
    node = await market.execute(
        "query($id: ID!) { node(id: $id) { id } }", {"id": ada_portfolio}, token=bob
    )
    assert node.ok() == {"node": None}
    listed = await market.execute(
        "{ portfolios { totalCount } strategies { edges { node { id } } } }", token=bob
    )
    assert listed.ok() == {"portfolios": {"totalCount": 0}, "strategies": {"edges": []}}
    changed = await market.contract("portfolio", "AddTransactions", variables, token=bob)
    assert changed.ok()["addTransactions"]["__typename"] == "NotFound"
    deleted = await market.execute(
        "mutation($id: ID!) { deletePortfolio(id: $id) { __typename } deleteStrategy(id: $id)"
        " { __typename } }",
        {"id": ada_portfolio},
        token=bob,
    )
    assert deleted.ok() == {
        "deletePortfolio": {"__typename": "NotFound"},
        "deleteStrategy": {"__typename": "NotFound"},
    }
    other_strategy = await market.execute(
        "query($id: ID!) { strategy(id: $id) { id } node(id: $id) { id } }",
        {"id": strategy},
        token=bob,
    )
    assert other_strategy.ok() == {"strategy": None, "node": None}
    plan = await market.execute(
        'query($p: ID!) { rebalance(portfolioId: $p, targetWeights: [{symbol: "BTC", weight: 1}])'
        " { trades { symbol } } }",
        {"p": ada_portfolio},
        token=bob,
    )
    assert plan.errors[0]["extensions"] == {
        "code": "InvalidInput",
        "classification": "BAD_REQUEST",
        "field": "portfolioId",
    }
    # Ada still sees hers, unchanged.
    own = await market.contract(
        "portfolio", "PortfolioView", {"portfolioId": ada_portfolio}, token=ada
    )
    assert D(own.ok()["portfolio"]["cash"]) == D("8194.6")
    anonymous = await market.contract("portfolio", "CreatePortfolio")
    assert anonymous.ok()["createPortfolio"]["__typename"] == "NotAuthenticated"


async def test_rebalance_plan(market: GraphQLClient) -> None:
    token = (await market.sign_up())["accessToken"]
    portfolio_id = await new_portfolio(market, token)
    variables = {"portfolioId": portfolio_id, "transactions": TRANSACTIONS}
    assert (await market.contract("portfolio", "AddTransactions", variables, token=token)).ok()
    plan = await market.execute(
        'query($p: ID!) { rebalance(portfolioId: $p, targetWeights: [{symbol: "BTC", weight: 0.5},'
        ' {symbol: "ETH", weight: 0.5}], feeBps: "10") { portfolioValue estimatedFees'
        " trades { symbol side quantity price value estimatedFee } } }",
        {"p": portfolio_id},
        token=token,
    )
    found = plan.ok()["rebalance"]
    trades = {t["symbol"]: t for t in found["trades"]}
    value = D(found["portfolioValue"])
    assert trades["ETH"]["side"] == "BUY"
    assert D(trades["ETH"]["value"]) == value * D("0.5")
    assert D(trades["ETH"]["estimatedFee"]) == D(trades["ETH"]["value"]) * D("0.001")
    assert D(found["estimatedFees"]) == sum(D(t["estimatedFee"]) for t in found["trades"])


async def count_statements(app: Starlette, client: GraphQLClient, token: str, query: str) -> int:
    statements: list[str] = []
    engine = app.state.services.engine.sync_engine

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert (await client.execute(query, token=token)).ok()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements)


async def test_reads_scale_with_a_constant_number_of_statements(
    app: Starlette, market: GraphQLClient
) -> None:
    token = (await market.sign_up())["accessToken"]
    query = (
        "{ portfolios { edges { node { name value positions { symbol quantity lastPrice"
        " marketValue } } } } }"
    )
    coins = ["BTC", "ETH", "LTC", "DOGE"]
    counts = []
    for round_ in range(2):
        for _ in range(1 + 2 * round_):
            portfolio_id = await new_portfolio(market, token)
            batch = [TRANSACTIONS[0]] + [
                {
                    "kind": "BUY",
                    "asset": coin,
                    "quantity": "1",
                    "price": "1",
                    "time": "2020-01-02T00:00:00Z",
                }
                for coin in coins
            ]
            variables = {"portfolioId": portfolio_id, "transactions": batch}
            assert (
                await market.contract("portfolio", "AddTransactions", variables, token=token)
            ).ok()
        counts.append(await count_statements(app, market, token, query))
    assert counts[0] == counts[1], counts  # 1 portfolio, then 4: the same statements
    assert counts[0] <= 6


IMPORT = (
    "mutation($p: ID!, $f: Upload!) { importTransactions(portfolioId: $p, file: $f)"
    " { __typename ... on ImportRejected { problems { line message } }"
    " ... on InvalidInput { field message } } }"
)


async def import_csv(client: GraphQLClient, token: str, data: bytes) -> dict[str, Any]:
    portfolio_id = await new_portfolio(client, token)
    files = {"f": ("tx.csv", data)}
    response = await client.upload(IMPORT, files, {"p": portfolio_id}, token=token)
    return dict(response.json()["data"]["importTransactions"])


async def test_a_transaction_file_is_read_no_further_than_one_call_takes(
    client: GraphQLClient,
) -> None:
    token = (await client.sign_up())["accessToken"]
    rows = b"DEPOSIT,USDT,1,,,2020-01-01T00:00:00Z\n" * 10_001
    found = await import_csv(client, token, b"kind,asset,quantity,price,fee,time\n" + rows)
    assert found == {
        "__typename": "InvalidInput",
        "field": "file",
        "message": "the file has more than 10,000 transactions",
    }


async def test_a_transaction_file_s_amounts_have_the_ledger_s_bounds_by_line(
    client: GraphQLClient,
) -> None:
    token = (await client.sign_up())["accessToken"]
    content = (
        b"kind,asset,quantity,price,fee,time\n"
        b"DEPOSIT,USDT,1e999999999,,,2020-01-01T00:00:00Z\n"
        b"DEPOSIT,USDT,NaN,,,2020-01-01T00:00:00Z\n"
        b"DEPOSIT,USDT,5,,-1,2020-01-01T00:00:00Z\n"
    )
    found = await import_csv(client, token, content)
    most = "at most 1,000,000,000,000,000, with at most 18 decimal places"
    assert found == {
        "__typename": "ImportRejected",
        "problems": [
            {"line": 2, "message": f"quantity must be more than 0 and {most}"},
            {"line": 3, "message": "quantity must be a finite number"},
            {"line": 4, "message": f"fee must be at least 0 and {most}"},
        ],
    }


@pytest.mark.parametrize("failure", ["redis", "hang"])
async def test_a_broadcast_failure_never_fails_a_committed_batch(
    market: GraphQLClient, app: Starlette, failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live values are told of new transactions after the commit; a broadcast that fails
    (Redis down) or hangs must not answer an error for a batch that is stored: a retry would
    book it twice."""
    import asyncio

    from redis.exceptions import ConnectionError as RedisConnectionError

    from coinql.resolvers import portfolio as portfolio_resolvers

    async def broken(channel: str, payload: dict[str, Any]) -> None:
        if failure == "redis":
            raise RedisConnectionError("Connection refused")
        await asyncio.sleep(3600)

    monkeypatch.setattr(portfolio_resolvers, "ANNOUNCE_SECONDS", 0.2)
    monkeypatch.setattr(app.state.services.hub, "publish", broken)
    token = (await market.sign_up())["accessToken"]
    portfolio_id = await new_portfolio(market, token)
    added = await market.contract(
        "portfolio",
        "AddTransactions",
        {"portfolioId": portfolio_id, "transactions": TRANSACTIONS[:1]},
        token=token,
    )
    assert added.ok()["addTransactions"]["__typename"] == "Portfolio", added.body
    view = await market.contract(
        "portfolio", "PortfolioView", {"portfolioId": portfolio_id}, token=token
    )
    assert D(view.ok()["portfolio"]["cash"]) == D("10000")
