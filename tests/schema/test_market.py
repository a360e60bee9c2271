"""The operations of ../shared/contract/market.graphql on the real coins data."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func
from sqlmodel import select
from starlette.applications import Starlette

from coinql.store.candles import Candle
from tests.client import GraphQLClient, contract_operations
from tests.conftest import COINS_DIR, CONTRACT_DIR, import_real_files, make_user, upload


def file_rows(symbol: str) -> list[dict[str, str]]:
    name = {"BTC": "Bitcoin", "ETH": "Ethereum", "LTC": "Litecoin"}[symbol]
    with (COINS_DIR / f"coin_{name}.csv").open() as handle:
        return list(csv.DictReader(handle))


async def candle_count(app: Starlette) -> int:
    async with app.state.services.reader() as session:
        return int((await session.exec(select(func.count()).select_from(Candle))).one())


async def test_import_then_candles_are_exactly_the_files_closes(
    client: GraphQLClient, admin: str
) -> None:
    report = await upload(client, (COINS_DIR / "coin_Bitcoin.csv").read_bytes(), token=admin)
    assert report == {
        "__typename": "ImportReport",
        "symbol": "BTC",
        "interval": "D1",
        "rowsRead": 1648,
        "candlesWritten": 1648,
        "first": "2017-01-01T00:00:00Z",
        "last": "2021-07-06T00:00:00Z",
    }
    rows = file_rows("BTC")
    variables = {"symbol": "BTC", "start": "2020-01-01T00:00:00Z", "end": "2020-12-31T00:00:00Z"}
    asset = (await client.contract("market", "Candles", variables)).ok()["asset"]
    series = asset["candles"]
    in_2020 = [row for row in rows if row["Date"].split(" ")[0].endswith("/20")]
    assert series["count"] == len(in_2020) == 366
    assert series["close"] == [float(row["Close"]) for row in in_2020]
    assert series["open"] == [float(row["Open"]) for row in in_2020]
    assert series["quoteVolume"] == [float(row["Volume"]) for row in in_2020]
    assert series["volume"] == [None] * 366  # the file's volume is in dollars
    assert series["timestamps"][0] == int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000)

    everything = await client.execute('{ asset(symbol: "btc") { candles { count close } } }')
    assert everything.ok()["asset"]["candles"]["close"] == [float(row["Close"]) for row in rows]

    again = await upload(client, (COINS_DIR / "coin_Bitcoin.csv").read_bytes(), token=admin)
    assert again["candlesWritten"] == 0  # re-importing adds nothing


async def test_universe_ranks_the_imported_assets_by_market_cap(
    client: GraphQLClient, admin: str
) -> None:
    await import_real_files(client, admin)
    universe = (await client.contract("market", "Universe")).ok()["assets"]
    symbols = [edge["node"]["symbol"] for edge in universe["edges"]]
    assert symbols == ["BTC", "ETH", "BNB", "ADA", "DOGE", "LTC"]
    btc = universe["edges"][0]["node"]
    assert btc["rank"] == 1 and btc["name"] == "Bitcoin"
    assert btc["lastPrice"] == float(file_rows("BTC")[-1]["Close"])
    assert btc["marketCap"] == pytest.approx(float(file_rows("BTC")[-1]["Marketcap"]), rel=1e-12)
    assert universe["pageInfo"]["hasNextPage"] is False
    btc_candles = await client.contract("market", "Candles", {"symbol": "BTC"})
    closes = btc_candles.ok()["asset"]["candles"]["close"]
    assert closes == [float(row["Close"]) for row in file_rows("BTC")]

    first_page = await client.execute(
        "{ assets(first: 2) { edges { node { symbol } } pageInfo { hasNextPage endCursor } } }"
    )
    page = first_page.ok()["assets"]
    assert [e["node"]["symbol"] for e in page["edges"]] == ["BTC", "ETH"]
    assert page["pageInfo"]["hasNextPage"] is True
    second = await client.execute(
        "query($after: String) { assets(first: 2, after: $after) { edges { node { symbol } } } }",
        {"after": page["pageInfo"]["endCursor"]},
    )
    assert [e["node"]["symbol"] for e in second.ok()["assets"]["edges"]] == ["BNB", "ADA"]


async def test_returns_matrix_aligns_and_matches_the_files(
    client: GraphQLClient, admin: str
) -> None:
    await import_real_files(client, admin)
    variables = {"start": "2020-01-01T00:00:00Z", "end": "2020-12-31T00:00:00Z"}
    matrix = (await client.contract("market", "Returns", variables)).ok()["returnsMatrix"]
    assert matrix["symbols"] == ["BTC", "ETH", "LTC"]
    assert len(matrix["timestamps"]) == 365 and len(matrix["values"]) == 3
    for symbol, values in zip(matrix["symbols"], matrix["values"], strict=True):
        closes = np.array(
            [
                float(r["Close"])
                for r in file_rows(symbol)
                if r["Date"].split(" ")[0].endswith("/20")
            ]
        )
        np.testing.assert_allclose(values, closes[1:] / closes[:-1] - 1, rtol=1e-15)


async def test_a_file_with_one_bad_row_is_rejected_and_changes_nothing(
    client: GraphQLClient, admin: str, app: Starlette
) -> None:
    await upload(client, (COINS_DIR / "coin_Ethereum.csv").read_bytes(), token=admin)
    before = await candle_count(app)
    lines = (COINS_DIR / "coin_Bitcoin.csv").read_text().splitlines()
    fields = lines[100].split(",")
    fields[7] = str(float(fields[4]) * 2)  # Close above High on line 101
    lines[100] = ",".join(fields)
    report = await upload(client, "\n".join(lines).encode(), token=admin)
    assert report == {
        "__typename": "ImportRejected",
        "message": "file rejected: 1 problem; nothing was written",
        "problems": [{"line": 101, "message": "high is below open or close"}],
    }
    assert await candle_count(app) == before
    assert (await client.execute('{ asset(symbol: "BTC") { symbol } }')).ok() == {"asset": None}


async def test_only_admins_import(client: GraphQLClient, app: Starlette) -> None:
    content = (COINS_DIR / "coin_Litecoin.csv").read_bytes()
    anonymous = await upload(client, content[:2000], token=None)
    assert anonymous["__typename"] == "NotAuthenticated"
    user = await make_user(app, client, "user@example.com", admin=False)
    forbidden = await upload(client, content, token=user)
    assert forbidden == {
        "__typename": "Forbidden",
        "message": "only admins may change shared market data",
    }
    assert await candle_count(app) == 0


async def test_an_oversized_file_is_refused(
    client: GraphQLClient, admin: str, app: Starlette
) -> None:
    settings = app.state.services.settings
    settings.import_max_bytes = 1000
    content = (COINS_DIR / "coin_Litecoin.csv").read_bytes()
    # Over the limit by less than the room left for the document and the multipart framing:
    # read, and refused by the import.
    report = await upload(client, content[:1500], token=admin)
    assert report["__typename"] == "InvalidInput"
    assert "limit is 1,000" in report["message"]
    # Far over it: refused as it arrives, before it is read whole.
    query = contract_operations(CONTRACT_DIR, "market")["ImportCandles"]
    response = await client.upload(query, {"file": ("ltc.csv", content)}, token=admin)
    assert response.status_code == 413
    assert response.json()["errors"][0]["message"] == (
        f"the request body is over {1000 + settings.max_anonymous_body_bytes:,} bytes"
        " (COINQL_IMPORT_MAX_BYTES)"
    )
    assert await candle_count(app) == 0


async def test_an_anonymous_body_over_the_document_limit_is_refused_before_it_is_read(
    client: GraphQLClient,
) -> None:
    query = contract_operations(CONTRACT_DIR, "market")["ImportCandles"]
    big = (COINS_DIR / "coin_Litecoin.csv").read_bytes()
    response = await client.upload(query, {"file": ("ltc.csv", big)})
    assert response.status_code == 413
    assert "COINQL_MAX_ANONYMOUS_BODY_BYTES" in response.json()["errors"][0]["message"]


async def test_import_without_symbol_for_a_file_that_does_not_name_it(
    client: GraphQLClient, admin: str
) -> None:
    content = (
        b"time,open,high,low,close,volume\n2021-01-01,1,2,0.5,1.5,10\n2021-01-02,1.5,2,1,1.8,12\n"
    )
    missing = await upload(client, content, token=admin)
    assert missing["__typename"] == "InvalidInput"
    report = await upload(client, content, token=admin, symbol="sol", interval="D1")
    assert (report["symbol"], report["interval"], report["candlesWritten"]) == ("SOL", "D1", 2)


async def test_data_gaps_and_weekly_aggregation(client: GraphQLClient, admin: str) -> None:
    lines = (COINS_DIR / "coin_Litecoin.csv").read_text().splitlines()
    del lines[11:14]  # three days missing: 2017-01-11 .. 2017-01-13
    report = await upload(client, "\n".join(lines).encode(), token=admin)
    assert report["rowsRead"] == 1645
    gaps = (await client.contract("market", "DataGaps", {"symbol": "LTC"})).ok()["dataGaps"]
    assert gaps == [
        {"start": "2017-01-11T00:00:00Z", "end": "2017-01-13T00:00:00Z", "missingCandles": 3}
    ]
    weekly = await client.execute(
        '{ asset(symbol: "LTC") { candles(interval: W1, start: "2021-01-04T00:00:00Z",'
        ' end: "2021-01-11T00:00:00Z") { count timestamps open close } } }'
    )
    series = weekly.ok()["asset"]["candles"]
    rows = {r["Date"].split(" ")[0]: r for r in csv.DictReader(lines)}
    assert series["count"] == 2
    assert series["open"][0] == float(rows["1/04/21"]["Open"])  # Monday
    assert series["close"][0] == float(rows["1/10/21"]["Close"])  # Sunday


async def test_unknown_symbols_are_named(client: GraphQLClient) -> None:
    response = await client.contract("market", "Returns", {})
    assert response.errors[0]["message"] == "unknown symbols: BTC, ETH, LTC"
    assert (await client.contract("market", "Candles", {"symbol": "NOPE"})).ok() == {"asset": None}


async def test_ingestion_status_is_empty_without_an_exchange(client: GraphQLClient) -> None:
    assert (await client.contract("market", "IngestionStatus")).ok() == {"ingestionStatus": []}


def test_contract_file_is_the_one_executed() -> None:
    operations = contract_operations(CONTRACT_DIR, "market")
    assert set(operations) == {
        "Universe",
        "Candles",
        "Returns",
        "ImportCandles",
        "DataGaps",
        "IngestionStatus",
    }
    assert Path(CONTRACT_DIR / "market.graphql").read_text().count("query ") == 5
