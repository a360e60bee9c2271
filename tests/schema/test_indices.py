"""Saved indices through the API on the six real daily series: the research contract's
CreateIndex and IndexView as written, the value path against its own rebalances' weights and
the closes, the same rule backtested as a job, and typed refusals that save nothing."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from coinql.settings import Settings
from tests.client import GraphQLClient
from tests.conftest import import_real_files, worker_for
from tests.domain.coins import NAMES, parsed
from tests.helpers import wait_for

VIEW = """
query($id: ID!) {
  index(id: $id) {
    value valueHistory { timestamps values } constituents { symbol weight }
    rebalances { time weights { symbol weight } }
  }
}
"""


@pytest.fixture
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes] | None]:
    """With Redis, the backtest job runs in a `coinql worker`, as in a deployment."""
    with worker_for(settings) as process:
        yield process


@pytest.fixture
async def quant(
    client: GraphQLClient, admin: str, worker: subprocess.Popen[bytes] | None
) -> GraphQLClient:
    await import_real_files(client, admin)
    client.token = (await client.sign_up("index@example.com"))["accessToken"]
    return client


async def test_the_contracts_index_is_created_and_viewed_as_written(quant: GraphQLClient) -> None:
    created = (await quant.contract("research", "CreateIndex")).ok()["createIndex"]
    assert (created["__typename"], created["name"]) == ("Index", "Top 5 cap-weighted")
    view = (await quant.contract("research", "IndexView", {"indexId": created["id"]})).ok()
    index = view["index"]
    assert index["id"] == created["id"]
    assert index["valueHistory"]["values"][0] == pytest.approx(1_000.0)
    assert index["value"] == index["valueHistory"]["values"][-1]
    held = index["constituents"]
    # universeTop 5 of the six coins, heaviest first, fully invested.
    assert len(held) == 5 and {item["symbol"] for item in held} < set(NAMES)
    weights = [item["weight"] for item in held]
    assert weights == sorted(weights, reverse=True) and sum(weights) == pytest.approx(1.0)
    performance = index["performance"]
    values = np.array(index["valueHistory"]["values"])
    assert performance["totalReturn"] == pytest.approx(values[-1] / values[0] - 1, rel=1e-9)
    assert performance["benchmark"]["beta"] is not None
    assert performance["benchmark"]["alpha"] is not None


async def test_the_value_path_follows_its_weights_and_the_closes(quant: GraphQLClient) -> None:
    """Between two rebalances the index holds what it bought: its value moves with the
    weighted closes. And the same rule run as a backtest job gives the same curve."""
    created = await quant.execute(
        'mutation { createIndex(input: {name: "Equal", kind: {equalWeight: {lookback: 30}},'
        ' symbols: ["BTC", "ETH", "LTC"], rebalance: QUARTERLY, benchmark: "BTC"})'
        " { ... on Index { id } } }"
    )
    index_id = created.ok()["createIndex"]["id"]
    index = (await quant.execute(VIEW, {"id": index_id})).ok()["index"]
    times = np.array(index["valueHistory"]["timestamps"])
    values = np.array(index["valueHistory"]["values"])
    closes = {s: parsed(s).candles for s in ("BTC", "ETH", "LTC")}

    def close(symbol: str, at: int) -> float:
        series = closes[symbol]
        return float(series.close[np.searchsorted(series.timestamps, at)])

    rebalances = index["rebalances"]
    assert len(rebalances) > 10
    for item, after in itertools.pairwise(rebalances):
        start = _ms(item["time"])
        end = _ms(after["time"]) - 86_400_000  # the day before the next rebalance
        growth = sum(
            w["weight"] * close(w["symbol"], end) / close(w["symbol"], start)
            for w in item["weights"]
        )
        at = lambda t: values[np.searchsorted(times, t)]  # noqa: E731
        assert at(end) / at(start) == pytest.approx(growth, rel=1e-9)
        assert [w["weight"] for w in item["weights"]] == pytest.approx([1 / 3] * 3)
    saved = await quant.execute(
        'mutation { createStrategy(input: {name: "Equal", kind: {equalWeight: {lookback: 30}},'
        ' symbols: ["BTC", "ETH", "LTC"], rebalance: QUARTERLY}) { ... on Strategy { id } } }'
    )
    job = await quant.execute(
        'mutation($s: ID!) { runBacktest(input: {symbols: ["BTC", "ETH", "LTC"], strategyId: $s,'
        " initialCapital: 1000, feeBps: 0}) { ... on Job { id } } }",
        {"s": saved.ok()["createStrategy"]["id"]},
    )
    job_id = job.ok()["runBacktest"]["id"]
    assert (await wait_for(quant, job_id))["status"] == "SUCCEEDED"
    run = await quant.execute(
        "query($id: ID!) { job(id: $id) { result { ... on BacktestRun { equity { values } } } } }",
        {"id": job_id},
    )
    backtested = run.ok()["job"]["result"]["equity"]["values"]
    assert backtested == pytest.approx(values.tolist(), rel=1e-12)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ('kind: {smaCross: {fast: 10, slow: 30}}, symbols: ["BTC"]', "kind"),
        ("kind: {equalWeight: {lookback: 30}}", "universeTop"),
        ('kind: {equalWeight: {lookback: 30}}, universeTop: 3, benchmark: "NOPE"', "benchmark"),
        ('kind: {equalWeight: {lookback: 30}}, symbols: ["BTC", "NOPE"]', "symbols"),
        ("kind: {equalWeight: {lookback: 1}}, universeTop: 3", "kind.lookback"),
    ],
)
async def test_a_bad_index_is_refused_naming_the_field_and_saves_nothing(
    quant: GraphQLClient, fields: str, field: str
) -> None:
    refused = await quant.execute(
        f'mutation {{ createIndex(input: {{name: "x", {fields}}})'
        " { __typename ... on InvalidInput { field message } } }"
    )
    answer: dict[str, Any] = refused.ok()["createIndex"]
    assert (answer["__typename"], answer["field"]) == ("InvalidInput", field), answer
    listed = await quant.execute("{ indices(first: 5) { edges { node { id } } } }")
    assert listed.ok()["indices"]["edges"] == []


async def test_an_index_can_be_deleted(quant: GraphQLClient) -> None:
    created = await quant.execute(
        'mutation { createIndex(input: {name: "Gone", kind: {equalWeight: {lookback: 30}},'
        " universeTop: 2}) { ... on Index { id } } }"
    )
    index_id = created.ok()["createIndex"]["id"]
    deleted = await quant.execute(
        "mutation($id: ID!) { deleteIndex(id: $id) { __typename } }", {"id": index_id}
    )
    assert deleted.ok()["deleteIndex"]["__typename"] == "Deleted"
    assert (await quant.execute(VIEW, {"id": index_id})).ok()["index"] is None


def _ms(text: str) -> int:
    return int(np.datetime64(text.rstrip("Z"), "ms").astype(np.int64))
