"""[6/7] Realtime: 1,000 concurrent subscribers at 10 ticks/s (publish-to-receive latency and
lost messages), and 10,000 connect/subscribe/disconnect cycles (the server's memory).

[4/8] At scale: 5,000 subscribers of the same `prices` document at 10 ticks/s against
`coinql serve --workers 2` on a redis-server of the benchmark's own, the clients in processes
of their own (`python -m benchmarks.realtime --clients N ...`, one per core). Those clients
speak the WebSocket protocol on bare asyncio streams, reading frames in bulk, so that 50,000
messages a second measure the server rather than the clients' parsing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import connect

from benchmarks.common import Figure, rss_mb, start_server
from benchmarks.workers import own_redis, raise_file_limit, start_service, stop_service
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


SERVER_ENV = {
    "COINQL_FEED_TICK_SECONDS": "0.1",  # 10 ticks a second
    "COINQL_MAX_SUBSCRIPTIONS_PER_USER": "100000",
    # every benchmark client connects from 127.0.0.1 without signing in; the cap is per
    # process, so each worker admits this many
    "COINQL_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS": "100000",
    "COINQL_SHARED_SUBSCRIPTIONS": "true",
}


def _frame(payload: bytes, opcode: int = 1) -> bytes:
    """A client's (masked) WebSocket frame; the payloads sent here are under 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


class RawSubscriber:
    """One `prices` subscription on a bare asyncio stream: the frames read in bulk, each
    message's timestamp found without decoding the rest."""

    MARK = b'"timestamp":"'

    def __init__(self, stamps: dict[bytes, float]) -> None:
        self.stamps = stamps  # the ISO time -> epoch seconds, shared by a process's clients
        self.seen: list[float] = []
        self.latencies: list[float] = []

    async def subscribe(self, host: str, port: int, path: str) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace")[:200])
        self.writer.write(_frame(b'{"type":"connection_init","payload":{}}'))
        self.buffer = bytearray()
        while not any(b"connection_ack" in payload for payload in self._frames()):
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("closed before connection_ack")
            self.buffer += chunk
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": PRICES}}
        self.writer.write(_frame(orjson.dumps(subscribe)))

    async def first_tick(self) -> None:
        """Wait until the subscription delivers (the server has taken it up)."""
        while not any(b'"next"' in payload for payload in self._frames()):
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("closed before the first tick")
            self.buffer += chunk

    def _frames(self) -> list[bytes]:
        """The text frames complete in the buffer (consumed); pings answered."""
        buffer, position, found = self.buffer, 0, []
        while len(buffer) - position >= 2:
            length, header = buffer[position + 1] & 0x7F, 2
            if length == 126:
                if len(buffer) - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 4]), 4
            elif length == 127:
                if len(buffer) - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 10]), 10
            end = position + header + length
            if end > len(buffer):
                break
            opcode, payload = buffer[position] & 0x0F, bytes(buffer[position + header : end])
            if opcode == 1:
                found.append(payload)
            elif opcode == 9:
                self.writer.write(_frame(payload, opcode=10))
            position = end
        del buffer[:position]
        return found

    async def read(self, window: asyncio.Future[float]) -> None:
        """Every tick received, from the subscription on (reading all along: pings unanswered
        for 20 s close the socket) until the deadline set once `window` gives the reading
        window's start; latency from that start + the warm-up."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(None) as self.deadline:
                while chunk := await self.reader.read(1 << 18):
                    now = time.time()
                    began = window.result() if window.done() else None
                    self.buffer += chunk
                    for payload in self._frames():
                        start = payload.find(self.MARK)
                        if start < 0:
                            continue
                        start += len(self.MARK)
                        text = payload[start : payload.index(b'"', start)]
                        sent = self.stamps.get(text)
                        if sent is None:
                            sent = datetime.fromisoformat(text.decode()).timestamp()
                            self.stamps[text] = sent
                        if began is not None and sent >= began + WARMUP_SECONDS:
                            self.latencies.append(now - sent)
                        self.seen.append(sent)
        self.writer.close()


async def _client_process(url: str, clients: int, seconds: float, out: Path) -> None:
    """A client process: subscribe `clients`, say "ready" once each has had a tick (every
    subscription is live), read from the time given on stdin
    ("go <epoch seconds>") for `seconds`, write what was received to `out`."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    stamps: dict[bytes, float] = {}
    subscribers = [RawSubscriber(stamps) for _ in range(clients)]
    handshakes = asyncio.Semaphore(100)

    async def subscribe(subscriber: RawSubscriber) -> bool:
        try:
            async with handshakes:
                await subscriber.subscribe(host, port, path)
            async with asyncio.timeout(120):
                await subscriber.first_tick()
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            return False
        return True

    subscribed = await asyncio.gather(*(subscribe(s) for s in subscribers))
    live = [s for s, ok in zip(subscribers, subscribed, strict=True) if ok]
    window: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    readers = [asyncio.create_task(s.read(window)) for s in live]
    print(f"ready {len(live)}", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    began = float(line.split()[1])
    window.set_result(began)
    deadline = asyncio.get_running_loop().time() + (began + seconds - time.time())
    for subscriber in live:
        subscriber.deadline.reschedule(deadline)
    await asyncio.gather(*readers)
    latencies = array("d", [latency for s in live for latency in s.latencies])
    out.write_bytes(
        orjson.dumps(
            {
                "subscribed": len(live),
                "latencies": latencies.tolist(),
                "seen": [sorted({round(sent * 1000) for sent in s.seen}) for s in live],
            }
        )
    )


async def published_ticks(redis_url: str, sent: set[int], stop: asyncio.Event) -> None:
    """What the feed's leader publishes on Redis (BTC tick times, ms), into `sent` until
    `stop`: the ground truth of the lost-message count, heard beside the server."""
    import redis.asyncio as aioredis

    from coinql.realtime import channels

    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channels.prices("BTC"))
    try:
        while not stop.is_set():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                sent.add(int(orjson.loads(message["data"])["timestamp"]))
    finally:
        await pubsub.aclose()
        await client.aclose()


async def fan_out_processes(
    url: str, clients: int, seconds: float, processes: int
) -> tuple[list[float], list[set[int]], tuple[float, float], int]:
    """`clients` subscribers split over `processes` client processes: latencies (s), each
    client's received ticks (ms), the reading window (epoch s) and how many subscribed."""
    with tempfile.TemporaryDirectory() as directory:
        outs = [Path(directory) / f"clients-{index}.json" for index in range(processes)]
        children = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "benchmarks.realtime", "--url", url),
                    *("--seconds", str(seconds), "--clients", str(share), "--out", str(out)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for out, share in zip(
                outs,
                [clients // processes + (i < clients % processes) for i in range(processes)],
                strict=True,
            )
        ]
        subscribed = 0
        for child in children:  # every client of every process subscribed
            assert child.stdout is not None
            line = await asyncio.to_thread(child.stdout.readline)
            subscribed += int(line.split()[1])
        await asyncio.sleep(1.0)  # the last subscriptions reach their shared streams
        began = time.time()
        for child in children:
            assert child.stdin is not None
            child.stdin.write(f"go {began}\n")
            child.stdin.flush()
        for child in children:
            await asyncio.to_thread(child.wait, seconds + 60)
        latencies: list[float] = []
        received: list[set[int]] = []
        for child, out in zip(children, outs, strict=True):
            if child.returncode != 0 or not out.exists():
                raise RuntimeError(f"a client process failed (exit {child.returncode})")
            result = orjson.loads(out.read_bytes())
            latencies.extend(result["latencies"])
            received.extend(set(seen) for seen in result["seen"])
    return latencies, received, (began, began + seconds), subscribed


async def at_scale(*, quick: bool) -> list[Figure]:
    """Subscribers of `coinql serve --workers 2` on Redis, from client processes."""
    clients = 1_000 if quick else 5_000
    seconds = 5.0 if quick else 15.0
    name = f"{clients:,} subscribers, 2 workers"  # + Redis, clients in 2 processes
    raise_file_limit()
    with own_redis() as redis_url, tempfile.TemporaryDirectory() as directory:
        if redis_url is None:
            return [Figure(f"{name}: not measured", 0.0, "", target="apt-get install redis-server")]
        database_url = f"sqlite+aiosqlite:///{Path(directory) / 'realtime.db'}"
        await asyncio.to_thread(upgrade, database_url)
        process, url = await asyncio.to_thread(
            start_service, database_url, workers=2, redis_url=redis_url, **SERVER_ENV
        )
        try:
            ws_url = url.replace("http://", "ws://") + "/graphql"
            sent: set[int] = set()
            stop = asyncio.Event()
            listening = asyncio.create_task(published_ticks(redis_url, sent, stop))
            latencies, received, (start, end), subscribed = await fan_out_processes(
                ws_url, clients, seconds, processes=2
            )
            stop.set()
            await listening
        finally:
            stop_service(process)
    start_ms, end_ms = (start + 1) * 1000, (end - 1) * 1000
    published = {stamp for stamp in sent if start_ms < stamp < end_ms}
    lost = sorted(len(published - seen) for seen in received)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    rate = len(published) / max(end - start - 2, 1)
    return [
        Figure(f"{name}: latency p50", quantiles[49] * 1000, "ms"),
        Figure(f"{name}: latency p99", quantiles[98] * 1000, "ms", target="< 150 ms"),
        Figure(
            f"{name}: lost, median client ({len(published)} sent, {rate:.1f}/s)",
            float(lost[len(lost) // 2] if lost else 0),
            "msgs",
            target="0",
        ),
        Figure(
            f"{name}: lost, worst client",
            float(lost[-1] if lost else 0),
            "msgs",
            target="0 for a client that keeps up",
        ),
        Figure(
            f"{name}: clients that lost any (of {subscribed:,})",
            float(sum(1 for count in lost if count)),
            "clients",
            target="0",
        ),
    ]


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
        *await at_scale(quick=quick),
    ]


def main() -> None:
    """The client process of `fan_out_processes`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realtime")
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    raise_file_limit()
    client = _client_process(arguments.url, arguments.clients, arguments.seconds, arguments.out)
    try:
        import uvloop
    except ImportError:
        asyncio.run(client)
    else:
        uvloop.run(client)


if __name__ == "__main__":
    main()
