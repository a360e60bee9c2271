"""`coinql serve --workers N`: refused without Redis; with it, one feed and one risk monitor
across the processes, and every process's subscribers hear the leader's ticks."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from coinql.cli import main
from coinql.migrations import upgrade
from tests.conftest import TEST_SECRET, OwnRedis, free_port

TICK_SECONDS = 0.2
PRICES = 'subscription { prices(symbols: ["BTC"]) { symbol price timestamp } }'


def test_more_than_one_worker_is_refused_without_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COINQL_REDIS_URL", "")
    assert main(["serve", "--workers", "2"]) == 2
    assert "--workers 2 needs COINQL_REDIS_URL" in capsys.readouterr().err


def test_workers_start_only_on_a_current_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked once, before any worker starts: one message, not one failing worker each."""
    monkeypatch.setenv("COINQL_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("COINQL_REDIS_URL", "redis://127.0.0.1:1/0")  # never reached
    monkeypatch.setenv("COINQL_SECRET_KEY", TEST_SECRET)
    assert main(["serve", "--workers", "2"]) == 1
    assert "run `coinql migrate`" in capsys.readouterr().err


def test_workers_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--workers", "0"])
    assert "0 is not a positive number" in capsys.readouterr().err


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of the loopback connection from `client_port`."""
    wanted = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            return fields[9]
    return None


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _holder(pids: list[int], server_port: int, client: socket.socket) -> int | None:
    """Which worker process accepted this client's connection."""
    inode = _socket_inode(server_port, client.getsockname()[1])
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


@pytest.fixture
def two_workers(
    tmp_path: Path, own_redis: OwnRedis
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'coinql.db'}"
    upgrade(database_url)
    port = free_port()
    env = {
        **os.environ,
        "COINQL_DATABASE_URL": database_url,
        "COINQL_REDIS_URL": own_redis.url,  # a server of its own: no other test's broadcasts
        "COINQL_SECRET_KEY": TEST_SECRET,
        "COINQL_SOURCE": "demo",
        "COINQL_FEED_TICK_SECONDS": str(TICK_SECONDS),
        "COINQL_RISK_CHECK_SECONDS": "0.5",
        "COINQL_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "coinql.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _roles_by_worker(
    process: subprocess.Popen[bytes], port: int, *, within: float
) -> dict[int, dict[str, str]]:
    """Each worker's feed and risk roles from its own /health/ready, once both have settled
    (a fresh connection lands on either worker: the kernel picks)."""
    roles: dict[int, dict[str, str]] = {}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, f"coinql serve exited with {process.returncode}"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.connect()
            assert connection.sock is not None
            worker = _holder(_children(process.pid), port, connection.sock)
            connection.request("GET", "/health/ready")
            body = json.loads(connection.getresponse().read())
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.5)
            continue
        finally:
            connection.close()
        if worker is None:
            continue
        components = body["components"]
        roles[worker] = {role: components[role]["status"] for role in ("feed", "risk")}
        settled = {"leader", "standby"}
        if len(roles) == 2 and all(set(r.values()) <= settled for r in roles.values()):
            return roles
        time.sleep(0.2)
    raise AssertionError(f"the two workers did not both settle their roles: {roles}")


def _subscriber_on(
    stack: contextlib.ExitStack, process: subprocess.Popen[bytes], port: int, worker: int
) -> ClientConnection:
    """A subscribed WebSocket that the kernel gave to `worker`, open while `stack` is."""
    url = f"ws://127.0.0.1:{port}/graphql"
    for _ in range(50):
        ws = stack.enter_context(connect(url, subprotocols=["graphql-transport-ws"]))  # type: ignore[list-item]
        if _holder(_children(process.pid), port, ws.socket) == worker:
            ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
            ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": PRICES}}))
            return ws
        ws.close()
    raise AssertionError(f"no connection of 50 reached worker {worker}")


def _ticks(ws: ClientConnection, seconds: float) -> dict[str, float]:
    """Timestamp -> price of the BTC ticks received within `seconds`."""
    received: dict[str, float] = {}
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            break
        if message["type"] == "next":
            tick = message["payload"]["data"]["prices"]
            assert tick["timestamp"] not in received, "a tick was published twice"
            received[tick["timestamp"]] = tick["price"]
    return received


def test_two_workers_run_one_feed_and_every_worker_hears_it(
    two_workers: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = two_workers
    deadline = time.monotonic() + 180  # two workers import and build the schema at once
    while time.monotonic() < deadline:
        assert process.poll() is None, f"coinql serve exited with {process.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    roles = _roles_by_worker(process, port, within=120)
    for role in ("feed", "risk"):
        assert sorted(r[role] for r in roles.values()) == ["leader", "standby"], roles
    leader = next(pid for pid, r in roles.items() if r["feed"] == "leader")
    standby = next(pid for pid in roles if pid != leader)

    with contextlib.ExitStack() as stack:
        on_standby = _subscriber_on(stack, process, port, standby)
        on_leader = _subscriber_on(stack, process, port, leader)
        seconds = 3.0
        heard_on_standby = _ticks(on_standby, seconds)
        heard_on_leader = _ticks(on_leader, 1.0)
    # The standby's subscriber hears the leader's feed, at one feed's pace (a second feed
    # would double it), and the same ticks as a subscriber of the leader.
    assert len(heard_on_standby) >= seconds / TICK_SECONDS / 2, heard_on_standby
    assert len(heard_on_standby) <= seconds / TICK_SECONDS * 1.4, heard_on_standby
    shared = heard_on_standby.keys() & heard_on_leader.keys()
    assert shared, (heard_on_standby, heard_on_leader)
    assert all(heard_on_standby[stamp] == heard_on_leader[stamp] for stamp in shared)
