"""GET /reports/...: self-contained HTML tear sheets of an asset, a portfolio and a backtest
run, with the API's own numbers and its authorization (a portfolio is its owner's only)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from coinql.settings import Settings
from tests.client import GraphQLClient
from tests.conftest import import_real_files, worker_for
from tests.helpers import run_contract_backtest

SHARPE = '{ asset(symbol: "BTC") { performance(interval: D1) { sharpe maxDrawdown } } }'


@pytest.fixture
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes] | None]:
    """With Redis, backtests run on a `coinql worker`."""
    with worker_for(settings) as process:
        yield process


def self_contained(page: str) -> None:
    """Nothing in the page loads from anywhere: no scripts, no stylesheets, no images by URL."""
    assert page.startswith("<!doctype html>")
    assert not re.search(r"<script|<link|<img|<iframe|src=|@import|url\(", page), page[:500]


async def test_an_asset_report_has_the_apis_numbers_and_inline_charts(
    client: GraphQLClient, admin: str
) -> None:
    await import_real_files(client, admin)
    response = await client.http.get("/reports/asset/BTC")  # public data, like the API
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    page = response.text
    self_contained(page)
    sheet = (await client.execute(SHARPE)).ok()["asset"]["performance"]
    assert f"<td>Sharpe</td><td>{sheet['sharpe']:,.2f}</td>" in page
    assert f"<td>Max drawdown</td><td>{sheet['maxDrawdown'] * 100:.2f}%</td>" in page
    assert page.count("<svg") == 2  # growth of 1, drawdown
    assert "<h2>Monthly returns</h2>" in page and "<th>2020</th>" in page
    assert "DEMO DATA" not in page  # imported files, not the demo


async def test_a_backtest_report_lists_its_trades(
    client: GraphQLClient, admin: str, worker: subprocess.Popen[bytes] | None
) -> None:
    await import_real_files(client, admin)
    client.token = (await client.sign_up())["accessToken"]
    job = await run_contract_backtest(client)
    run = job["result"]
    page = (
        await client.http.get(
            f"/reports/backtest/{run['id']}", headers={"Authorization": f"Bearer {client.token}"}
        )
    ).text
    self_contained(page)
    assert "<h2>Trades</h2>" in page
    assert page.count("<tr><td>BTC</td>") == run["metrics"]["tradeCount"]


async def test_a_portfolio_report_is_its_owners_only(client: GraphQLClient, admin: str) -> None:
    await import_real_files(client, admin)
    ada = (await client.sign_up("ada@example.com"))["accessToken"]
    bob = (await client.sign_up("bob@example.com"))["accessToken"]
    created = (await client.contract("portfolio", "CreatePortfolio", token=ada)).ok()
    path = f"/reports/portfolio/{created['createPortfolio']['id']}"
    own = await client.http.get(path, headers={"Authorization": f"Bearer {ada}"})
    assert own.status_code == 200 and "<h2>Positions</h2>" in own.text
    self_contained(own.text)
    anonymous = await client.http.get(path)
    assert anonymous.status_code == 401, anonymous.text
    other = await client.http.get(path, headers={"Authorization": f"Bearer {bob}"})
    assert other.status_code == 404, other.text
    assert (await client.http.get("/reports/strategy/x")).status_code == 404
