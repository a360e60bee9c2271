"""Bots through the API, on both backends: the contract's lifecycle, manual orders with their
typed refusals, another user's bot out of reach, LIVE refused while trading is off, the
emergency stop, and the audit entries each leaves."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from starlette.applications import Starlette
from strawberry import relay

from coinql.store.bots import Bot
from tests.client import GraphQLClient
from tests.conftest import COINS_DIR, make_user, upload

STRATEGY = (
    'mutation { createStrategy(input: {name: "trend", kind: {smaCross: {fast: 10, slow: 30}}})'
    " { __typename ... on Strategy { id } } }"
)
ORDER = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    __typename
    ... on Order { id side type status quantity price filledQuantity averagePrice fee origin }
    ... on RiskLimitRefused { message limit }
    ... on InvalidInput { message field }
    ... on InsufficientBalance { message field }
    ... on InvalidPrice { message field }
    ... on Error { message }
  }
}
"""
VIEW = """
query($botId: ID!) {
  bot(id: $botId) {
    id name mode status symbol interval startedAt
    value cash realizedPnl unrealizedPnl feesPaid
    position { symbol quantity averageCost unrealizedPnl }
    orders(first: 20) {
      edges { node { id side type status quantity price filledQuantity averagePrice fee } }
      pageInfo { hasNextPage }
    }
    fills(first: 20) { id orderId side price quantity fee time }
    divergence { backtestReturn botReturn tradesCompared differingTrades }
  }
}
"""


@pytest.fixture
async def trader(app: Starlette, client: GraphQLClient, admin: str) -> str:
    report = await upload(client, (COINS_DIR / "coin_Bitcoin.csv").read_bytes(), token=admin)
    assert report["__typename"] == "ImportReport", report
    return await make_user(app, client, "ada@example.com", admin=False)


async def new_bot(client: GraphQLClient, token: str, **fields: Any) -> str:
    strategy = (await client.execute(STRATEGY, token=token)).ok()["createStrategy"]["id"]
    created = await client.contract("trading", "CreateBot", {"strategyId": strategy}, token=token)
    bot = created.ok()["createBot"]
    assert bot == {
        "__typename": "Bot",
        "id": bot["id"],
        "name": "BTC trend, paper",
        "mode": "PAPER",
        "status": "CREATED",
        "symbol": "BTC",
        "interval": "M1",
    }
    return str(bot["id"])


async def stored_bot(app: Starlette, bot_id: str) -> Bot:
    async with app.state.services.sessions() as session:
        found = await session.get(Bot, uuid.UUID(relay.GlobalID.from_id(bot_id).node_id))
    assert found is not None
    return found


def order_input(bot: str, **fields: Any) -> dict[str, Any]:
    return {"input": {"botId": bot, "side": "BUY", "type": "MARKET", "quantity": "0.01", **fields}}


async def test_a_paper_bot_through_its_lifecycle_as_the_contract_writes_it(
    app: Starlette, client: GraphQLClient, trader: str
) -> None:
    bot = await new_bot(client, trader)
    variables = {"botId": bot}
    started = (await client.contract("trading", "StartBot", variables, token=trader)).ok()
    assert started["startBot"] == {"__typename": "Bot", "id": bot, "status": "RUNNING"}
    paused = (await client.contract("trading", "PauseBot", variables, token=trader)).ok()
    assert paused["pauseBot"]["status"] == "PAUSED"
    again = (await client.contract("trading", "StartBot", variables, token=trader)).ok()
    assert again["startBot"]["status"] == "RUNNING"
    now = int(time.time() * 1000)
    app.state.services.prices.record("BTC", 30_000.0, now)
    placed = (await client.contract("trading", "PlaceOrder", variables, token=trader)).ok()
    order = placed["placeOrder"]
    assert (order["__typename"], order["side"], order["type"], order["status"]) == (
        "Order",
        "BUY",
        "MARKET",
        "NEW",  # a market order fills at the feed's next price
    )
    app.state.services.prices.record("BTC", 30_100.0, now + 1_000)
    engine = app.state.services.bots  # what the runner does each pass: the next price
    await engine.offer_price(await stored_bot(app, bot), await engine.quote_now("BTC"))
    view = (await client.execute(VIEW, variables, token=trader)).ok()["bot"]
    (filled,) = [edge["node"] for edge in view["orders"]["edges"]]
    slipped = 30_100 * 1.0005
    assert filled["status"] == "FILLED" and float(filled["averagePrice"]) == pytest.approx(slipped)
    assert float(filled["fee"]) == pytest.approx(0.01 * slipped * 0.001)
    assert view["position"]["quantity"] == "0.01"
    assert float(view["cash"]) == pytest.approx(10_000 - 0.01 * slipped * 1.001)
    assert float(view["value"]) == pytest.approx(float(view["cash"]) + 0.01 * 30_100)
    assert view["fills"][0]["orderId"] == filled["id"]
    limit = await client.execute(ORDER, order_input(bot, type="LIMIT", price="20000"), token=trader)
    resting = limit.ok()["placeOrder"]
    assert (resting["status"], resting["price"]) == ("NEW", "20000")
    cancelled = await client.contract(
        "trading", "CancelOrder", {"orderId": resting["id"]}, token=trader
    )
    assert cancelled.ok()["cancelOrder"]["status"] == "CANCELLED"
    contract_view = (await client.contract("trading", "BotView", variables, token=trader)).ok()
    assert contract_view["bot"]["value"] == view["value"]
    assert contract_view["bot"]["performance"] is None  # it has acted on no candle yet
    listed = (await client.contract("trading", "Bots", token=trader)).ok()
    assert [edge["node"]["id"] for edge in listed["bots"]["edges"]] == [bot]
    stopped = (await client.contract("trading", "StopBot", variables, token=trader)).ok()
    assert stopped["stopBot"]["status"] == "STOPPED"
    flat = (await client.execute(VIEW, variables, token=trader)).ok()["bot"]
    assert flat["position"] is None  # closePosition: true sold it
    log = await client.execute(
        "{ auditLog(first: 20) { edges { node { action } } } }", token=trader
    )
    actions = [edge["node"]["action"] for edge in log.ok()["auditLog"]["edges"]]
    for action in ("BOT_CREATED", "BOT_STARTED", "ORDER_PLACED", "ORDER_CANCELLED", "BOT_STOPPED"):
        assert action in actions


@pytest.mark.parametrize(
    ("fields", "typename", "field"),
    [
        ({"quantity": "1000"}, "InsufficientBalance", "quantity"),
        ({"type": "LIMIT"}, "InvalidPrice", "price"),
        ({"price": "1"}, "InvalidPrice", "price"),  # a MARKET order takes none
        ({"quantity": "0"}, "InvalidInput", "quantity"),
    ],
)
async def test_a_bad_order_is_typed_names_its_field_and_writes_nothing(
    app: Starlette,
    client: GraphQLClient,
    trader: str,
    fields: dict[str, str],
    typename: str,
    field: str,
) -> None:
    bot = await new_bot(client, trader)
    app.state.services.prices.record("BTC", 30_000.0, int(time.time() * 1000))
    refused = (await client.execute(ORDER, order_input(bot, **fields), token=trader)).ok()
    assert (refused["placeOrder"]["__typename"], refused["placeOrder"]["field"]) == (
        typename,
        field,
    )
    view = (await client.execute(VIEW, {"botId": bot}, token=trader)).ok()["bot"]
    assert view["orders"]["edges"] == []


async def test_a_risk_limit_refuses_the_order_naming_the_limit(
    app: Starlette, client: GraphQLClient, trader: str
) -> None:
    strategy = (await client.execute(STRATEGY, token=trader)).ok()["createStrategy"]["id"]
    created = await client.execute(
        'mutation($s: ID!) { createBot(input: {name: "capped", strategyId: $s, symbol: "BTC",'
        ' interval: D1, capital: "10000", risk: {maxOrderValue: "100"}}) { ... on Bot { id } } }',
        {"s": strategy},
        token=trader,
    )
    bot = created.ok()["createBot"]["id"]
    app.state.services.prices.record("BTC", 30_000.0, int(time.time() * 1000))
    refused = (await client.execute(ORDER, order_input(bot), token=trader)).ok()["placeOrder"]
    assert (refused["__typename"], refused["limit"]) == ("RiskLimitRefused", "maxOrderValue")


async def test_live_is_refused_while_trading_is_off_and_another_users_bot_is_out_of_reach(
    app: Starlette, client: GraphQLClient, trader: str
) -> None:
    strategy = (await client.execute(STRATEGY, token=trader)).ok()["createStrategy"]["id"]
    live = await client.execute(
        'mutation($s: ID!) { createBot(input: {name: "live", strategyId: $s, symbol: "BTC",'
        ' interval: D1, mode: LIVE, capital: "100"}) { __typename ... on Error { message } } }',
        {"s": strategy},
        token=trader,
    )
    refused = live.ok()["createBot"]
    assert refused["__typename"] == "Forbidden" and "COINQL_LIVE_TRADING" in refused["message"]
    bot = await new_bot(client, trader)
    other = await make_user(app, client, "eve@example.com", admin=False)
    for operation in ("StartBot", "PauseBot", "StopBot"):
        answer = (await client.contract("trading", operation, {"botId": bot}, token=other)).ok()
        assert next(iter(answer.values()))["__typename"] == "NotFound", operation
    seen = (await client.execute(VIEW, {"botId": bot}, token=other)).ok()
    assert seen == {"bot": None}
    mine = (await client.execute(VIEW, {"botId": bot}, token=trader)).ok()
    assert mine["bot"]["status"] == "CREATED"


async def test_the_emergency_stop_stops_every_bot_of_the_caller_only(
    app: Starlette, client: GraphQLClient, trader: str
) -> None:
    first, second = await new_bot(client, trader), await new_bot(client, trader)
    other = await make_user(app, client, "eve@example.com", admin=False)
    theirs = await new_bot(client, other)
    for bot in (first, second, theirs):
        owner = other if bot == theirs else trader
        await client.contract("trading", "StartBot", {"botId": bot}, token=owner)
    app.state.services.prices.record("BTC", 30_000.0, int(time.time() * 1000))
    await client.execute(ORDER, order_input(first, type="LIMIT", price="20000"), token=trader)
    stopped = (await client.contract("trading", "EmergencyStop", token=trader)).ok()
    assert stopped["emergencyStop"] == {
        "__typename": "EmergencyStopResult",
        "botsStopped": 2,
        "ordersCancelled": 1,
        "positionsClosed": 0,
    }
    statuses = {
        bot: (await client.execute(VIEW, {"botId": bot}, token=owner)).ok()["bot"]["status"]
        for bot, owner in ((first, trader), (second, trader), (theirs, other))
    }
    assert statuses == {first: "STOPPED", second: "STOPPED", theirs: "RUNNING"}
    everyone = await client.execute(
        "mutation { emergencyStopAll { __typename ... on Error { message } } }", token=trader
    )
    assert everyone.ok()["emergencyStopAll"]["__typename"] == "Forbidden"  # admins only
