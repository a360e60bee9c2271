"""Where a bot's money is, through the API, on both backends: a LIVE bot on an exchange
connection of its owner's (with the operator's switch on, a ccxt-shaped exchange behind it),
refused on a paper connection or one whose key may not trade; a paper bot booking its capital
and fills into a portfolio, whose value then counts it and whose risk limits pause it."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from coinql.realtime.bots import BotLifecycle, BotRunner
from coinql.realtime.risk import check_risk_limits
from coinql.settings import Settings
from tests.client import GraphQLClient
from tests.conftest import COINS_DIR, Backend, make_settings, make_user, upload
from tests.fakes import FakeTradingExchange

STRATEGY = (
    'mutation { createStrategy(input: {name: "trend", kind: {smaCross: {fast: 10, slow: 30}}})'
    " { __typename ... on Strategy { id } } }"
)
CREATE = """
mutation($input: CreateBotInput!) {
  createBot(input: $input) {
    __typename
    ... on Bot { id mode connection { id exchange } portfolio { id } }
    ... on InvalidInput { message field }
    ... on Error { message }
  }
}
"""
CONNECT = """
mutation($exchange: String!) {
  addExchangeConnection(input: {exchange: $exchange, label: "main", apiKey: "key-0123456789",
    secret: "secret-0123456789abcdef"}) {
    __typename ... on ExchangeConnection { id portfolio { id } } ... on Error { message }
  }
}
"""
ORDER = """
mutation($botId: ID!, $type: OrderType!, $price: Decimal) {
  placeOrder(input: {botId: $botId, side: BUY, type: $type, quantity: "0.1", price: $price}) {
    __typename ... on Order { id status filledQuantity averagePrice } ... on Error { message }
  }
}
"""


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, live_trading=True)


@pytest.fixture
async def trader(app: Starlette, client: GraphQLClient, admin: str) -> str:
    report = await upload(client, (COINS_DIR / "coin_Bitcoin.csv").read_bytes(), token=admin)
    assert report["__typename"] == "ImportReport", report
    return await make_user(app, client, "ada@example.com", admin=False)


@pytest.fixture
def exchange(app: Starlette) -> FakeTradingExchange:
    fake = FakeTradingExchange()
    app.state.services.accounts.clients = lambda *args, **kwargs: fake
    return fake


def bot_input(strategy: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "BTC",
        "strategyId": strategy,
        "symbol": "BTC",
        "interval": "D1",
        "capital": "10000",
        **fields,
    }


async def strategy_of(client: GraphQLClient, token: str) -> str:
    return str((await client.execute(STRATEGY, token=token)).ok()["createStrategy"]["id"])


async def test_a_live_bot_trades_on_its_owners_connection_and_only_while_switched_on(
    app: Starlette, client: GraphQLClient, trader: str, exchange: FakeTradingExchange
) -> None:
    strategy = await strategy_of(client, trader)
    connected = (await client.execute(CONNECT, {"exchange": "binance"}, token=trader)).ok()
    connection = connected["addExchangeConnection"]
    assert connection["__typename"] == "ExchangeConnection", connection
    created = await client.execute(
        CREATE,
        {"input": bot_input(strategy, mode="LIVE", connectionId=connection["id"])},
        token=trader,
    )
    bot = created.ok()["createBot"]
    assert (bot["mode"], bot["connection"]["id"], bot["portfolio"]["id"]) == (
        "LIVE",
        connection["id"],
        connection["portfolio"]["id"],  # its trades reach the connection's portfolio by sync
    )
    app.state.services.prices.record("BTC", 50_000.0, int(time.time() * 1000))
    placed = await client.execute(ORDER, {"botId": bot["id"], "type": "MARKET"}, token=trader)
    order = placed.ok()["placeOrder"]
    assert (order["status"], Decimal(order["filledQuantity"]), Decimal(order["averagePrice"])) == (
        "FILLED",
        Decimal("0.1"),
        Decimal(50_000),
    )
    assert [call["clientOrderId"][:3] for call in exchange.creates] == ["cq-"]
    services = app.state.services
    app.state.services.settings = services.settings.model_copy(update={"live_trading": False})
    refused = await client.execute(ORDER, {"botId": bot["id"], "type": "MARKET"}, token=trader)
    assert refused.ok()["placeOrder"]["__typename"] == "Forbidden"
    assert len(exchange.creates) == 1


async def test_a_live_bot_needs_a_real_connection_whose_key_may_trade(
    app: Starlette, client: GraphQLClient, trader: str, exchange: FakeTradingExchange
) -> None:
    strategy = await strategy_of(client, trader)
    paper = (await client.contract("accounts", "AddExchangeConnection", token=trader)).ok()
    answers = []
    for fields in (
        {"mode": "LIVE"},
        {"mode": "LIVE", "connectionId": paper["addExchangeConnection"]["id"]},
        {"connectionId": paper["addExchangeConnection"]["id"]},  # PAPER on a connection
    ):
        found = await client.execute(CREATE, {"input": bot_input(strategy, **fields)}, token=trader)
        answers.append(found.ok()["createBot"].get("field"))
    assert answers == ["connectionId", "connectionId", "mode"]

    async def read_only() -> dict[str, bool]:
        return {"read": True, "trade": False, "withdraw": False}

    exchange.fetch_permissions = read_only  # type: ignore[attr-defined]
    exchange.has["fetchPermissions"] = True
    connected = (await client.execute(CONNECT, {"exchange": "kraken"}, token=trader)).ok()
    connection = connected["addExchangeConnection"]
    assert connection["__typename"] == "ExchangeConnection", connection
    found = await client.execute(
        CREATE,
        {"input": bot_input(strategy, mode="LIVE", connectionId=connection["id"])},
        token=trader,
    )
    refused = found.ok()["createBot"]
    assert refused["field"] == "connectionId" and "may not trade" in refused["message"], refused


async def test_a_paper_bot_books_into_its_portfolio_and_its_risk_limits_pause_it(
    app: Starlette, client: GraphQLClient, trader: str
) -> None:
    services = app.state.services
    strategy = await strategy_of(client, trader)
    made = await client.contract("portfolio", "CreatePortfolio", token=trader)
    portfolio = made.ok()["createPortfolio"]["id"]
    created = await client.execute(
        CREATE, {"input": bot_input(strategy, portfolioId=portfolio)}, token=trader
    )
    bot = created.ok()["createBot"]
    assert bot["portfolio"] == {"id": portfolio}, bot
    started = await client.contract("trading", "StartBot", {"botId": bot["id"]}, token=trader)
    assert started.ok()["startBot"]["status"] == "RUNNING"
    now = int(time.time() * 1000)
    services.prices.record("BTC", 50_000.0, now)
    placed = await client.execute(ORDER, {"botId": bot["id"], "type": "MARKET"}, token=trader)
    assert placed.ok()["placeOrder"]["status"] == "NEW"  # it fills at the feed's next price
    services.prices.record("BTC", 50_000.0, now + 1)
    await BotRunner(engine=services.bots, poll_seconds=1).run_once()
    seen = await client.execute(
        "query($p: ID!, $b: ID!) { portfolio(id: $p) { value transactions { kind asset"
        " quantity price fee } } bot(id: $b) { value } }",
        {"p": portfolio, "b": bot["id"]},
        token=trader,
    )
    found = seen.ok()
    booked = [
        (t["kind"], t["asset"], Decimal(t["quantity"])) for t in found["portfolio"]["transactions"]
    ]
    assert booked == [("DEPOSIT", "USDT", Decimal(10_000)), ("BUY", "BTC", Decimal("0.1"))]
    assert found["portfolio"]["value"] == found["bot"]["value"]  # the bot is all it holds
    limits = await client.execute(
        "mutation($p: ID!) { setRiskLimits(portfolioId: $p, limits: {maxPositionWeight: 0.2})"
        " { __typename } }",
        {"p": portfolio},
        token=trader,
    )
    assert limits.ok()["setRiskLimits"]["__typename"] == "RiskLimits"
    raised = await check_risk_limits(
        services.sessions,
        services.hub,
        services.prices.snapshot(),
        now=services.now(),
        on_breach=BotLifecycle(services.bots).pause_booking_into,
    )
    assert raised == 1
    view = await client.execute(
        "query($b: ID!) { bot(id: $b) { status reason } }", {"b": bot["id"]}, token=trader
    )
    paused = view.ok()["bot"]
    assert paused["status"] == "PAUSED" and "maxPositionWeight" in paused["reason"], paused
