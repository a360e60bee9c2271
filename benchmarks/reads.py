"""[4/8] Reads at the speed of the data: coinql's `/graphql` against a bare endpoint.

Both servers are real uvicorn processes on the same SQLite file (the seeded demo market); wrk
loads each in turn from a process of its own, 8 connections. The bare endpoint reads the file
with the raw driver (aiosqlite), computes with numpy and answers with orjson: what the read
costs without GraphQL, the ORM or any middleware. The ratio is coinql's requests/s over the
bare endpoint's (the bare time over coinql's), so "within 1.5x of the bare time" is a ratio of
at least 0.67.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from benchmarks.common import Figure, free_port, start_server

CONNECTIONS = 8
DATABASE_ENV = "COINQL_BENCH_READS_SQLITE"
YEAR_MS = 365 * 86_400_000
# The bare answers carry what the GraphQL selections below ask for, nothing more.
SERVER_INFO = "query ServerInfo { serverInfo { version database } }"
UNIVERSE = (
    "query Universe { assets(first: 10) { edges { node { symbol name marketCap rank lastPrice }"
    " } } }"
)
CANDLES = (
    "query Candles($symbol: String!, $start: DateTime, $end: DateTime) { asset(symbol: $symbol)"
    " { symbol candles(interval: D1, start: $start, end: $end) { timestamps open high low close"
    " volume quoteVolume } } }"
)
PERFORMANCE = (
    "query AssetPerformance($symbol: String!) { asset(symbol: $symbol) { performance(interval:"
    " D1) { totalReturn cagr volatility sharpe sortino maxDrawdown } } }"
)


# -- the bare endpoint: raw driver, numpy, orjson ------------------------------------------


def bare_app() -> object:
    """The bare Starlette app (`uvicorn --factory benchmarks.reads:bare_app`), on the SQLite
    file named by COINQL_BENCH_READS_SQLITE."""
    from contextlib import asynccontextmanager

    import aiosqlite
    import numpy as np
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from coinql import __version__

    path = os.environ[DATABASE_ENV]
    state: dict[str, aiosqlite.Connection] = {}

    def answer(data: object) -> Response:
        return Response(
            orjson.dumps({"data": data}, option=orjson.OPT_SERIALIZE_NUMPY),
            media_type="application/json",
        )

    async def server_info(request: Request) -> Response:
        return answer({"serverInfo": {"version": __version__, "database": "sqlite"}})

    async def assets(request: Request) -> Response:
        db = state["db"]
        async with db.execute(
            "SELECT id, symbol, name, market_cap, last_price FROM assets"
            " ORDER BY market_cap IS NULL, market_cap DESC, symbol LIMIT 11"
        ) as cursor:
            rows = list(await cursor.fetchall())
        async with db.execute(
            "SELECT id FROM assets WHERE market_cap IS NOT NULL ORDER BY market_cap DESC, symbol"
        ) as cursor:
            ranks = {row[0]: rank for rank, row in enumerate(await cursor.fetchall(), start=1)}
        edges = [
            {
                "node": {
                    "symbol": symbol,
                    "name": name,
                    "marketCap": cap,
                    "rank": ranks.get(asset_id),
                    "lastPrice": price,
                }
            }
            for asset_id, symbol, name, cap, price in rows[:10]
        ]
        return answer({"assets": {"edges": edges}})

    async def read(symbol: str, start: int | None, end: int | None) -> list[tuple[float, ...]]:
        sql = (
            "SELECT c.open_time, c.open, c.high, c.low, c.close, c.volume, c.quote_volume"
            " FROM candles c JOIN markets m ON m.id = c.market_id JOIN assets a ON a.id ="
            " m.asset_id WHERE a.symbol = ? AND m.exchange = a.data_source AND c.interval = 'D1'"
        )
        arguments: list[object] = [symbol]
        if start is not None:
            sql += " AND c.open_time >= ?"
            arguments.append(start)
        if end is not None:
            sql += " AND c.open_time <= ?"
            arguments.append(end)
        async with state["db"].execute(sql + " ORDER BY c.open_time", arguments) as cursor:
            return list(await cursor.fetchall())  # type: ignore[arg-type]

    async def candles(request: Request) -> Response:
        query = request.query_params
        rows = await read(query["symbol"], int(query["start"]), int(query["end"]))
        columns = list(zip(*rows, strict=True))
        names = ("timestamps", "open", "high", "low", "close", "volume", "quoteVolume")
        series = {
            name: np.array(column, dtype=np.int64 if name == "timestamps" else np.float64)
            for name, column in zip(names, columns, strict=True)
        }
        return answer({"asset": {"symbol": query["symbol"], "candles": series}})

    async def performance(request: Request) -> Response:
        rows = await read(request.query_params["symbol"], None, None)
        close = np.array([row[4] for row in rows], dtype=np.float64)
        returns = close[1:] / close[:-1] - 1.0
        periods = 365.0
        equity = np.cumprod(1.0 + returns)
        total = float(equity[-1] - 1.0)
        cagr = float((1.0 + total) ** (periods / len(returns)) - 1.0)
        std = float(returns.std(ddof=1))
        downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
        peaks = np.maximum.accumulate(np.concatenate([[1.0], equity]))
        metrics = {
            "totalReturn": total,
            "cagr": cagr,
            "volatility": std * np.sqrt(periods),
            "sharpe": float(returns.mean() / std * np.sqrt(periods)),
            "sortino": float(returns.mean() / downside * np.sqrt(periods)),
            "maxDrawdown": float(-(np.concatenate([[1.0], equity]) / peaks - 1.0).min()),
        }
        return answer({"asset": {"performance": metrics}})

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        state["db"] = await aiosqlite.connect(path)
        yield
        await state["db"].close()

    return Starlette(
        routes=[
            Route("/server-info", server_info),
            Route("/assets", assets),
            Route("/candles", candles),
            Route("/performance", performance),
        ],
        lifespan=lifespan,
    )


# -- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    name: str
    graphql: dict[str, object]  # the request body
    bare: str  # path and query of the bare endpoint
    target: float  # coinql's time at most this many times the bare endpoint's
    check: str  # a key the answer's data must hold


def wrk_missing() -> bool:
    return shutil.which("wrk") is None


def wrk_rate(url: str, *, seconds: float, body: bytes | None, workdir: Path) -> float:
    """Requests/s of wrk (1 thread, CONNECTIONS connections) against `url`; every answer must
    be a 2xx."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency"]
    if body is not None:
        script = workdir / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {_lua_string(body)}\n"
        )
        command += ["-s", str(script)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failures against {url}:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"no rate in wrk's output:\n{output}")
    return float(match.group(1))


def _lua_string(body: bytes) -> str:
    return '"' + body.decode().replace("\\", "\\\\").replace('"', '\\"') + '"'


def start_bare(database: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "benchmarks.reads:bare_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, DATABASE_ENV: str(database)},
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/server-info", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the bare endpoint did not start")


async def seed(database: Path) -> int:
    """The demo market in a fresh SQLite file; returns the last daily open time."""
    from coinql.migrations import upgrade
    from coinql.realtime.demo import load_demo_if_empty
    from coinql.store.db import create_engine, create_session_factory

    url = f"sqlite+aiosqlite:///{database}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    await load_demo_if_empty(create_session_factory(engine), clock=lambda: datetime.now(UTC))
    await engine.dispose()
    today = int(time.time() * 1000) // 86_400_000 * 86_400_000
    return today - 86_400_000


def reads(last_day: int) -> list[Read]:
    start, end = last_day - YEAR_MS + 86_400_000, last_day

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")

    return [
        Read(
            "serverInfo { version database }",
            {"query": SERVER_INFO},
            "/server-info",
            8.0,
            "serverInfo",
        ),
        Read(
            "Universe: assets(first: 10), 5 fields with rank",
            {"query": UNIVERSE},
            "/assets",
            6.0,
            "assets",
        ),
        Read(
            "Candles: BTC D1, one year, 7 fields",
            {
                "query": CANDLES,
                "variables": {"symbol": "BTC", "start": iso(start), "end": iso(end)},
            },
            f"/candles?symbol=BTC&start={start}&end={end}",
            1.5,
            "asset",
        ),
        Read(
            "AssetPerformance: BTC D1, four years, 6 metrics",
            {"query": PERFORMANCE, "variables": {"symbol": "BTC"}},
            "/performance?symbol=BTC",
            1.5,
            "asset",
        ),
    ]


def check(response: httpx.Response, key: str) -> None:
    body = response.json()
    if response.status_code != 200 or body.get("errors") or key not in (body.get("data") or {}):
        raise RuntimeError(f"unexpected answer: {response.status_code} {str(body)[:300]}")


async def run(*, quick: bool) -> list[Figure]:
    if wrk_missing():
        print("  read figures skipped: wrk is not installed (apt-get install wrk)")
        return []
    seconds, rounds = (2.0, 1) if quick else (3.0, 3)
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        database = workdir / "reads.db"
        last_day = await seed(database)
        coinql, coinql_url = start_server(
            f"sqlite+aiosqlite:///{database}", COINQL_FEED_ENABLED="false"
        )
        bare, bare_url = start_bare(database)
        figures = []
        try:
            for read in reads(last_day):
                body = orjson.dumps(read.graphql)
                check(
                    httpx.post(
                        f"{coinql_url}/graphql",
                        content=body,
                        headers={"content-type": "application/json"},
                    ),
                    read.check,
                )
                check(httpx.get(f"{bare_url}{read.bare}"), read.check)
                # A second of warm-up each (caches, the pool, the CPU's clock), then runs of
                # the two in turn, so that what else the machine does weighs on both alike.
                wrk_rate(f"{coinql_url}/graphql", seconds=1, body=body, workdir=workdir)
                wrk_rate(f"{bare_url}{read.bare}", seconds=1, body=None, workdir=workdir)
                coinql_rates, bare_rates = [], []
                for _ in range(rounds):
                    coinql_rates.append(
                        wrk_rate(
                            f"{coinql_url}/graphql", seconds=seconds, body=body, workdir=workdir
                        )
                    )
                    bare_rates.append(
                        wrk_rate(
                            f"{bare_url}{read.bare}", seconds=seconds, body=None, workdir=workdir
                        )
                    )
                coinql_rate = sum(coinql_rates) / rounds
                bare_rate = sum(bare_rates) / rounds
                figures.append(
                    Figure(
                        read.name,
                        coinql_rate,
                        "req/s",
                        baseline=bare_rate,
                        baseline_name=f"bare: aiosqlite + numpy + orjson, wrk -c{CONNECTIONS}",
                        higher_is_better=True,
                        target=f"within {read.target:g}x the bare time"
                        f" (ratio >= {1 / read.target:.2f})",
                    )
                )
        finally:
            for process in (coinql, bare):
                process.terminate()
                process.wait(timeout=30)
    return figures
