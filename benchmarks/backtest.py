"""[5/7] Backtests: SMA crossover over 1,000,000 bars against vectorbt and backtesting.py, a
1,000-combination sweep (and the same sweep written as an expression), 100,000 bootstrap
paths, query latency while a sweep runs, and how soon a cancelled simulation's computing
stops."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import BENCHMARK_SECRET, UNLIMITED_BUDGETS, Figure, median_seconds
from coinql.domain import backtest as bt
from coinql.domain import backtest_config as bc
from coinql.domain import research
from coinql.domain import simulation as sim
from coinql.domain.candles import Candles
from coinql.domain.strategies import StrategySpec

SMA = StrategySpec("smaCross", {"fast": 10, "slow": 30})
CONFIG = bc.BacktestConfig(fee_bps=10, fill=bc.FillPrice.CLOSE)


def random_walk(bars: int, seed: int = 0) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
    opening = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.003, bars))
    return Candles(
        np.arange(bars, dtype=np.int64) * 60_000,
        opening,
        np.maximum(opening, close) * (1 + spread),
        np.minimum(opening, close) * (1 - spread),
        close,
        rng.random(bars),
        np.full(bars, np.nan),
    )


def engine_figures(quick: bool) -> list[Figure]:
    bars = 200_000 if quick else 1_000_000
    candles = random_walk(bars)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import vectorbt as vbt

        close = pd.Series(candles.close)

        def theirs() -> None:
            fast, slow = vbt.MA.run(close, 10), vbt.MA.run(close, 30)
            vbt.Portfolio.from_signals(
                close, fast.ma_crossed_above(slow), fast.ma_crossed_below(slow), fees=0.001
            ).final_value()

        theirs_s = median_seconds(theirs, repeat=3, warmup=1)  # warm-up compiles numba
    ours_s = median_seconds(lambda: bt.run(SMA, candles, CONFIG), repeat=5)
    figures = [
        Figure(
            f"SMA crossover, {bars:,} bars (signals + simulation)",
            ours_s * 1000,
            "ms",
            theirs_s * 1000,
            "vectorbt MA + Portfolio.from_signals (numba, warmed up)",
            target=">= 2x",
        )
    ]
    figures.append(_backtesting_py(candles, ours_s, bars))
    return figures


def _backtesting_py(candles: Candles, ours_s: float, bars: int) -> Figure:
    """backtesting.py on 50,000 bars (its per-bar Python loop makes 1,000,000 take minutes);
    compared per bar with coinql's time on the full series."""
    sample = 50_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from backtesting import Backtest, Strategy
        from backtesting.lib import crossover

        class SmaCross(Strategy):  # type: ignore[misc]
            def init(self) -> None:
                price = self.data.Close
                self.fast = self.I(lambda c: pd.Series(c).rolling(10).mean().to_numpy(), price)
                self.slow = self.I(lambda c: pd.Series(c).rolling(30).mean().to_numpy(), price)

            def next(self) -> None:
                if crossover(self.fast, self.slow):
                    self.buy()
                elif crossover(self.slow, self.fast):
                    self.position.close()

        frame = pd.DataFrame(
            {
                "Open": candles.open[:sample],
                "High": candles.high[:sample],
                "Low": candles.low[:sample],
                "Close": candles.close[:sample],
                "Volume": candles.volume[:sample],
            },
            index=pd.date_range("2020-01-01", periods=sample, freq="min"),
        )
        started = time.perf_counter()
        Backtest(frame, SmaCross, cash=1e9, commission=0.001, trade_on_close=True).run()
        theirs_per_bar = (time.perf_counter() - started) / sample
    return Figure(
        f"SMA crossover, {bars:,} bars (signals + simulation)",
        ours_s * 1000,
        "ms",
        theirs_per_bar * bars * 1000,
        f"backtesting.py, timed on {sample:,} bars and scaled per bar",
        target=">= 50x",
    )


def sweep_figures(quick: bool) -> list[Figure]:
    bars = 20_000 if quick else 100_000
    candles = random_walk(bars, seed=1)
    fast = list(range(2, 42))
    slow = list(range(45, 45 + 25 * 5, 5))
    grid = {"fast": fast, "slow": slow}  # 40 x 25 = 1,000 combinations
    tracemalloc.start()
    started = time.perf_counter()
    found = research.sweep("smaCross", grid, candles, CONFIG)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(found.rows) == 1000
    return [
        Figure(f"sweep, 1,000 combinations x {bars:,} bars", elapsed, "s"),
        Figure("sweep peak memory (tracemalloc)", peak / 1e6, "MB"),
        expression_sweep_figure(candles, grid),
    ]


def expression_sweep_figure(candles: Candles, grid: dict[str, list[int]]) -> Figure:
    """The same 1,000 combinations written as an expression strategy, against the built-in
    sweep (both timed here, without tracemalloc; the same rows, checked)."""
    spelled = {
        "entry": ["crossover(sma(close, $1), sma(close, $2))"],
        "exit": ["crossunder(sma(close, $1), sma(close, $2))"],
        "p1": grid["fast"],
        "p2": grid["slow"],
    }
    started = time.perf_counter()
    reference = research.sweep("smaCross", grid, candles, CONFIG)
    built_in = time.perf_counter() - started
    started = time.perf_counter()
    found = research.sweep("expression", spelled, candles, CONFIG)
    elapsed = time.perf_counter() - started
    assert [row.metrics for row in found.rows] == [row.metrics for row in reference.rows]
    return Figure(
        "expression sweep, the same 1,000 combinations",
        elapsed,
        "s",
        built_in,
        "the built-in smaCross sweep",
        target=">= 0.67x (within 1.5x)",
    )


def bootstrap_figures() -> list[Figure]:
    returns = np.random.default_rng(2).standard_t(4, 1500) * 0.03
    paths, horizon = 100_000, 365
    config = sim.SimulationConfig(paths=paths, horizon=horizon, block_length=10, seed=1)
    seconds = median_seconds(lambda: sim.simulate(returns, config), repeat=3)
    tracemalloc.start()
    sim.simulate(returns, config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # What simulate holds at once: ~4 (horizon x chunk) buffers of 8 bytes (the paths, their
    # peaks, the gather's indexes), the band sample three times over (kept, joined, sorted by
    # the percentile) and 48 bytes a path for the per-path statistics and their joined copies;
    # the paths themselves (2,920 bytes each here) are never all held.
    bound = 4 * sim.CHUNK_PATHS * horizon * 8 + 3 * sim.BAND_PATHS * (horizon + 1) * 8 + 48 * paths
    return [
        Figure(
            f"block bootstrap, {paths:,} paths x {horizon} steps",
            seconds * 1000,
            "ms",
            target="< 1,000 ms",
        ),
        Figure(
            "block bootstrap peak memory (tracemalloc)",
            peak / 1e6,
            "MB",
            target=f"<= {bound / 1e6:,.1f} MB (chunks of {sim.CHUNK_PATHS:,} paths + 48 B/path)",
        ),
    ]


async def latency_figures(quick: bool) -> list[Figure]:
    """p50/p99 of a simple query while a sweep job runs in the process pool, against the
    same queries on an idle service."""
    import httpx

    from coinql.app import create_app
    from coinql.migrations import upgrade
    from coinql.settings import Settings

    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'latency.db'}"
        await asyncio.to_thread(upgrade, url)
        app = create_app(
            Settings(
                database_url=url,
                secret_key=BENCHMARK_SECRET,
                source="none",
                log_level="WARNING",
                **UNLIMITED_BUDGETS,
            )
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as http:

                async def sample(count: int) -> list[float]:
                    latencies = []
                    for _ in range(count):
                        started = time.perf_counter()
                        response = await http.post(
                            "/graphql", json={"query": "{ serverInfo { version } }"}
                        )
                        assert response.status_code == 200
                        latencies.append(time.perf_counter() - started)
                        await asyncio.sleep(0.005)
                    return latencies

                idle = await sample(200)
                candles = random_walk(20_000 if quick else 100_000, seed=3)
                grid = {"fast": list(range(2, 42)), "slow": list(range(45, 170, 5))}
                jobs = app.state.services.jobs
                work = asyncio.create_task(
                    jobs.run_in_pool(research.sweep, "smaCross", grid, candles, CONFIG)
                )
                await asyncio.sleep(1.0)  # the pool has spawned and the sweep is running
                busy = await sample(200)
                assert not work.done(), "the sweep finished before the measurement"
                await work

    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000

    return [
        Figure(
            "serverInfo p99 while a sweep runs (process pool)",
            p(busy, 99),
            "ms",
            p(idle, 99),
            "the same query on an idle service",
            target="< 100 ms",
        ),
        Figure("serverInfo p50 while a sweep runs", p(busy, 50), "ms", p(idle, 50), "idle p50"),
    ]


async def cancel_figures(quick: bool) -> list[Figure]:
    """From a running simulation of 100,000 paths x 3,650 steps (the largest accepted) being
    CANCELLED in the store, as `cancelJob` does, to its slot being free: its runner has seen
    the status, the pool process has stopped at its next chunk and handed back."""
    from coinql.app import create_app
    from coinql.migrations import upgrade
    from coinql.settings import Settings
    from coinql.store import auth as auth_store
    from coinql.store import jobs as job_store

    returns = np.random.default_rng(2).standard_t(4, 1500) * 0.03
    config = sim.SimulationConfig(paths=100_000, horizon=3_650, block_length=20, seed=1)
    job_input = {
        "source": {},
        "method": config.method.value,
        "config": config.to_json(),
        "returns": returns.tolist(),
        "last_timestamp": 0,
        "step_ms": 86_400_000,
    }
    samples = []
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'cancel.db'}"
        await asyncio.to_thread(upgrade, url)
        app = create_app(
            Settings(
                database_url=url,
                secret_key=BENCHMARK_SECRET,
                source="none",
                log_level="WARNING",
                job_slots=1,
            )
        )
        async with app.router.lifespan_context(app):
            services = app.state.services
            async with services.transaction() as session:
                user = await auth_store.add_user(
                    session,
                    email="b@example.com",
                    password_hash="-",
                    is_admin=False,
                    now=services.now(),
                )
            for _ in range(3 if quick else 10):
                async with services.transaction() as session:
                    job = await job_store.add_job(
                        session,
                        owner_id=user.id,
                        kind=job_store.JobKind.SIMULATION,
                        job_input=job_input,
                        now=services.now(),
                    )
                await services.jobs.enqueue(job.id)
                while not services.jobs.busy_slots:  # its first chunk is computing
                    await asyncio.sleep(0.05)
                await asyncio.sleep(2.0)  # the pool process is up and well into the paths
                async with services.transaction() as session:
                    await job_store.finish(
                        session,
                        job_id=job.id,
                        status=job_store.JobStatus.CANCELLED,
                        now=services.now(),
                    )
                started = time.perf_counter()
                while services.jobs.busy_slots:
                    await asyncio.sleep(0.002)
                samples.append(time.perf_counter() - started)
    return [
        Figure(
            "cancelled simulation: CANCELLED to its slot free, median",
            statistics.median(samples) * 1000,
            "ms",
            target="< 1,000 ms",
        ),
        Figure(
            f"the same, slowest of {len(samples)}", max(samples) * 1000, "ms", target="< 1,000 ms"
        ),
    ]


async def run(*, quick: bool) -> list[Figure]:
    figures = engine_figures(quick)
    figures += sweep_figures(quick)
    figures += bootstrap_figures()
    figures += await latency_figures(quick)
    figures += await cancel_figures(quick)
    return figures
