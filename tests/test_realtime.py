"""The operations of ../shared/contract/realtime.graphql against real uvicorn servers, with real
WebSocket clients, on memory and on Redis: ticks, candles, PnL, job progress, alerts, auth,
two processes sharing Redis, and a Redis restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from coinql.settings import Settings
from tests.client import GraphQLClient, contract_operations
from tests.conftest import (
    CONTRACT_DIR,
    Backend,
    OwnRedis,
    Server,
    available_backends,
    make_settings,
    start_server,
    start_worker,
    stop_server,
)
from tests.ws import SubscriptionError, take, ws_connect

FAST = {
    "COINQL_FEED_TICK_SECONDS": "0.2",
    "COINQL_RISK_CHECK_SECONDS": "0.5",
    "COINQL_PORTFOLIO_VALUE_THROTTLE_SECONDS": "0.1",
}
REALTIME = contract_operations(CONTRACT_DIR, "realtime")
TRADING = contract_operations(CONTRACT_DIR, "trading")
# Tests that need Redis run on the PostgreSQL + Redis backend (always there under CI=true).
REDIS_BACKENDS = [name for name in available_backends() if name == "postgres"]


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, source="demo")


@pytest.fixture
def live(settings: Settings) -> Iterator[Server]:
    """A server on the demo feed; with Redis, a `coinql worker` runs its jobs."""
    running = start_server(settings, extra_env=FAST)
    worker = start_worker(settings) if settings.redis_url else None
    try:
        yield running
    finally:
        stop_server(running)
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=20)


@asynccontextmanager
async def http_client(server: Server) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield GraphQLClient(http, CONTRACT_DIR)


async def test_prices_stream_demo_ticks(live: Server) -> None:
    async with ws_connect(live.ws_url) as connection:
        ticks = await take(connection.subscribe(REALTIME["Prices"], operation_name="Prices"), 6)
    symbols = {tick["prices"]["symbol"] for tick in ticks}
    assert symbols == {"BTC", "ETH"}
    assert all(tick["prices"]["price"] > 0 for tick in ticks)
    stamps = [tick["prices"]["timestamp"] for tick in ticks if tick["prices"]["symbol"] == "BTC"]
    assert stamps == sorted(stamps)
    async with httpx.AsyncClient(base_url=live.url) as http:
        metrics = (await http.get("/metrics")).text.splitlines()
    (lag,) = [float(line.split()[-1]) for line in metrics if line.startswith("coinql_feed_lag")]
    assert 0 <= lag < 5  # a tick every 0.2 s


async def test_live_candles_form(live: Server) -> None:
    async with ws_connect(live.ws_url) as connection:
        updates = await take(
            connection.subscribe(REALTIME["LiveCandles"], operation_name="LiveCandles"), 4
        )
    for update in updates:
        candle = update["candles"]
        assert candle["low"] <= min(candle["open"], candle["close"])
        assert candle["high"] >= max(candle["open"], candle["close"])
        assert candle["timestamp"].endswith(":00Z")


async def sign_up(client: GraphQLClient, email: str = "live@example.com") -> str:
    return str((await client.sign_up(email))["accessToken"])


async def new_portfolio(client: GraphQLClient, token: str) -> str:
    created = (await client.contract("portfolio", "CreatePortfolio", token=token)).ok()
    return str(created["createPortfolio"]["id"])


async def buy_one_btc(client: GraphQLClient, token: str, portfolio_id: str) -> None:
    """100,000 USDT in, then 1 BTC at 30,000: 70,000 in cash."""
    transactions = [
        {"kind": "DEPOSIT", "asset": "USDT", "quantity": "100000", "time": "2024-01-01T00:00:00Z"},
        {
            "kind": "BUY",
            "asset": "BTC",
            "quantity": "1",
            "price": "30000",
            "time": "2024-01-02T00:00:00Z",
        },
    ]
    added = await client.contract(
        "portfolio",
        "AddTransactions",
        {"portfolioId": portfolio_id, "transactions": transactions},
        token=token,
    )
    assert added.ok()["addTransactions"]["__typename"] == "Portfolio", added.body


async def btc_portfolio(client: GraphQLClient, token: str) -> str:
    portfolio_id = await new_portfolio(client, token)
    await buy_one_btc(client, token, portfolio_id)
    return portfolio_id


async def test_pnl_updates_after_price_moves(live: Server) -> None:
    async with http_client(live) as client:
        token = await sign_up(client)
        portfolio_id = await btc_portfolio(client, token)
    async with ws_connect(live.ws_url, token) as connection:
        updates = await take(
            connection.subscribe(
                REALTIME["LivePnl"], {"portfolioId": portfolio_id}, operation_name="LivePnl"
            ),
            4,
        )
    values = [float(update["portfolioValue"]["value"]) for update in updates]
    assert len(set(values)) > 1  # the demo feed moved BTC's price
    for update in updates:
        pnl = update["portfolioValue"]
        # value = cash 70,000 + 1 BTC; unrealized = BTC's price - 30,000
        assert float(pnl["value"]) - 70_000 == pytest.approx(float(pnl["unrealizedPnl"]) + 30_000)


async def test_live_value_follows_transactions_added_while_it_streams(live: Server) -> None:
    """The value streams from an empty portfolio; a deposit and a BTC buy added meanwhile
    show at once, and BTC's ticks move it from then on (a coin bought later is listened to)."""
    async with http_client(live) as client:
        token = await sign_up(client)
        portfolio_id = await new_portfolio(client, token)
        async with ws_connect(live.ws_url, token) as connection:
            stream = connection.subscribe(
                REALTIME["LivePnl"], {"portfolioId": portfolio_id}, operation_name="LivePnl"
            )
            (empty,) = await take(stream, 1)
            assert float(empty["portfolioValue"]["value"]) == 0
            await buy_one_btc(client, token, portfolio_id)
            updates = await asyncio.wait_for(take(stream, 4), timeout=5)
    values = [float(update["portfolioValue"]["value"]) for update in updates]
    assert all(value > 70_000 for value in values)  # cash 70,000 and one BTC
    assert len(set(values)) > 1  # BTC's ticks reach it


async def test_follow_a_backtest_job_to_succeeded(live: Server) -> None:
    async with http_client(live) as client:
        token = await sign_up(client)
        queued = await client.execute(
            'mutation { runBacktest(input: {symbols: ["BTC"], strategy: {smaCross:'
            " {fast: 10, slow: 30}}}) { ... on Job { id } } }",
            token=token,
        )
        job_id = queued.ok()["runBacktest"]["id"]
    async with ws_connect(live.ws_url, token) as connection:
        updates = [
            update["jobProgress"]
            async for update in connection.subscribe(
                REALTIME["JobProgress"], {"jobId": job_id}, operation_name="JobProgress"
            )
        ]
    assert updates[-1]["status"] == "SUCCEEDED" and updates[-1]["progress"] == 1.0
    progress = [update["progress"] for update in updates]
    assert progress == sorted(progress)
    assert all(update["jobId"] == job_id for update in updates)


async def test_alert_after_a_breach(live: Server) -> None:
    async with http_client(live) as client:
        token = await sign_up(client)
        portfolio_id = await btc_portfolio(client, token)
        async with ws_connect(live.ws_url, token) as connection:
            alerts = connection.subscribe(REALTIME["Alerts"], operation_name="Alerts")
            waiting = asyncio.ensure_future(take(alerts, 1))
            await asyncio.sleep(0.5)
            limits = await client.execute(
                "mutation($p: ID!) { setRiskLimits(portfolioId: $p, limits:"
                " {maxPositionWeight: 0.05}) { __typename } }",
                {"p": portfolio_id},
                token=token,
            )
            assert limits.ok()["setRiskLimits"]["__typename"] == "RiskLimits"
            (alert,) = await waiting
        stored = await client.execute(
            "query($p: ID!) { alerts(portfolioId: $p) { limit observed threshold } }",
            {"p": portfolio_id},
            token=token,
        )
    found = alert["riskAlerts"]
    assert found["portfolioId"] == portfolio_id
    assert found["limit"] == "max_position_weight" and found["threshold"] == 0.05
    assert found["observed"] > 0.05
    await asyncio.sleep(1.5)  # further checks see the same breach: no second alert
    assert (
        stored.ok()["alerts"]
        == [{"limit": "max_position_weight", "observed": found["observed"], "threshold": 0.05}]
        or len(stored.ok()["alerts"]) == 1
    )


async def test_a_bad_token_closes_the_socket_with_4403(live: Server) -> None:
    import json

    async with connect(live.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer forged"}})
        )
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4403


async def test_subscriptions_are_private(live: Server) -> None:
    async with http_client(live) as client:
        owner = await sign_up(client, "owner@example.com")
        other = await sign_up(client, "other@example.com")
        portfolio_id = await btc_portfolio(client, owner)
    async with ws_connect(live.ws_url, other) as connection:
        with pytest.raises(SubscriptionError) as raised:
            await take(connection.subscribe(REALTIME["LivePnl"], {"portfolioId": portfolio_id}), 1)
    assert "no portfolio" in str(raised.value)
    async with ws_connect(live.ws_url) as anonymous:
        with pytest.raises(SubscriptionError) as raised:
            await take(anonymous.subscribe(REALTIME["Alerts"]), 1)
    assert "sign in first" in str(raised.value)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ('{ candles(symbol: "BTC", interval: D1) { close } }', "live candles come in M1, M5,"),
        ('{ candles(symbol: "NOPE", interval: M1) { close } }', "NOPE: not on the live feed"),
        ('{ prices(symbols: ["BTC", "NOPE"]) { price } }', "NOPE: not on the live feed"),
    ],
)
async def test_streams_the_feed_never_publishes_are_refused_at_subscribe_time(
    live: Server, document: str, says: str
) -> None:
    async with ws_connect(live.ws_url) as connection:
        with pytest.raises(SubscriptionError) as raised:
            await take(connection.subscribe(f"subscription {document}"), 1, timeout=10)
    assert says in str(raised.value)


async def test_live_streams_say_so_when_the_feed_is_off(settings: Settings) -> None:
    quiet = start_server(settings, extra_env={"COINQL_FEED_ENABLED": "false"})
    try:
        async with ws_connect(quiet.ws_url) as connection:
            for operation in ("Prices", "LiveCandles"):
                with pytest.raises(SubscriptionError) as raised:
                    await take(connection.subscribe(REALTIME[operation]), 1, timeout=10)
                assert "live data is off on this server" in str(raised.value)
    finally:
        stop_server(quiet)


def millis(timestamp: str) -> int:
    return round(datetime.fromisoformat(timestamp).timestamp() * 1000)


async def test_queries_read_the_price_the_feed_just_published(live: Server) -> None:
    """One price: `lastPrice` moves with the ticks (not the daily close), `lastPriceAt` says
    which tick, and a portfolio is valued at that same price."""
    async with http_client(live) as client:
        token = await sign_up(client, "one-price@example.com")
        portfolio_id = await btc_portfolio(client, token)
        query = (
            '{ asset(symbol: "BTC") { lastPrice lastPriceAt }'
            f' portfolio(id: "{portfolio_id}") {{ value }} }}'
        )
        ticks: dict[int, float] = {}
        async with ws_connect(live.ws_url) as connection:
            stream = connection.subscribe(REALTIME["Prices"])
            for tick in await take(stream, 6):
                if tick["prices"]["symbol"] == "BTC":
                    ticks[millis(tick["prices"]["timestamp"])] = tick["prices"]["price"]
            answers = []
            for _ in range(2):
                answers.append((await client.execute(query, token=token)).ok())
                for tick in await take(stream, 6):
                    if tick["prices"]["symbol"] == "BTC":
                        ticks[millis(tick["prices"]["timestamp"])] = tick["prices"]["price"]
    seen = []
    for answer in answers:
        at = millis(answer["asset"]["lastPriceAt"])
        assert at in ticks, (at, sorted(ticks))  # a tick the feed published, not a close
        assert answer["asset"]["lastPrice"] == ticks[at]
        # 100,000 deposited, 1 BTC bought at 30,000: the rest is cash.
        assert float(answer["portfolio"]["value"]) == pytest.approx(70_000 + ticks[at], rel=1e-9)
        seen.append(at)
    assert seen[1] > seen[0]  # and it moves


async def test_per_connection_subscription_limit(live: Server) -> None:
    async with ws_connect(live.ws_url) as connection:
        streams = [connection.subscribe(REALTIME["Prices"]) for _ in range(20)]
        firsts = await asyncio.gather(*(take(stream, 1) for stream in streams))
        assert len(firsts) == 20
        extra = connection.subscribe(REALTIME["Prices"])
        with pytest.raises((SubscriptionError, ConnectionClosed, asyncio.TimeoutError)):
            await take(extra, 1, timeout=5)


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_two_processes_share_one_feed_through_redis(
    backend: Backend, tmp_path: Path, settings: Settings
) -> None:
    first = start_server(settings, extra_env=FAST)
    second = start_server(settings, extra_env=FAST)
    try:
        async with ws_connect(first.ws_url) as one, ws_connect(second.ws_url) as two:
            query = REALTIME["Prices"]
            a, b = await asyncio.gather(
                take(one.subscribe(query), 10), take(two.subscribe(query), 10)
            )
        seen_a = {(t["prices"]["symbol"], t["prices"]["timestamp"]) for t in a}
        seen_b = {(t["prices"]["symbol"], t["prices"]["timestamp"]) for t in b}
        assert seen_a & seen_b  # the same ticks, from the one leader
        prices_a = {
            key: t["prices"]["price"]
            for t in a
            for key in [(t["prices"]["symbol"], t["prices"]["timestamp"])]
        }
        for tick in b:
            key = (tick["prices"]["symbol"], tick["prices"]["timestamp"])
            if key in prices_a:
                assert prices_a[key] == tick["prices"]["price"]
    finally:
        stop_server(first)
        stop_server(second)


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_ticks_resume_after_a_redis_restart(
    backend: Backend, tmp_path: Path, own_redis: OwnRedis
) -> None:
    settings = make_settings(
        Backend(backend.name, backend.database_url, own_redis.url), tmp_path, source="demo"
    )
    server = start_server(settings, extra_env=FAST)
    try:
        async with ws_connect(server.ws_url) as connection:
            stream = connection.subscribe(REALTIME["Prices"])
            before = await take(stream, 2)
            own_redis.restart()
            after = await take(stream, 2, timeout=10)  # within 10 s, no client action
        assert before and after
        assert after[-1]["prices"]["timestamp"] > before[-1]["prices"]["timestamp"]
        async with httpx.AsyncClient(base_url=server.url) as http:
            metrics = (await http.get("/metrics")).text
        assert "coinql_broadcast_reconnects_total 1.0" in metrics
    finally:
        stop_server(server)


async def test_legacy_graphql_ws_carries_subscriptions(live: Server) -> None:
    import json

    async with connect(live.ws_url, subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        messages = []
        await ws.send(
            json.dumps({"id": "1", "type": "start", "payload": {"query": REALTIME["Prices"]}})
        )
        while len(messages) < 3:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] == "data":
                messages.append(message["payload"]["data"]["prices"])
        await ws.send(json.dumps({"id": "1", "type": "stop"}))
    assert {m["symbol"] for m in messages} <= {"BTC", "ETH"}


async def metric(server: Server, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.url) as http:
        lines = (await http.get("/metrics")).text.splitlines()
    (value,) = [float(line.split()[-1]) for line in lines if line.split(" ")[0] == name]
    return value


async def test_identical_public_subscriptions_share_one_stream(live: Server) -> None:
    """Prices and candles run once per distinct document for all their subscribers, who each
    get the same payloads under their own ids, are each counted, and leave nothing behind."""
    async with ws_connect(live.ws_url) as one, ws_connect(live.ws_url) as two:
        first = one.subscribe(REALTIME["Prices"])
        second = two.subscribe(REALTIME["Prices"])
        candles = one.subscribe(REALTIME["LiveCandles"])
        btc_only = two.subscribe('subscription { prices(symbols: ["BTC"]) { symbol price } }')
        for stream in (first, second, candles, btc_only):
            await asyncio.wait_for(stream.__anext__(), 10)
        assert await metric(live, "coinql_shared_streams") == 3
        assert await metric(live, "coinql_active_subscriptions") == 4
        seen_first = {
            (t["prices"]["symbol"], t["prices"]["timestamp"]): t for t in await take(first, 8)
        }
        seen_second = {
            (t["prices"]["symbol"], t["prices"]["timestamp"]): t for t in await take(second, 8)
        }
        common = seen_first.keys() & seen_second.keys()
        assert common and all(seen_first[key] == seen_second[key] for key in common)
        assert {t["prices"]["symbol"] for t in await take(btc_only, 3)} == {"BTC"}
    for _ in range(50):  # the sockets closed without a word: the upstreams stop
        if await metric(live, "coinql_shared_streams") == 0:
            break
        await asyncio.sleep(0.1)
    assert await metric(live, "coinql_shared_streams") == 0
    assert await metric(live, "coinql_active_subscriptions") == 0


async def test_a_shared_stream_refuses_bad_documents_to_each_subscriber(live: Server) -> None:
    async with ws_connect(live.ws_url) as one, ws_connect(live.ws_url) as two:
        for connection in (one, two):
            with pytest.raises(SubscriptionError) as invalid:
                await take(
                    connection.subscribe('subscription { prices(symbols: ["BTC"]) { nope } }'), 1
                )
            assert "Cannot query field 'nope'" in str(invalid.value)
            with pytest.raises(SubscriptionError) as empty:
                await take(
                    connection.subscribe("subscription { prices(symbols: []) { price } }"), 1
                )
            assert "give 1 to 50 symbols" in str(empty.value)
        # The connections still work.
        await take(one.subscribe(REALTIME["Prices"]), 1)


async def test_no_subscription_outlives_its_client(live: Server) -> None:
    async with ws_connect(live.ws_url) as connection:
        streams = [connection.subscribe(REALTIME[name]) for name in ("Prices", "LiveCandles")]
        for stream in streams:  # open and running, not closed
            await asyncio.wait_for(stream.__anext__(), 10)
        async with httpx.AsyncClient(base_url=live.url) as http:
            during = (await http.get("/metrics")).text
        assert "coinql_active_subscriptions 2.0" in during
    # The socket closed without a word for either subscription: the server cleans up.
    for _ in range(50):
        async with httpx.AsyncClient(base_url=live.url) as http:
            after = (await http.get("/metrics")).text
        if "coinql_active_subscriptions 0.0" in after:
            break
        await asyncio.sleep(0.1)
    assert "coinql_active_subscriptions 0.0" in after


async def test_logging_out_closes_the_socket_mid_stream(live: Server) -> None:
    """Revoking the login (logout) ends its live streams: the socket closes with 4403 at the
    next token check (every 5 s while data flows)."""
    async with http_client(live) as client:
        registered = await client.sign_up("leaver@example.com")
        token, refresh = registered["accessToken"], registered["refreshToken"]
        portfolio_id = await btc_portfolio(client, token)
        async with ws_connect(live.ws_url, token) as connection:
            stream = connection.subscribe(REALTIME["LivePnl"], {"portfolioId": portfolio_id})
            await take(stream, 1)
            logout = await client.contract("server", "Logout", {"refreshToken": refresh})
            assert logout.ok() == {"logout": True}
            with pytest.raises((ConnectionClosed, SubscriptionError)):
                await take(stream, 1000, timeout=15)
            await asyncio.wait_for(connection.ws.wait_closed(), 15)
            assert connection.ws.close_code == 4403


async def test_per_user_subscription_limit(backend: Backend, tmp_path: Path) -> None:
    settings = make_settings(backend, tmp_path, source="demo")
    server = start_server(settings, extra_env={**FAST, "COINQL_MAX_SUBSCRIPTIONS_PER_USER": "3"})
    try:
        async with http_client(server) as client:
            token = await sign_up(client, "busy@example.com")
        async with ws_connect(server.ws_url, token) as one, ws_connect(server.ws_url, token) as two:
            streams = [one.subscribe(REALTIME["Prices"]) for _ in range(2)]
            streams.append(two.subscribe(REALTIME["Prices"]))
            for stream in streams:
                await asyncio.wait_for(stream.__anext__(), 10)
            with pytest.raises(SubscriptionError) as raised:
                await take(two.subscribe(REALTIME["Prices"]), 1, timeout=10)
        assert "at most 3 open subscriptions per user" in str(raised.value)
    finally:
        stop_server(server)


async def test_a_bot_streams_its_order_its_fill_and_its_value(live: Server) -> None:
    """A paper bot on the demo feed: a manual market order is written (NEW), fills at the
    feed's next price (FILLED, and its fill), and the bot's value follows the price."""
    async with http_client(live) as client:
        token = await sign_up(client)
        strategy = (
            await client.execute(
                'mutation { createStrategy(input: {name: "trend", kind: {smaCross:'
                " {fast: 10, slow: 30}}}) { ... on Strategy { id } } }",
                token=token,
            )
        ).ok()["createStrategy"]["id"]
        created = await client.contract(
            "trading", "CreateBot", {"strategyId": strategy}, token=token
        )
        bot = created.ok()["createBot"]["id"]
        started = await client.contract("trading", "StartBot", {"botId": bot}, token=token)
        assert started.ok()["startBot"]["status"] == "RUNNING"
    events: list[dict[str, Any]] = []
    async with ws_connect(live.ws_url, token) as connection:
        stream = connection.subscribe(
            TRADING["BotEvents"], {"botId": bot}, operation_name="BotEvents"
        )

        async def until_filled() -> None:
            async for data in stream:
                events.append(data["botEvents"])
                if any(event["__typename"] == "FillEvent" for event in events):
                    return

        listening = asyncio.create_task(until_filled())
        await asyncio.sleep(1.0)  # the subscription is up
        async with http_client(live) as client:
            placed = await client.contract("trading", "PlaceOrder", {"botId": bot}, token=token)
        order = placed.ok()["placeOrder"]["id"]
        await asyncio.wait_for(listening, 20)
    assert all(event["botId"] == bot for event in events)
    orders = [event for event in events if event["__typename"] == "OrderEvent"]
    assert [(event["orderId"], event["status"]) for event in orders] == [
        (order, "NEW"),
        (order, "FILLED"),
    ]
    (fill,) = [event for event in events if event["__typename"] == "FillEvent"]
    assert (fill["orderId"], fill["side"], fill["quantity"]) == (order, "BUY", "0.01")
    assert fill["price"] == orders[-1]["price"]
    assert any(event["__typename"] == "BotValueEvent" for event in events)
