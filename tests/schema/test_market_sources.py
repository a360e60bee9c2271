"""Market data sources through the app: the demo default and an exchange (ccxt-shaped fake)."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import ccxt
import pytest
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.cli import main
from coinql.domain.candles import DAY_MS
from tests.client import GraphQLClient
from tests.conftest import COINS_DIR, Backend, make_settings, make_user
from tests.fakes import FakeExchange, ohlcv_rows
from tests.helpers import exchange_app, running, wait_for_ingestion


@pytest.fixture
async def demo(backend: Backend, tmp_path: Path) -> AsyncIterator[GraphQLClient]:
    async with running(create_app(make_settings(backend, tmp_path, source="demo"))) as client:
        yield client


async def test_demo_market_is_loaded_and_labelled(demo: GraphQLClient) -> None:
    info = (await demo.contract("server", "ServerInfo")).ok()["serverInfo"]
    assert info["dataSource"] == "demo"
    response = await demo.execute(
        "{ assets(first: 20) { totalCount edges { node { symbol dataSource stablecoin lastPrice"
        " candles(interval: H1) { count } } } } }"
    )
    assets = response.ok()["assets"]
    assert assets["totalCount"] >= 8
    nodes = [edge["node"] for edge in assets["edges"]]
    assert {node["dataSource"] for node in nodes} == {"demo"}
    assert {node["symbol"] for node in nodes if node["stablecoin"]} == {"USDT", "USDC"}
    assert all(node["candles"]["count"] == 21 * 24 for node in nodes)
    universe = await demo.execute("{ universe(top: 3) { symbol stablecoin } }")
    assert [a["stablecoin"] for a in universe.ok()["universe"]] == [False] * 3
    candles = await demo.contract("market", "Candles", {"symbol": "BTC"})
    assert candles.ok()["asset"]["candles"]["count"] == 4 * 365


@pytest.fixture
def start() -> int:
    """30 closed daily candles ago, as the test starts (not when the module was collected: a
    run that crosses midnight would see the day before close)."""
    return int(time.time() * 1000) // DAY_MS * DAY_MS - 30 * DAY_MS


@pytest.fixture
def exchange(start: int) -> FakeExchange:
    return FakeExchange(
        {
            ("BTC/USDT", "1d"): ohlcv_rows(start, 30),
            ("ETH/USDT", "1d"): ohlcv_rows(start, 30, base=10.0),
        }
    )


async def test_a_scheduler_that_stops_succeeding_shows_as_stalled_without_failing(
    backend: Backend, tmp_path: Path, exchange: FakeExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung scheduler fails nothing: the age of the last success against three polls says
    it is stalled, in ingestionStatus and in /health/ready."""
    async with exchange_app(backend, tmp_path, exchange) as (app, client):
        await wait_for_ingestion(client, jobs=2)
        services = app.state.services
        healthy = (await client.contract("market", "IngestionStatus")).ok()["ingestionStatus"]
        assert all(status["stalledBySeconds"] == 0 for status in healthy)
        later = services.now() + timedelta(hours=3, seconds=5)  # three hourly polls and more
        monkeypatch.setattr(services, "now", lambda: later)
        statuses = (await client.contract("market", "IngestionStatus")).ok()["ingestionStatus"]
        assert all(s["consecutiveFailures"] == 0 for s in statuses)
        assert all(3 * 3600 < s["stalledBySeconds"] <= 3 * 3600 + 60 for s in statuses)
        ready = (await client.http.get("/health/ready")).json()["components"]["ingestion"]
        assert ready["status"] == "degraded" and len(ready["stalled"]) == 2


async def test_exchange_ingestion_runs_and_reports(
    backend: Backend, tmp_path: Path, exchange: FakeExchange, start: int
) -> None:
    async with exchange_app(backend, tmp_path, exchange) as (_app, client):
        statuses = await wait_for_ingestion(client, jobs=2)
        assert {(s["exchange"], s["symbol"], s["interval"]) for s in statuses} == {
            ("fakex", "BTC", "D1"),
            ("fakex", "ETH", "D1"),
        }
        assert all(s["consecutiveFailures"] == 0 and s["stalledBySeconds"] == 0 for s in statuses)
        info = (await client.contract("server", "ServerInfo")).ok()["serverInfo"]
        assert info["dataSource"] == "fakex"
        btc = await client.execute(
            '{ asset(symbol: "BTC") { dataSource marketCap candles { count close } } }'
        )
        asset = btc.ok()["asset"]
        assert asset["dataSource"] == "fakex" and asset["candles"]["count"] == 30
        assert asset["candles"]["close"] == [row[4] for row in ohlcv_rows(start, 30)]
        ready = (await client.http.get("/health/ready")).json()
        assert ready["components"]["ingestion"]["status"] == "up"
        assert ready["components"]["ingestion"]["role"] == "leader"
        metrics = (await client.http.get("/metrics")).text.splitlines()
        assert 'coinql_candles_inserted_total{source="fakex"} 60.0' in metrics
        lags = {
            line.split("{")[1].split("}")[0]: float(line.split()[-1])
            for line in metrics
            if line.startswith("coinql_ingestion_lag_seconds{")
        }
        assert set(lags) == {'interval="D1",symbol="BTC"', 'interval="D1",symbol="ETH"'}
        assert all(0 <= lag < 60 for lag in lags.values())
    assert exchange.closed


async def test_a_failing_exchange_shows_as_stalled(
    backend: Backend, tmp_path: Path, exchange: FakeExchange
) -> None:
    exchange.always_fail = ccxt.ExchangeNotAvailable("503 Service Unavailable")
    async with exchange_app(backend, tmp_path, exchange) as (app, client):
        # Backoff sleeps are real here: make them instant for the test.
        app.state.services.exchange.backoff.base_seconds = 0
        statuses = await wait_for_ingestion(client, jobs=2)
        assert all(s["consecutiveFailures"] >= 1 for s in statuses)
        assert all("ExchangeNotAvailable" in str(s["lastError"]) for s in statuses)
        response = await client.http.get("/health/ready")
        assert response.status_code == 200  # stored data still serves
        ingestion = response.json()["components"]["ingestion"]
        assert ingestion["status"] == "degraded"
        assert {job["symbol"] for job in ingestion["stalled"]} == {"BTC", "ETH"}


async def test_backfill_mutation_fills_a_gap(
    backend: Backend, tmp_path: Path, exchange: FakeExchange, start: int
) -> None:
    rows = exchange.rows[("BTC/USDT", "1d")]
    exchange.rows[("BTC/USDT", "1d")] = [row for row in rows if row[0] != start + 5 * DAY_MS]
    async with exchange_app(backend, tmp_path, exchange) as (app, client):
        await wait_for_ingestion(client, jobs=2)
        gaps = (await client.contract("market", "DataGaps", {"symbol": "BTC"})).ok()["dataGaps"]
        assert [gap["missingCandles"] for gap in gaps] == [1]
        exchange.rows[("BTC/USDT", "1d")] = rows
        admin = await make_user(app, client, "root@example.com", admin=True)
        mutation = (
            'mutation($s: DateTime!, $e: DateTime!) { backfill(symbol: "BTC", interval: D1,'
            " start: $s, end: $e) { __typename ... on BackfillReport { gapsFound gapsFixed"
            " candlesAdded } ... on Error { message } } }"
        )
        variables = {"s": gaps[0]["start"], "e": gaps[0]["end"]}
        anonymous = await client.execute(mutation, variables)
        assert anonymous.ok()["backfill"]["__typename"] == "NotAuthenticated"
        report = (await client.execute(mutation, variables, token=admin)).ok()["backfill"]
        assert report == {
            "__typename": "BackfillReport",
            "gapsFound": 1,
            "gapsFixed": 1,
            "candlesAdded": 1,
        }
        assert (await client.contract("market", "DataGaps", {"symbol": "BTC"})).ok() == {
            "dataGaps": []
        }


async def test_backfill_without_an_exchange_says_so(app: Starlette, client: GraphQLClient) -> None:
    admin = await make_user(app, client, "root@example.com", admin=True)
    response = await client.execute(
        'mutation { backfill(symbol: "BTC", start: "2021-01-01T00:00:00Z",'
        ' end: "2021-01-02T00:00:00Z") { __typename ... on Error { message } } }',
        token=admin,
    )
    result = response.ok()["backfill"]
    assert result["__typename"] == "InvalidInput"
    assert "no exchange is configured" in result["message"]


async def test_cli_import_reports_and_fails_on_a_rejected_file(
    backend: Backend,
    client: GraphQLClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COINQL_DATABASE_URL", backend.database_url)
    bad = tmp_path / "bad.csv"
    lines = (COINS_DIR / "coin_Dogecoin.csv").read_text().splitlines()
    lines[3] = lines[3].replace("DOGE,", "DOGE,not a date", 1)
    bad.write_text("\n".join(lines))
    good = COINS_DIR / "coin_Litecoin.csv"
    code = await asyncio.to_thread(main, ["import", str(good), str(bad)])
    captured = capsys.readouterr()
    assert code == 1
    assert "LTC D1 (daily-market-cap): 1648 rows read, 1648 candles written" in captured.out
    assert "line 4: Date 'not a date1/03/17 23:59' is not a date" in captured.err
    # the stages of each file, as they go, on stderr
    assert re.search(r"coin_Litecoin.csv: parsing 0\.\d MB \(\d+\.\d s\)", captured.err)
    assert "coin_Litecoin.csv: writing 1,648 candles of LTC D1 (" in captured.err
    listed = await client.execute("{ assets { edges { node { symbol } } } }")
    assert [e["node"]["symbol"] for e in listed.ok()["assets"]["edges"]] == ["LTC"]


def test_cli_import_unknown_file_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("COINQL_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    from coinql.migrations import upgrade

    upgrade(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert main(["import", str(tmp_path / "missing.csv")]) == 1
