"""The risk monitor: limits checked whatever the market source, with no feed at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from coinql.app import create_app
from coinql.domain.candles import DAY_MS, Candles, Interval
from coinql.store import market as market_store
from tests.client import GraphQLClient
from tests.conftest import CONTRACT_DIR, Backend, make_settings

DAYS = 60


async def test_limits_alert_with_no_feed_running(backend: Backend, tmp_path: Path) -> None:
    """COINQL_SOURCE=none: no tick ever arrives, yet a breached limit alerts on schedule, once."""
    app = create_app(make_settings(backend, tmp_path, source="none", risk_check_seconds=0.2))
    async with app.router.lifespan_context(app):
        services = app.state.services
        assert services.feed is None
        start = (int(datetime.now(UTC).timestamp() * 1000) // DAY_MS - DAYS) * DAY_MS
        closes = np.linspace(30_000.0, 40_000.0, DAYS)
        async with services.transaction() as session:
            await market_store.save_candles(
                session,
                symbol="BTC",
                name="Bitcoin",
                data_source="import",
                exchange="import",
                pair="BTC/USD",
                interval=Interval.D1,
                candles=Candles.from_columns(
                    start + np.arange(DAYS) * DAY_MS,
                    closes,
                    closes,
                    closes,
                    closes,
                    np.ones(DAYS),
                    [None] * DAYS,
                ),
                now=datetime.now(UTC),
            )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            client.token = (await client.sign_up())["accessToken"]
            created = (await client.contract("portfolio", "CreatePortfolio")).ok()
            portfolio_id = created["createPortfolio"]["id"]
            bought = datetime.fromtimestamp(start / 1000 + DAY_MS / 1000, UTC).isoformat()
            transactions = [
                {"kind": "DEPOSIT", "asset": "USDT", "quantity": "50000", "time": bought},
                {"kind": "BUY", "asset": "BTC", "quantity": "1", "price": "30000", "time": bought},
            ]
            added = await client.contract(
                "portfolio",
                "AddTransactions",
                {"portfolioId": portfolio_id, "transactions": transactions},
            )
            assert added.ok()
            limits = await client.execute(
                "mutation($p: ID!) { setRiskLimits(portfolioId: $p, limits:"
                " {maxPositionWeight: 0.05}) { __typename } }",
                {"p": portfolio_id},
            )
            assert limits.ok()["setRiskLimits"]["__typename"] == "RiskLimits"
            query = "query($p: ID!) { alerts(portfolioId: $p) { limit observed threshold } }"
            found: list[dict[str, object]] = []
            for _ in range(100):
                found = (await client.execute(query, {"p": portfolio_id})).ok()["alerts"]
                if found:
                    break
                await asyncio.sleep(0.05)
            checks = services.background["risk"]
            await asyncio.sleep(0.6)  # more checks see the same breach: no second alert
            again = (await client.execute(query, {"p": portfolio_id})).ok()["alerts"]
    assert checks == "leader"
    assert len(found) == 1 and found[0]["limit"] == "max_position_weight"
    assert again == found
