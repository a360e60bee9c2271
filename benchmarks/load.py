"""[7/7] A mixed read load: universe, candles, tear sheet and portfolio, from this process
against `coinql serve` in another, on loopback, for a fixed time (60 s by default).

Prints requests/s, p50/p99 latency, errors and the server's resident memory before and after.
`make load` runs it; `python -m benchmarks.load --seconds 10` for a short run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import rss_mb, start_server
from coinql.migrations import upgrade

CONTRACT = Path(__file__).resolve().parents[1].parent / "shared/contract"
PERIOD: dict[str, str] = {}  # the whole demo history: four years of daily candles
TRANSACTIONS = [
    {"kind": "DEPOSIT", "asset": "USDT", "quantity": "10000", "time": "2020-01-01T00:00:00Z"},
    {
        "kind": "BUY",
        "asset": "BTC",
        "quantity": "0.5",
        "price": "7200",
        "fee": "3.6",
        "time": "2020-01-02T00:00:00Z",
    },
]


def operations() -> dict[str, str]:
    from graphql import OperationDefinitionNode, parse, print_ast

    found: dict[str, str] = {}
    for path in CONTRACT.glob("*.graphql"):
        for definition in parse(path.read_text()).definitions:
            if isinstance(definition, OperationDefinitionNode) and definition.name:
                found[definition.name.value] = print_ast(definition)
    return found


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    by_operation: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def post(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"{response.status_code}: {body.get('errors')}")
    return body


async def prepare(http: httpx.AsyncClient, ops: dict[str, str]) -> tuple[str, str]:
    """A user with a portfolio holding BTC: the portfolio view's data."""
    credentials = {"email": "load@example.com", "password": "correct horse battery staple"}
    token = (await post(http, ops["Register"], credentials))["data"]["register"]["accessToken"]
    created = await post(http, ops["CreatePortfolio"], {}, token)
    portfolio_id = created["data"]["createPortfolio"]["id"]
    added = {"portfolioId": portfolio_id, "transactions": TRANSACTIONS}
    await post(http, ops["AddTransactions"], added, token)
    return token, portfolio_id


async def client(
    http: httpx.AsyncClient, mix: list[tuple[str, str, dict[str, Any]]], token: str, until: float
) -> Tally:
    tally = Tally()
    index = 0
    while time.perf_counter() < until:
        name, query, variables = mix[index % len(mix)]
        index += 1
        started = time.perf_counter()
        try:
            await post(http, query, variables, token)
        except (RuntimeError, httpx.HTTPError) as error:
            tally.errors.append(str(error)[:200])
        tally.latencies.append(time.perf_counter() - started)
        tally.by_operation.setdefault(name, []).append(tally.latencies[-1])
    return tally


async def run(seconds: float, concurrency: int) -> None:
    ops = operations()
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite+aiosqlite:///{Path(directory) / 'load.db'}"
        await asyncio.to_thread(upgrade, database_url)
        process, url = start_server(database_url, COINQL_FEED_ENABLED="false")
        try:
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
                token, portfolio_id = await prepare(http, ops)
                mix = [
                    ("Universe", ops["Universe"], {}),
                    ("Candles", ops["Candles"], {"symbol": "BTC", **PERIOD}),
                    ("AssetPerformance", ops["AssetPerformance"], {"symbol": "ETH", **PERIOD}),
                    ("PortfolioView", ops["PortfolioView"], {"portfolioId": portfolio_id}),
                ]
                for _, query, variables in mix:  # warm up: every operation works before timing
                    await post(http, query, variables, token)
                rss_before = rss_mb(process.pid)
                began = time.perf_counter()
                until = began + seconds
                tallies = await asyncio.gather(
                    *(client(http, mix[i:] + mix[:i], token, until) for i in range(concurrency))
                )
                elapsed = time.perf_counter() - began
                rss_after = rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=20)
    latencies = [latency for tally in tallies for latency in tally.latencies]
    errors = [error for tally in tallies for error in tally.errors]
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"mixed read load, {concurrency} concurrent clients, {elapsed:.0f} s on loopback")
    print(f"  requests       {len(latencies):,} ({len(latencies) / elapsed:,.0f}/s)")
    print(f"  latency p50    {quantiles[49] * 1000:.1f} ms")
    print(f"  latency p99    {quantiles[98] * 1000:.1f} ms")
    print(f"  errors         {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"  server RSS     {rss_before:.0f} MB before, {rss_after:.0f} MB after")
    for name in sorted({name for tally in tallies for name in tally.by_operation}):
        times = [t for tally in tallies for t in tally.by_operation.get(name, [])]
        median_ms = statistics.median(times) * 1000
        print(f"  {name:<18} {len(times):>6,} requests, median {median_ms:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=8)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.seconds, arguments.concurrency))


if __name__ == "__main__":
    main()
