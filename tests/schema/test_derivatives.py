"""The research contract's Derivatives on the demo market, run as written: an asset's funding,
open interest and basis, their conventions, null for an asset without a perpetual, the typed
error for a window that ends before it starts, and coarser intervals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.domain.candles import DAY_MS, Interval
from coinql.domain.derivatives import FUNDING_PERIOD_MS, HOUR_MS
from coinql.store import derivatives as derivatives_store
from coinql.store import market as market_store
from tests.client import GraphQLClient
from tests.conftest import Backend, make_settings
from tests.helpers import running

VARIABLES = {"symbol": "BTC", "start": "2025-01-01T00:00:00Z", "end": "2026-06-30T00:00:00Z"}
START_MS = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
END_MS = int(datetime(2026, 6, 30, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
async def demo(backend: Backend, tmp_path: Path) -> AsyncIterator[tuple[Starlette, GraphQLClient]]:
    app = create_app(make_settings(backend, tmp_path, source="demo", feed_enabled=False))
    async with running(app) as client:
        yield app, client


def arrays(series: dict[str, Any], *names: str) -> list[np.ndarray[Any, Any]]:
    return [np.asarray(series[name], dtype=np.float64) for name in names]


async def test_the_contract_reads_btc_funding_open_interest_and_basis_as_the_demo_stored_them(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    app, client = demo
    found = (await client.contract("research", "Derivatives", VARIABLES)).ok()["asset"]
    funding, open_interest, basis = found["funding"], found["openInterest"], found["basis"]

    assert funding["dataSource"] == "demo"
    times, rates = arrays(funding, "timestamps", "rates")
    # Every 8 hours, 00:00, 08:00 and 16:00 UTC, both ends of the window included.
    np.testing.assert_array_equal(times, np.arange(START_MS, END_MS + 1, FUNDING_PERIOD_MS))
    assert np.isfinite(rates).all() and np.abs(rates).max() < 0.01  # per period, not percent
    assert 0 < rates.mean() < 0.0005  # longs pay shorts on average, about 0.01 % a period

    hours = np.arange(START_MS, END_MS + 1, HOUR_MS)
    oi_times, oi = arrays(open_interest, "timestamps", "values")
    basis_times, premium = arrays(basis, "timestamps", "values")
    np.testing.assert_array_equal(oi_times, hours)
    np.testing.assert_array_equal(basis_times, hours)
    assert (oi > 0).all() and np.isfinite(premium).all()
    assert np.abs(premium).max() < 0.05 and premium.mean() > 0

    # The sign conventions together: when the perpetual traded above spot in the 8 hours
    # before a funding, longs paid more (funding and basis move together).
    before = premium[:-1].reshape(-1, FUNDING_PERIOD_MS // HOUR_MS).mean(axis=1)
    assert np.corrcoef(rates[1:], before)[0, 1] > 0.3
    assert rates[1:][before > 0].mean() > rates[1:][before < 0].mean()

    # basis = (mark - spot) / spot, spot being the index stored beside the mark; the index
    # closes each day at the day's spot close, which the API serves as candles.
    async with app.state.services.reader() as session:
        asset = await market_store.get_asset(session, symbol="BTC")
        assert asset is not None and asset.id is not None
        perpetual = (await derivatives_store.perpetuals_of(session, asset_ids=[asset.id]))[
            asset.id
        ][0]
        assert perpetual.id is not None and perpetual.data_source == "demo"
        bars = await derivatives_store.read_bars(
            session, perpetual_id=perpetual.id, interval=Interval.H1, start=START_MS, end=END_MS
        )
    np.testing.assert_allclose(premium, (bars.mark_price - bars.index_price) / bars.index_price)
    daily = await client.execute(
        'query($start: DateTime, $end: DateTime) { asset(symbol: "BTC") {'
        " candles(interval: D1, start: $start, end: $end) { timestamps close } } }",
        {"start": VARIABLES["start"], "end": "2026-06-29T00:00:00Z"},
    )
    spot = daily.ok()["asset"]["candles"]
    closing_hours = np.asarray(spot["timestamps"]) + DAY_MS - HOUR_MS
    at = np.searchsorted(bars.timestamps, closing_hours)
    np.testing.assert_allclose(bars.index_price[at], spot["close"], rtol=1e-12)


async def test_an_asset_without_a_perpetual_answers_null_without_error(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    _, client = demo
    found = await client.contract("research", "Derivatives", {**VARIABLES, "symbol": "USDT"})
    assert found.ok()["asset"] == {"funding": None, "openInterest": None, "basis": None}


async def test_a_window_ending_before_it_starts_is_the_typed_invalid_input(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    _, client = demo
    backwards = {**VARIABLES, "start": VARIABLES["end"], "end": VARIABLES["start"]}
    response = await client.contract("research", "Derivatives", backwards)
    assert response.data["asset"] == {"funding": None, "openInterest": None, "basis": None}
    fields = {tuple(error["path"]): error["extensions"] for error in response.errors}
    assert set(fields) == {("asset", "funding"), ("asset", "openInterest"), ("asset", "basis")}
    for extensions in fields.values():
        assert extensions["code"] == "InvalidInput" and extensions["field"] == "end"


async def test_coarser_intervals_are_the_hour_closing_each_bucket_and_finer_ones_empty(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    _, client = demo
    query = (
        'query($i: Interval!, $end: DateTime) { asset(symbol: "ETH") {'
        ' openInterest(interval: $i, start: "2026-01-01T00:00:00Z", end: $end)'
        " { timestamps values }"
        ' basis(interval: $i, start: "2026-01-01T00:00:00Z", end: $end)'
        " { timestamps values } } }"
    )
    hourly = await client.execute(query, {"i": "H1", "end": "2026-01-31T23:00:00Z"})
    daily = await client.execute(query, {"i": "D1", "end": "2026-01-31T00:00:00Z"})
    first = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    days = first + np.arange(31) * DAY_MS
    for field in ("openInterest", "basis"):
        hours, by_day = hourly.ok()["asset"][field], daily.ok()["asset"][field]
        np.testing.assert_array_equal(by_day["timestamps"], days)
        by_hour = dict(zip(hours["timestamps"], hours["values"], strict=True))
        assert by_day["values"] == [by_hour[int(day) + DAY_MS - HOUR_MS] for day in days]
    finer = await client.execute(query, {"i": "M5", "end": None})
    assert finer.ok()["asset"]["openInterest"] == {"timestamps": [], "values": []}


async def test_a_page_of_assets_reads_their_perpetuals_in_one_statement(
    demo: tuple[Starlette, GraphQLClient],
) -> None:
    app, client = demo
    found: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        found.append(statement)

    engine = app.state.services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        page = await client.execute(
            "{ assets(first: 10) { edges { node { symbol"
            ' funding(start: "2026-06-01T00:00:00Z", end: "2026-06-02T00:00:00Z") { rates }'
            ' basis(start: "2026-06-01T00:00:00Z", end: "2026-06-01T05:00:00Z") { values }'
            ' openInterest(start: "2026-06-01T00:00:00Z", end: "2026-06-01T05:00:00Z")'
            " { values } } } } }"
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    nodes = [edge["node"] for edge in page.ok()["assets"]["edges"]]
    with_perpetual = [node for node in nodes if node["funding"] is not None]
    assert len(with_perpetual) == 6 and len(nodes) == 8
    assert all(len(node["funding"]["rates"]) == 4 for node in with_perpetual)
    assert all(len(node["basis"]["values"]) == 6 for node in with_perpetual)
    assert sum("FROM perpetuals" in statement for statement in found) == 1
    # openInterest and basis of an asset share one load of its bars: the intervals stored,
    # then the bars (twice as many statements if each field read its own).
    assert sum("FROM perpetual_bars" in statement for statement in found) == 2 * 6
