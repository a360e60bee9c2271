"""[6/7] Realtime: 1,000 concurrent subscribers at 10 ticks/s (publish-to-receive latency and
lost messages), and 10,000 connect/subscribe/disconnect cycles (the server's memory)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

from benchmarks.common import Figure, rss_mb, start_server
from coinql.migrations import upgrade

PRICES = 'subscription { prices(symbols: ["BTC"]) { symbol price timestamp } }'
# Latency counts ticks sent from a second after the clients start reading: first they drain
# what queued up while the other clients were still connecting (the lost-message count uses
# the same window).
WARMUP_SECONDS = 1.0


def _start(database_url: str, *, shared: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    process, url = start_server(
        database_url,
        COINQL_FEED_TICK_SECONDS="0.1",  # 10 ticks a second
        COINQL_MAX_SUBSCRIPTIONS_PER_USER="100000",
        # every benchmark client connects from 127.0.0.1 without signing in
        COINQL_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS="100000",
        COINQL_SHARED_SUBSCRIPTIONS=str(shared).lower(),
    )
    return process, url.replace("http://", "ws://") + "/graphql"


async def _subscriber(
    url: str,
    seconds: float,
    latencies: list[float],
    received: list[set[float]],
    ready: asyncio.Event,
) -> None:
    seen: set[float] = set()
    async with connect(url, subprotocols=["graphql-transport-ws"], max_queue=None) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PRICES}}))
        await ready.wait()
        began = time.time()
        # One timer for the whole window: a timeout per message (asyncio.wait_for) costs the
        # clients more than the server spends sending, and would measure the clients.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async for raw in ws:
                    message = orjson.loads(raw)
                    if message.get("type") != "next":
                        continue
                    stamp = message["payload"]["data"]["prices"]["timestamp"]
                    sent = datetime.fromisoformat(stamp).timestamp()
                    if sent >= began + WARMUP_SECONDS:
                        latencies.append(time.time() - sent)
                    seen.add(sent)
    received.append(seen)


async def fan_out(
    url: str, clients: int, seconds: float
) -> tuple[list[float], list[set[float]], tuple[float, float]]:
    latencies: list[float] = []
    received: list[set[float]] = []
    ready = asyncio.Event()
    tasks = [
        asyncio.create_task(_subscriber(url, seconds, latencies, received, ready))
        for _ in range(clients)
    ]
    await asyncio.sleep(max(3.0, clients / 150))  # every client connected and subscribed
    started = time.time()
    ready.set()
    await asyncio.gather(*tasks)
    return latencies, received, (started, started + seconds)


async def cycles(url: str, count: int, concurrency: int = 20) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for item in range(count):
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                await ws.recv()
                await ws.send(
                    json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PRICES}})
                )
                await ws.recv()
                await ws.send(json.dumps({"id": "1", "type": "complete"}))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _baseline(database_url: str, clients: int, seconds: float) -> list[float]:
    """The same fan-out with shared streams off: the selection executed per subscriber."""
    process, url = _start(database_url, shared=False)
    try:
        await asyncio.sleep(2.0)
        latencies, _, _ = await fan_out(url, clients, seconds)
    finally:
        process.terminate()
        process.wait(timeout=20)
    return statistics.quantiles(latencies, n=100)


async def run(*, quick: bool) -> list[Figure]:
    clients = 200 if quick else 1_000
    seconds = 5.0 if quick else 15.0
    cycle_count = 1_000 if quick else 10_000
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite+aiosqlite:///{Path(directory) / 'realtime.db'}"
        await asyncio.to_thread(upgrade, database_url)
        baseline = await _baseline(database_url, clients, seconds)
        process, url = _start(database_url)
        try:
            await asyncio.sleep(2.0)
            latencies, received, (start, end) = await fan_out(url, clients, seconds)
            # Ticks sent well inside the window (so every client was reading) that one missed.
            published = {sent for seen in received for sent in seen if start + 1 < sent < end - 1}
            lost = [len(published - seen) for seen in received]
            rss_before = rss_mb(process.pid)
            await cycles(url, cycle_count)
            await asyncio.sleep(2.0)
            rss_after = rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=20)
    quantiles = statistics.quantiles(latencies, n=100)
    unshared = "executed per subscriber (COINQL_SHARED_SUBSCRIPTIONS=false)"
    return [
        Figure(
            f"{clients:,} subscribers at 10 ticks/s: latency p50",
            quantiles[49] * 1000,
            "ms",
            baseline=baseline[49] * 1000,
            baseline_name=unshared,
        ),
        Figure(
            f"{clients:,} subscribers at 10 ticks/s: latency p99",
            quantiles[98] * 1000,
            "ms",
            baseline=baseline[98] * 1000,
            baseline_name=unshared,
            target="< 100 ms",
        ),
        Figure(
            f"{clients:,} subscribers: messages lost per client (max; {len(published)} sent)",
            float(max(lost) if lost else 0),
            "msgs",
            target="0",
        ),
        Figure(
            f"{cycle_count:,} connect/subscribe/disconnect cycles: server RSS growth",
            rss_after - rss_before,
            "MB",
            target=f"flat (from {rss_before:.0f} MB)",
        ),
    ]
