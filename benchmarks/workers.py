"""[4/8] More than one process: the mixed read load (`benchmarks.load`) driven by wrk, in a
process of its own, against `coinql serve --workers 1` and `--workers 2` (Redis for both, a
redis-server of the benchmark's own), both serving at once and loaded in alternating
slices: requests/s per worker process, p99 at 8 connections, and the two-worker ratio.

Also the pieces `benchmarks.load` and `benchmarks.realtime` share: a Redis server of their own
(Redis pub/sub channels are global across database numbers, so a shared server would mix in
other processes' broadcasts), `coinql serve --workers N` started and waited for until every
worker answers, and wrk's run of the mixed load.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import BENCHMARK_SECRET, UNLIMITED_BUDGETS, Figure, free_port, rss_mb

WRK_MISSING = "wrk is not installed: `apt-get install wrk` to measure this"
REDIS_MISSING = "redis-server is not installed: `apt-get install redis-server` to measure this"
CONNECTIONS = 8


def raise_file_limit() -> int:
    """Lift this process's open-file limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


@contextlib.contextmanager
def own_redis() -> Iterator[str | None]:
    """A redis-server of this benchmark's own on a free port (its URL), or None without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def worker_pids(process: subprocess.Popen[bytes], workers: int) -> list[int]:
    """The serving processes: the server itself, or its uvicorn workers."""
    if workers == 1:
        return [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    pids = [int(child) for child in children]
    # uvicorn's workers; multiprocessing's resource tracker is a child too
    return [
        pid for pid in pids if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _holder(pids: list[int], port: int, client: socket.socket) -> int | None:
    """Which of `pids` accepted this loopback connection (Linux: /proc)."""
    wanted = (f"0100007F:{port:04X}", f"0100007F:{client.getsockname()[1]:04X}")
    inode = next(
        (
            fields[9]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if ((fields := line.split())[1], fields[2]) == wanted
        ),
        None,
    )
    for pid in pids:
        with contextlib.suppress(OSError):
            for descriptor in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(descriptor) == f"socket:[{inode}]":
                        return pid
    return None


def start_service(
    database_url: str, *, workers: int, redis_url: str | None, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`coinql serve --workers N` on loopback (the benchmark's budgets, the demo market);
    returns once every worker has answered /health/live."""
    port = free_port()
    environment = {
        **os.environ,
        "COINQL_DATABASE_URL": database_url,
        "COINQL_REDIS_URL": redis_url or "",
        "COINQL_SECRET_KEY": BENCHMARK_SECRET,
        "COINQL_SOURCE": "demo",
        "COINQL_LOG_LEVEL": "WARNING",
        **{f"COINQL_{name.upper()}": str(value) for name, value in UNLIMITED_BUDGETS.items()},
        **env,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coinql.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    answered: set[int] = set()
    deadline = time.monotonic() + 60 + 40 * workers  # workers import and build at once
    while time.monotonic() < deadline and len(answered) < workers:
        if process.poll() is not None:
            raise RuntimeError(f"coinql serve exited with {process.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.connect()
            assert connection.sock is not None
            holder = _holder(worker_pids(process, workers), port, connection.sock)
            connection.request("GET", "/health/live")
            if connection.getresponse().status == 200 and holder is not None:
                answered.add(holder)
        except (OSError, http.client.HTTPException):
            time.sleep(0.3)
        finally:
            connection.close()
    if len(answered) < workers:
        process.kill()
        raise RuntimeError(f"{len(answered)} of {workers} workers answered")
    return process, url


def stop_service(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def service_rss_mb(process: subprocess.Popen[bytes], workers: int) -> float:
    return sum(rss_mb(pid) for pid in worker_pids(process, workers))


@dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, non-200 answers and GraphQL errors

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


LUA = """
local bodies = {%(bodies)s}
local token = [==[%(token)s]==]
local index = 0
errors = 0  -- a global: done() reads it from each thread
local threads = {}
function setup(thread)
  thread:set("first", #threads)
  table.insert(threads, thread)
end
function init(args)
  index = first
end
function request()
  index = index %% #bodies + 1
  return wrk.format("POST", "/graphql",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token},
    bodies[index])
end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then errors = errors + 1 end
end
function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + thread:get("errors") end
  local e = summary.errors
  failed = failed + e.connect + e.read + e.write + e.timeout
  io.write(string.format("COINQL %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), failed))
end
"""


def wrk(url: str, bodies: list[bytes], token: str, *, seconds: float, connections: int) -> WrkRun:
    """wrk, in its own process, posting `bodies` in turn on each of `connections`."""
    binary = shutil.which("wrk")
    if binary is None:
        raise FileNotFoundError(WRK_MISSING)
    lua = LUA % {
        "bodies": ", ".join(f"[==[{body.decode()}]==]" for body in bodies),
        "token": token,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        threads = min(2, connections)
        completed = subprocess.run(
            [
                *(binary, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s"),
                *("--timeout", "10s", "-s", script.name, f"{url}/graphql"),
            ],
            capture_output=True,
            text=True,
        )
    found = re.search(r"^COINQL (\d+) (\d+) (\d+) (\d+) (\d+)$", completed.stdout, re.M)
    if completed.returncode != 0 or found is None:
        raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    requests, duration_us, p50_us, p99_us, errors = map(int, found.groups())
    return WrkRun(requests, duration_us / 1e6, p50_us / 1000, p99_us / 1000, errors)


@dataclass
class Service:
    """A running `coinql serve --workers N` with the load's user and bodies."""

    workers: int
    process: subprocess.Popen[bytes]
    url: str
    token: str
    operations: list[tuple[str, str, dict[str, Any]]]  # the mix: (name, query, variables)
    bodies: list[bytes]  # the mix as request bodies


@contextlib.asynccontextmanager
async def loaded_service(
    directory: Path, *, workers: int, redis_url: str | None
) -> AsyncIterator[Service]:
    """`coinql serve --workers N` on a fresh SQLite store holding the mixed load's data."""
    import asyncio

    import orjson

    from benchmarks.load import mix, prepare
    from coinql.migrations import upgrade

    database_url = f"sqlite+aiosqlite:///{directory / f'load-{workers}.db'}"
    await asyncio.to_thread(upgrade, database_url)
    process, url = await asyncio.to_thread(
        start_service,
        database_url,
        workers=workers,
        redis_url=redis_url,
        COINQL_FEED_ENABLED="false",
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            token, portfolio_id = await prepare(http)
        operations = mix(portfolio_id)
        bodies = [
            orjson.dumps({"query": query, "variables": variables})
            for _, query, variables in operations
        ]
        yield Service(workers, process, url, token, operations, bodies)
    finally:
        stop_service(process)


def slices(service: Service, *, seconds: float, connections: int = CONNECTIONS) -> WrkRun:
    return wrk(service.url, service.bodies, service.token, seconds=seconds, connections=connections)


def combined(runs: list[WrkRun]) -> WrkRun:
    """Slices of one load as one run: requests over time; p50 and p99 the slices' medians."""
    return WrkRun(
        sum(run.requests for run in runs),
        sum(run.seconds for run in runs),
        statistics.median(run.p50_ms for run in runs),
        statistics.median(run.p99_ms for run in runs),
        sum(run.errors for run in runs),
    )


async def run(*, quick: bool) -> list[Figure]:
    """One worker and two, both serving at once and loaded in turns (slices of a few seconds,
    alternating), so that what else the machine runs weighs on both alike."""
    import asyncio

    rounds, seconds = (2, 4.0) if quick else (4, 5.0)
    name = f"mixed read load, wrk {CONNECTIONS} conns"
    if shutil.which("wrk") is None:
        return [Figure(f"{name}: not measured", 0.0, "", target=WRK_MISSING)]
    with own_redis() as redis_url, tempfile.TemporaryDirectory() as directory:
        if redis_url is None:
            return [Figure(f"{name}: not measured", 0.0, "", target=REDIS_MISSING)]
        async with (
            loaded_service(Path(directory), workers=1, redis_url=redis_url) as single,
            loaded_service(Path(directory), workers=2, redis_url=redis_url) as double,
        ):
            for service in (single, double):  # warm up: first executions, caches
                await asyncio.to_thread(slices, service, seconds=3.0)
            measured: dict[int, list[WrkRun]] = {1: [], 2: []}
            for _ in range(rounds):
                for service in (single, double):
                    run = await asyncio.to_thread(slices, service, seconds=seconds)
                    measured[service.workers].append(run)
    one, two = combined(measured[1]), combined(measured[2])
    per_worker = ">= 300/s per worker process"
    return [
        Figure(
            f"{name}, 1 worker: req/s per worker",
            one.per_second,
            "req/s",
            higher_is_better=True,
            target=per_worker,
        ),
        Figure(f"{name}, 1 worker: latency p99", one.p99_ms, "ms", target="< 100 ms"),
        Figure(
            f"{name}, 2 workers: req/s per worker",
            two.per_second / 2,
            "req/s",
            higher_is_better=True,
            target=per_worker,
        ),
        Figure(f"{name}, 2 workers: latency p99", two.p99_ms, "ms", target="< 100 ms"),
        Figure(
            f"{name}, 2 workers: req/s (errors {one.errors + two.errors})",
            two.per_second,
            "req/s",
            baseline=one.per_second,
            baseline_name="1 worker, same load, same run",
            higher_is_better=True,
            target=">= 1.3x",
        ),
    ]
