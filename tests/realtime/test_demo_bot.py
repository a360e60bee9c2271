"""A paper bot on the accelerated demo feed (COINQL_DEMO_SPEED), through the API alone: it
trades on its own signals as M1 candles close, and its divergence from its backtest over the
candles it saw is zero trades, its fills being at the close as the backtest's are."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from coinql.settings import Settings
from tests.client import GraphQLClient
from tests.conftest import Backend, make_settings

BOT = """
query($id: ID!) {
  bot(id: $id) {
    status reason value
    fills(first: 50) { side price quantity fee }
    tradeStatistics { count expectancy }
    divergence {
      backtestReturn botReturn tradesCompared differingTrades differences { index kind detail }
    }
  }
}
"""


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(
        backend,
        tmp_path,
        source="demo",
        demo_speed=300,  # a tick each 0.1 s spans 30 s of the market: an M1 candle per 0.2 s
        feed_tick_seconds=0.1,
        bot_poll_seconds=0.05,
    )


async def test_a_demo_bot_trades_its_signals_within_seconds_as_its_backtest_does(
    client: GraphQLClient,
) -> None:
    token = (await client.sign_up("demo-bot@example.com"))["accessToken"]
    saved = await client.execute(
        'mutation { createStrategy(input: {name: "fast", kind: {smaCross: {fast: 2,'
        " slow: 4}}}) { __typename ... on Strategy { id } ... on Error { message } } }",
        token=token,
    )
    strategy = saved.ok()["createStrategy"]
    assert strategy["__typename"] == "Strategy", strategy
    created = await client.execute(
        'mutation($s: ID!) { createBot(input: {name: "demo", strategyId: $s, symbol:'
        ' "BTC", interval: M1, capital: "10000", feeBps: 10, slippageBps: 5})'
        " { __typename ... on Bot { id mode } ... on Error { message } } }",
        {"s": strategy["id"]},
        token=token,
    )
    bot = created.ok()["createBot"]
    assert bot["__typename"] == "Bot" and bot["mode"] == "PAPER", bot
    started = await client.execute(
        "mutation($id: ID!) { startBot(id: $id) { __typename ... on Bot { status } } }",
        {"id": bot["id"]},
        token=token,
    )
    assert started.ok()["startBot"]["status"] == "RUNNING"
    seen: dict[str, Any] = {}
    for _ in range(600):  # a minute at most; a few seconds in practice
        seen = (await client.execute(BOT, {"id": bot["id"]}, token=token)).ok()["bot"]
        if len(seen["fills"]) >= 3:
            break
        await asyncio.sleep(0.1)
    assert seen["status"] == "RUNNING", seen
    assert len(seen["fills"]) >= 3, seen  # a buy, a sell, a buy: its own signals
    assert [fill["side"] for fill in seen["fills"][:3]] == ["BUY", "SELL", "BUY"]
    pause = await client.execute(
        "mutation($id: ID!) { pauseBot(id: $id) { __typename ... on Bot { status } } }",
        {"id": bot["id"]},
        token=token,
    )
    assert pause.ok()["pauseBot"]["status"] == "PAUSED"
    final = (await client.execute(BOT, {"id": bot["id"]}, token=token)).ok()["bot"]
    divergence = final["divergence"]
    assert divergence["tradesCompared"] >= 2 and divergence["differingTrades"] == 0, str(
        divergence["differences"]
    )
    assert divergence["botReturn"] == pytest.approx(divergence["backtestReturn"], abs=1e-9)
    # Its closed round trips (a buy of the whole position, then its sale), net of fees.
    fills = final["fills"]
    pnl = [
        float(sell["price"]) * float(sell["quantity"])
        - float(sell["fee"])
        - float(buy["price"]) * float(buy["quantity"])
        - float(buy["fee"])
        for buy, sell in zip(fills[0::2], fills[1::2], strict=False)
        if (buy["side"], sell["side"]) == ("BUY", "SELL")
    ]
    statistics = final["tradeStatistics"]
    assert statistics["count"] == len(pnl) >= 1
    assert statistics["expectancy"] == pytest.approx(sum(pnl) / len(pnl), rel=1e-9)
