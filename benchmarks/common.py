"""Timing helpers and the result table."""

from __future__ import annotations

import gc
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

# The request budgets stay on the measured path, set high enough never to refuse a benchmark.
UNLIMITED_BUDGETS = {
    "rate_limit_cost_per_user": 10**12,
    "rate_limit_cost_per_address": 10**12,
    "registrations_per_address": 10**9,
}


@dataclass(frozen=True)
class Figure:
    """One row: what was measured, coinql's number, the baseline's, and what is better."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    higher_is_better: bool = False
    target: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better coinql is than the baseline (>1 = better)."""
        if self.baseline is None or self.value == 0 or self.baseline == 0:
            return None
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value


def median_seconds(call: Callable[[], object], *, repeat: int = 7, warmup: int = 1) -> float:
    for _ in range(warmup):
        call()
    gc.collect()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def median_seconds_async(
    call: Callable[[], Awaitable[object]], *, repeat: int = 7, warmup: int = 1
) -> float:
    for _ in range(warmup):
        await call()
    gc.collect()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def postgres_url() -> str | None:
    return os.environ.get("COINQL_BENCH_DATABASE_URL") or os.environ.get("COINQL_TEST_DATABASE_URL")


def print_table(figures: list[Figure]) -> None:
    header = f"{'figure':<58} {'coinql':>14} {'baseline':>14} {'ratio':>8}  target / baseline"
    print(header)
    print("-" * len(header))
    for figure in figures:
        value = f"{figure.value:,.3f} {figure.unit}"
        baseline = "" if figure.baseline is None else f"{figure.baseline:,.3f} {figure.unit}"
        ratio = "" if figure.ratio is None else f"{figure.ratio:,.2f}x"
        note = " / ".join(part for part in (figure.target, figure.baseline_name) if part)
        print(f"{figure.name:<58} {value:>14} {baseline:>14} {ratio:>8}  {note}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# A fixed key of the benchmarks' own servers (random-looking: weak keys are refused).
BENCHMARK_SECRET = "benchmark-signing-key-9f2c7e41d8a6b3057e9c4f1a"


def start_server(database_url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """`coinql serve` in its own process on loopback, on the labelled demo market, with
    budgets that never refuse; returns the process and its base URL once it is live."""
    port = free_port()
    environment = {
        **os.environ,
        "COINQL_DATABASE_URL": database_url,
        "COINQL_REDIS_URL": "",
        "COINQL_SECRET_KEY": BENCHMARK_SECRET,
        "COINQL_SOURCE": "demo",
        "COINQL_LOG_LEVEL": "WARNING",
        **{f"COINQL_{name.upper()}": str(value) for name, value in UNLIMITED_BUDGETS.items()},
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "coinql.cli", "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")
