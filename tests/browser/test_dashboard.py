"""The dashboard and GraphiQL in a real browser against a real server on the demo feed: live
prices that change, a portfolio's live value after signing in, a backtest's progress to 100 %
and its equity chart, GraphiQL running a query, a bot stopped by the emergency button, and
a socket that outlives its access token. No console errors, no request to another host."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import WebSocket, expect

from tests.browser.conftest import Watched

pytestmark = pytest.mark.timeout(180)

PASSWORD = "correct horse battery staple"


async def register(page: Watched, email: str) -> None:
    await page.page.goto("/#/account")
    await page.page.get_by_label("Email").fill(email)
    await page.page.get_by_label("Password").fill(PASSWORD)
    await page.page.get_by_role("button", name="Register").click()
    await expect(page.page.get_by_role("button", name="Sign out")).to_be_visible()


async def deposit_and_buy_btc(page: Watched) -> None:
    """Through the portfolio's form: 10,000 USDT in, then 0.1 BTC bought at 30,000."""
    await page.page.get_by_text("Transactions (0)").click()
    form = page.page.get_by_role("form", name="Add a transaction")
    await form.get_by_label("Quantity").fill("10000")
    await form.get_by_label("Time").fill("2021-01-01T00:00")
    await form.get_by_role("button", name="Add").click()
    await expect(page.page.get_by_text("Transactions (1)")).to_be_visible()
    await form.get_by_label("Kind").select_option("BUY")
    await form.get_by_label("Asset").fill("BTC")
    await form.get_by_label("Quantity").fill("0.1")
    await form.get_by_label("Price").fill("30000")
    await form.get_by_role("button", name="Add").click()
    await expect(page.page.get_by_text("Transactions (2)")).to_be_visible()


async def test_markets_show_live_prices_that_change(page: Watched) -> None:
    await page.page.goto("/")
    btc = page.page.locator('tr[data-symbol="BTC"] td.price')
    await expect(btc).to_have_attribute("data-live", "yes", timeout=15_000)
    first = await btc.inner_text()
    await expect(btc).not_to_have_text(first, timeout=15_000)  # a later tick, another price
    await expect(page.page.locator("header .demo")).to_have_text("DEMO DATA")
    assert await page.page.locator("tbody tr").count() >= 6
    await page.shot("markets")


async def test_asset_page_draws_candles_and_the_tear_sheet(page: Watched) -> None:
    await page.page.goto("/#/asset/BTC")
    chart = page.page.get_by_role("img", name="BTC candles")
    await expect(chart.locator("canvas").first).to_be_visible()
    await expect(chart).to_have_attribute("data-points", re.compile(r"^\d{4,}$"))  # 4 years of days
    await expect(page.page.get_by_text("Sharpe", exact=True)).to_be_visible()
    await expect(page.page.get_by_label("Monthly returns")).to_be_visible()
    await expect(page.page.get_by_text("live", exact=True)).to_be_visible(timeout=15_000)
    await page.shot("asset")


async def test_sign_in_create_a_portfolio_and_see_its_live_value(page: Watched) -> None:
    await register(page, "ada@example.com")
    await page.page.goto("/#/portfolio")
    await page.page.get_by_label("New portfolio name").fill("Long BTC")
    await page.page.get_by_role("button", name="Create").click()
    await expect(page.page.get_by_role("heading", name="Long BTC")).to_be_visible()
    await deposit_and_buy_btc(page)
    await page.page.get_by_label("Paste CSV rows").fill(
        "kind,asset,quantity,price,fee,time\nDEPOSIT,USDT,500,,,2021-01-03T00:00:00Z\n"
    )
    await page.page.get_by_role("button", name="Import rows").click()
    await expect(page.page.get_by_text("Transactions (3)")).to_be_visible()
    await expect(page.page.get_by_label("Paste CSV rows")).to_have_value("")
    value = page.page.get_by_test_id("live-value")
    await expect(value).to_have_attribute("data-live", "yes", timeout=20_000)
    # 7,500 in cash and 0.1 BTC at the demo's price: the live value holds both
    await expect(value).to_have_text(re.compile(r"^(7,[5-9]|[89],|\d\d,)\d{3}\.\d\d$"))
    shown = float((await value.inner_text()).replace(",", ""))
    assert shown > 7_500
    await expect(value).not_to_have_text(f"{shown:,.2f}", timeout=20_000)  # BTC's ticks move it
    await expect(page.page.get_by_role("cell", name="BTC", exact=True).first).to_be_visible()
    await page.shot("portfolio")


async def test_a_backtest_reaches_100_percent_and_draws_its_equity(page: Watched) -> None:
    await register(page, "ada@example.com")
    await page.page.goto("/#/backtests")
    await page.page.get_by_role("button", name="Run", exact=True).click()
    bar = page.page.get_by_role("progressbar", name="Job progress")
    await expect(bar).to_be_visible()
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=60_000)
    equity = page.page.get_by_role("img", name="Equity", exact=True)
    await expect(equity.locator("canvas").first).to_be_visible(timeout=15_000)
    await expect(equity).to_have_attribute("data-points", re.compile(r"^\d{3,}$"))
    await expect(page.page.get_by_role("heading", name="Trades")).to_be_visible()
    await page.page.get_by_role("button", name="Refresh").click()
    await expect(page.page.get_by_role("checkbox")).to_have_count(1)
    await page.shot("backtests")


async def test_a_walk_forward_study_shows_its_splits(page: Watched) -> None:
    await register(page, "ada@example.com")
    await page.page.goto("/#/backtests")
    study = page.page.get_by_role("form", name="Run a study")
    await study.get_by_label("Train bars").fill("365")
    await study.get_by_role("button", name="Run the study").click()
    bar = study.get_by_role("progressbar", name="Job progress")
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=90_000)
    splits = study.get_by_role("table", name="Walk-forward splits").locator("tbody tr")
    await expect(splits.first).to_be_visible()
    assert await splits.count() >= 5  # four years of days, a year to train, 90 days to test
    await expect(study).to_contain_text("Out-of-sample sharpe over in-sample (decay)")


async def test_graphiql_loads_offline_and_runs_a_query(page: Watched) -> None:
    await page.page.goto("/graphql")
    editor = page.page.locator(".graphiql-query-editor")
    await expect(editor).to_contain_text(re.compile(r"(query|mutation) \w+"))  # tabs loaded
    tab = page.page.get_by_role("tab", name="ServerInfo")  # server.graphql's
    await tab.click()
    await expect(tab).to_have_attribute("aria-selected", "true")
    await expect(editor).to_contain_text("query ServerInfo")
    await page.page.get_by_role("button", name="Execute query").click()
    await page.page.get_by_role("menuitem", name="ServerInfo").click()  # of its operations
    result = page.page.locator(".graphiql-response")
    await expect(result).to_contain_text('"serverInfo"', timeout=15_000)
    await expect(result).to_contain_text('"dataSource": "demo"')
    await page.shot("graphiql")


async def test_a_paper_bot_and_the_emergency_stop(page: Watched) -> None:
    await register(page, "ada@example.com")
    await page.page.goto("/#/bots")
    await page.page.get_by_role("button", name="New paper bot").click()
    await expect(page.page.get_by_test_id("bot-status")).to_have_text("CREATED")
    await page.page.get_by_role("button", name="Start").click()
    await expect(page.page.get_by_test_id("bot-status")).to_have_text("RUNNING")
    await expect(page.page.get_by_label("Bot events").locator("li").first).to_be_visible(
        timeout=20_000
    )
    await page.shot("bots")
    page.page.once("dialog", lambda dialog: dialog.accept())
    await page.page.get_by_role("button", name="Emergency stop").click()
    await expect(page.page.get_by_role("status")).to_contain_text("Stopped 1 bots")
    await page.page.reload()
    await expect(page.page.get_by_test_id("bot-status")).to_have_text("STOPPED")


async def test_the_phone_layout_does_not_scroll_sideways(page: Watched) -> None:
    await page.page.set_viewport_size({"width": 390, "height": 844})
    await page.page.goto("/")
    await expect(page.page.locator('tr[data-symbol="BTC"]')).to_be_visible()
    width = await page.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px phone"


@pytest.mark.parametrize("web_server", [{"COINQL_ACCESS_TOKEN_TTL_SECONDS": "12"}], indirect=True)
async def test_the_token_is_refreshed_and_the_socket_reconnects_after_4403(
    page: Watched,
) -> None:
    """A 12 s access token: the app refreshes it before it expires, the server closes the
    socket opened with the old one (4403), and the live value keeps coming on a new one."""
    sockets: list[WebSocket] = []
    page.page.on("websocket", lambda socket: sockets.append(socket))
    await register(page, "ada@example.com")
    await page.page.goto("/#/portfolio")
    await page.page.get_by_label("New portfolio name").fill("Long BTC")
    await page.page.get_by_role("button", name="Create").click()
    await deposit_and_buy_btc(page)
    value = page.page.get_by_test_id("live-value")
    await expect(value).to_have_attribute("data-live", "yes", timeout=20_000)
    first = json.loads(await page.page.evaluate("localStorage.getItem('coinql.session')"))
    await page.page.wait_for_timeout(16_000)  # past the first token's expiry
    now = json.loads(await page.page.evaluate("localStorage.getItem('coinql.session')"))
    assert now["accessToken"] != first["accessToken"]
    assert len(sockets) >= 2 and sockets[0].is_closed(), "no new socket after the 4403"
    at = await value.get_attribute("data-at")
    await expect(value).not_to_have_attribute("data-at", at or "", timeout=15_000)
    assert not sockets[-1].is_closed()  # the value came on the new socket
    await expect(page.page.get_by_role("alert")).to_have_count(0)
