"""What a return stream is compared with: an asset by symbol, or one of the caller's own
portfolios or backtest runs. Every stream (an asset's, a portfolio's, a backtest run's) gets the
same loader, so `benchmark` and rolling `BETA` work on each of them."""

from __future__ import annotations

from coinql.domain.candles import Interval
from coinql.domain.tearsheet import ReturnStream
from coinql.domain.typing import FloatArray, IntArray
from coinql.resolvers.backtest import get_backtest_run
from coinql.resolvers.context import Context
from coinql.resolvers.performance import Benchmark, BenchmarkLoader, asset_stream
from coinql.resolvers.portfolio import get_portfolio, return_stream
from coinql.store import runs as run_store


def benchmark_loader(
    context: Context, *, interval: Interval, start: int | None, end: int | None
) -> BenchmarkLoader:
    """Returns of a benchmark at `interval` over [start, end], for a stream to align with."""

    async def load(benchmark: Benchmark) -> tuple[IntArray, FloatArray]:
        if benchmark.symbol is not None:
            stream = await asset_stream(
                context,
                symbol=benchmark.symbol,
                interval=interval,
                start=start,
                end=end,
                risk_free_rate=0.0,
                periods_per_year=None,
            )
            return stream.timestamps, stream.returns
        if benchmark.portfolio_id is not None:
            portfolio = await get_portfolio(context, portfolio_id=benchmark.portfolio_id)
            stream = await return_stream(
                context, portfolio, interval=interval, risk_free_rate=0.0, periods_per_year=None
            )
            return stream.timestamps, stream.returns
        assert benchmark.backtest_run_id is not None
        run = await get_backtest_run(context, run_id=benchmark.backtest_run_id)
        timestamps, equity = run_store.equity_of(run)
        stream = ReturnStream.of_equity(
            run.name,
            timestamps,
            equity,
            interval,
            periods_per_year=float(run.input["config"]["periods_per_year"]),
            risk_free_rate=0.0,
        )
        return stream.timestamps, stream.returns

    return load
