"""Timing helpers and the result table."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# The request budgets stay on the measured path, set high enough never to refuse a benchmark.
UNLIMITED_BUDGETS = {"rate_limit_cost_per_user": 10**12, "rate_limit_cost_per_address": 10**12}


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
