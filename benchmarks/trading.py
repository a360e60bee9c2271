"""The emergency stop: from `emergencyStop(closePositions: true)` to every bot of the caller
stopped, its open order cancelled and its position sold, over GraphQL on the embedded store."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import BENCHMARK_SECRET, UNLIMITED_BUDGETS, Figure

BOTS = 50
STRATEGY = (
    'mutation { createStrategy(input: {name: "trend", kind: {smaCross: {fast: 10, slow: 30}}})'
    " { ... on Strategy { id } } }"
)
CREATE = (
    'mutation($s: ID!) { createBot(input: {name: "bot", strategyId: $s, symbol: "BTC",'
    ' interval: D1, capital: "10000"}) { ... on Bot { id } } }'
)
ORDER = (
    "mutation($b: ID!, $type: OrderType!, $price: Decimal) { placeOrder(input: {botId: $b,"
    ' side: BUY, type: $type, quantity: "0.01", price: $price}) { __typename } }'
)
STOP = (
    "mutation { emergencyStop(closePositions: true) { ... on EmergencyStopResult"
    " { botsStopped ordersCancelled positionsClosed } } }"
)


async def stop_figures(bots: int) -> list[Figure]:
    from coinql.app import create_app
    from coinql.migrations import upgrade
    from coinql.settings import Settings

    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'trading.db'}"
        await asyncio.to_thread(upgrade, url)
        app = create_app(
            Settings(
                database_url=url,
                secret_key=BENCHMARK_SECRET,
                secret_key_file=Path(directory) / "secret",
                encryption_key_file=Path(directory) / "encryption-key",
                source="demo",
                feed_enabled=False,
                bot_poll_seconds=0,
                account_sync_seconds=0,
                log_level="WARNING",
                **UNLIMITED_BUDGETS,
            )
        )
        async with app.router.lifespan_context(app):
            services = app.state.services
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as http:

                async def call(query: str, token: str, **variables: object) -> dict:
                    response = await http.post(
                        "/graphql",
                        json={"query": query, "variables": variables},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    body = response.json()
                    assert not body.get("errors"), body
                    return body["data"]

                signed = await http.post(
                    "/graphql",
                    json={
                        "query": 'mutation { register(email: "b@example.com", password:'
                        ' "a long benchmark password") { ... on AuthPayload { accessToken } } }'
                    },
                )
                token = signed.json()["data"]["register"]["accessToken"]
                strategy = (await call(STRATEGY, token))["createStrategy"]["id"]
                now = int(time.time() * 1000)
                services.prices.record("BTC", 30_000.0, now)
                ids = []
                for _ in range(bots):
                    bot = (await call(CREATE, token, s=strategy))["createBot"]["id"]
                    await call(ORDER, token, b=bot, type="MARKET", price=None)
                    await call(ORDER, token, b=bot, type="LIMIT", price="20000")
                    ids.append(bot)
                services.prices.record("BTC", 30_100.0, now + 1)
                async with services.sessions() as session:
                    from coinql.store.bots import Bot

                    rows = [await session.get(Bot, _uuid(bot)) for bot in ids]
                for row in rows:  # the market buys fill at the next price
                    assert row is not None
                    await services.bots.offer_price(row, await services.bots.quote_now("BTC"))
                started = time.perf_counter()
                found = (await call(STOP, token))["emergencyStop"]
                elapsed = time.perf_counter() - started
    assert found == {"botsStopped": bots, "ordersCancelled": bots, "positionsClosed": bots}, found
    return [
        Figure(
            f"emergencyStop: {bots} bots, {bots} open orders cancelled, {bots} positions sold",
            elapsed * 1000,
            "ms",
            target="< 2,000 ms",
        )
    ]


def _uuid(global_id: str) -> object:
    import uuid

    from strawberry import relay

    return uuid.UUID(relay.GlobalID.from_id(global_id).node_id)


async def run(*, quick: bool) -> list[Figure]:
    return await stop_figures(10 if quick else BOTS)
