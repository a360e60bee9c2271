"""[7/7] A mixed read load: universe, candles, tear sheet and portfolio, against `coinql
serve --workers N` on loopback, for a fixed time (60 s by default), from 8 connections of wrk
in a process of its own (or, without wrk, this process's Python client: `--client python`).

Prints requests/s in all and per worker process, p50/p99 latency, errors, the workers'
resident memory before and after, and each operation's median on its own (one client).
`make load` runs it; `python -m benchmarks.load --seconds 10 --workers 2` for a short run
(more than one worker: with a redis-server of its own, as `coinql serve` requires).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

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


def mix(portfolio_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The load's operations, taken in turn: name, document, variables."""
    ops = operations()
    return [
        ("Universe", ops["Universe"], {}),
        ("Candles", ops["Candles"], {"symbol": "BTC", **PERIOD}),
        ("AssetPerformance", ops["AssetPerformance"], {"symbol": "ETH", **PERIOD}),
        ("PortfolioView", ops["PortfolioView"], {"portfolioId": portfolio_id}),
    ]


async def prepare(http: httpx.AsyncClient) -> tuple[str, str]:
    """A user with a portfolio holding BTC (the portfolio view's data): token, portfolio id."""
    ops = operations()
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


async def python_clients(
    url: str,
    operations_mix: list[tuple[str, str, dict[str, Any]]],
    token: str,
    *,
    seconds: float,
    concurrency: int,
) -> tuple[list[Tally], float]:
    """`concurrency` httpx clients in this process, for when wrk is missing."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        began = time.perf_counter()
        until = began + seconds
        tallies = await asyncio.gather(
            *(
                client(http, operations_mix[i:] + operations_mix[:i], token, until)
                for i in range(concurrency)
            )
        )
    return list(tallies), time.perf_counter() - began


async def alone(
    url: str, operations_mix: list[tuple[str, str, dict[str, Any]]], token: str, repeat: int = 10
) -> dict[str, float]:
    """Each operation's median latency (ms) with nothing else running."""
    medians: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for name, query, variables in operations_mix:
            await post(http, query, variables, token)
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                await post(http, query, variables, token)
                times.append(time.perf_counter() - started)
            medians[name] = statistics.median(times) * 1000
    return medians


async def run(seconds: float, concurrency: int, workers: int, use_wrk: bool) -> None:
    from benchmarks.workers import WRK_MISSING, loaded_service, own_redis, service_rss_mb, wrk

    if use_wrk and shutil.which("wrk") is None:
        print(f"{WRK_MISSING}; using this process's Python client instead")
        use_wrk = False
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as directory:
        redis_url = stack.enter_context(own_redis()) if workers > 1 else None
        if workers > 1 and redis_url is None:
            raise SystemExit("more than one worker needs Redis: `apt-get install redis-server`")
        async with loaded_service(Path(directory), workers=workers, redis_url=redis_url) as service:
            url, token, operations_mix = service.url, service.token, service.operations
            medians = await alone(url, operations_mix, token)  # warms every operation up too
            rss_before = service_rss_mb(service.process, workers)
            if use_wrk:
                await asyncio.to_thread(  # every worker warms up
                    wrk, url, service.bodies, token, seconds=3.0, connections=concurrency
                )
                measured = await asyncio.to_thread(
                    wrk, url, service.bodies, token, seconds=seconds, connections=concurrency
                )
                count, elapsed = measured.requests, measured.seconds
                p50, p99, errors = measured.p50_ms, measured.p99_ms, measured.errors
                first_error = ""
                generator = "wrk (a process of its own)"
            else:
                tallies, elapsed = await python_clients(
                    url, operations_mix, token, seconds=seconds, concurrency=concurrency
                )
                latencies = [latency for tally in tallies for latency in tally.latencies]
                failures = [error for tally in tallies for error in tally.errors]
                quantiles = statistics.quantiles(latencies, n=100)
                count, p50, p99 = len(latencies), quantiles[49] * 1000, quantiles[98] * 1000
                errors, first_error = len(failures), failures[0] if failures else ""
                generator = "httpx clients in the benchmark's process"
            rss_after = service_rss_mb(service.process, workers)
    rate = count / elapsed
    print(
        f"mixed read load, {concurrency} concurrent connections, {elapsed:.0f} s on loopback,"
        f" {workers} worker process{'es' if workers > 1 else ''}; load from {generator}"
    )
    print(f"  requests       {count:,} ({rate:,.0f}/s)")
    print(f"  per worker     {rate / workers:,.0f} requests/s   (target >= 300/s)")
    print(f"  latency p50    {p50:.1f} ms")
    print(f"  latency p99    {p99:.1f} ms   (target < 100 ms)")
    print(f"  errors         {errors}" + (f" (first: {first_error})" if first_error else ""))
    print(f"  server RSS     {rss_before:.0f} MB before, {rss_after:.0f} MB after (all workers)")
    for name, median_ms in medians.items():
        print(f"  {name:<18} median {median_ms:.1f} ms alone (one client, before the load)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="coinql serve --workers N")
    parser.add_argument(
        "--client", choices=["wrk", "python"], default="wrk", help="the load generator"
    )
    arguments = parser.parse_args()
    asyncio.run(
        run(arguments.seconds, arguments.concurrency, arguments.workers, arguments.client == "wrk")
    )


if __name__ == "__main__":
    main()
